using System.Diagnostics.Tracing;
using Microsoft.Diagnostics.NETCore.Client;
using Microsoft.Diagnostics.Tracing;
using Microsoft.Diagnostics.Tracing.Parsers.Clr;

namespace MaskFormer.Benchmarks.Report;

// Apart from ServerProcess.cs, which Server.Tests compiles for its soak test without the diagnostics packages.
internal sealed partial class ServerProcess
{
    /// <summary>
    /// Makes the server collect its whole heap and waits until it has: an EventPipe session that asks the
    /// runtime for a heap collection, as dotnet-gcdump does. Resident memory sampled after it is what the
    /// process keeps, not where one sample falls on the collector's sawtooth.
    /// </summary>
    /// <returns>The managed heap's size after the collection (its generations, as the runtime reports them).</returns>
    public async Task<long> CollectGarbageAsync(CancellationToken cancellationToken)
    {
        // GC (0x1) for the events that say the collection happened and what it left; GCHeapCollect (0x800000) asks for it.
        const long GcKeywords = 0x1 | 0x800000;
        var client = new DiagnosticsClient(_process.Id);
        var provider = new EventPipeProvider("Microsoft-Windows-DotNETRuntime", EventLevel.Informational, GcKeywords);
        using var session = await client.StartEventPipeSessionAsync([provider], requestRundown: false, circularBufferMB: 16, cancellationToken);
        var collected = new TaskCompletionSource<long>(TaskCreationOptions.RunContinuationsAsynchronously);
        // Events arrive on the reading thread, in order: the induced collection's start, its end, and its
        // heap statistics (whichever of the last two comes first).
        var (induced, ended, heap) = (-1, false, -1L);
        using var source = new EventPipeEventSource(session.EventStream);
        source.Clr.GCStart += e =>
        {
            if (e.Reason == GCReason.Induced && e.Depth == 2 && induced < 0)
            {
                induced = e.Count;
            }
        };
        void FinishWhenBoth()
        {
            if (ended && heap >= 0)
            {
                collected.TrySetResult(heap);
            }
        }

        source.Clr.GCStop += e =>
        {
            ended |= induced >= 0 && e.Count == induced;
            FinishWhenBoth();
        };
        source.Clr.GCHeapStats += e =>
        {
            if (induced >= 0)
            {
                heap = e.TotalHeapSize;
                FinishWhenBoth();
            }
        };
        var reading = Task.Run(source.Process, CancellationToken.None);
        try
        {
            return await collected.Task.WaitAsync(TimeSpan.FromSeconds(30), cancellationToken);
        }
        finally
        {
            await session.StopAsync(CancellationToken.None);
            await reading;
        }
    }
}
