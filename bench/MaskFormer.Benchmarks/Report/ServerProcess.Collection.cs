using System.Diagnostics.Tracing;
using Microsoft.Diagnostics.NETCore.Client;
using Microsoft.Diagnostics.Tracing;
using Microsoft.Diagnostics.Tracing.Parsers.Clr;

namespace MaskFormer.Benchmarks.Report;

// Apart from ServerProcess.cs, which Server.Tests compiles for its soak test without the diagnostics packages.
internal sealed partial class ServerProcess
{
    /// <summary>
    /// Makes the server collect its whole heap, reads its memory then, and goes on listening until the
    /// server gives memory back on its own once idle (<c>MaskFormer:Admission:ReturnMemoryAfterIdle</c>: a
    /// compacting aggressive collection, then glibc's heaps trimmed), and reads it again. The first
    /// collection is asked for over EventPipe, as dotnet-gcdump does; the second is the service's own.
    /// Resident memory read after either is what the process keeps, not where one sample falls on the
    /// collector's sawtooth; after the second it is what the service holds at rest.
    /// </summary>
    /// <param name="restWithin">How long to wait for the server's own return (its idle delay and then some).</param>
    /// <param name="cancellationToken">Stops waiting.</param>
    public async Task<(MemoryReading Collected, MemoryReading AtRest)> CollectGarbageAndWaitForRestAsync(TimeSpan restWithin, CancellationToken cancellationToken)
    {
        // GC (0x1) for the events that say a collection happened and what it left; GCHeapCollect (0x800000) asks for one.
        const long GcKeywords = 0x1 | 0x800000;
        var client = new DiagnosticsClient(_process.Id);
        var provider = new EventPipeProvider("Microsoft-Windows-DotNETRuntime", EventLevel.Informational, GcKeywords);
        using var session = await client.StartEventPipeSessionAsync([provider], requestRundown: false, circularBufferMB: 16, cancellationToken);
        // The first full induced collection is the one this session asked for; the next is the idle return's.
        TaskCompletionSource<long>[] collections = [new(TaskCreationOptions.RunContinuationsAsynchronously), new(TaskCreationOptions.RunContinuationsAsynchronously)];
        // Events arrive on the reading thread, in order: an induced collection's start, its end, and its
        // heap statistics (whichever of the last two comes first).
        var (index, current, ended, heap) = (0, -1, false, -1L);
        using var source = new EventPipeEventSource(session.EventStream);
        source.Clr.GCStart += e =>
        {
            if (IsInduced(e.Reason) && e.Depth == 2 && current < 0 && index < collections.Length)
            {
                (current, ended, heap) = (e.Count, false, -1L);
            }
        };
        void FinishWhenBoth()
        {
            if (ended && heap >= 0)
            {
                collections[index++].TrySetResult(heap);
                current = -1;
            }
        }

        source.Clr.GCStop += e =>
        {
            ended |= current >= 0 && e.Count == current;
            FinishWhenBoth();
        };
        source.Clr.GCHeapStats += e =>
        {
            if (current >= 0)
            {
                heap = e.TotalHeapSize;
                FinishWhenBoth();
            }
        };
        var reading = Task.Run(source.Process, CancellationToken.None);
        try
        {
            var collectedHeap = await collections[0].Task.WaitAsync(TimeSpan.FromSeconds(30), cancellationToken);
            var collected = new MemoryReading(ResidentBytes(), collectedHeap);
            var restHeap = await collections[1].Task.WaitAsync(restWithin, cancellationToken);
            // glibc's heaps are trimmed after the collection returns: read once the figure stops moving.
            return (collected, new MemoryReading(await SettledResidentBytesAsync(cancellationToken), restHeap));
        }
        finally
        {
            await session.StopAsync(CancellationToken.None);
            await reading;
        }
    }

    // GC.Collect's reasons (Induced, InducedNotForced, InducedLowMemory, InducedCompacting and, numbered
    // past the ones TraceEvent names, the aggressive mode's), not the collector's own.
    private static bool IsInduced(GCReason reason) =>
        reason is GCReason.Induced or GCReason.InducedNotForced or GCReason.InducedLowMemory or GCReason.InducedCompacting || (int)reason >= 14;

    private async Task<long> SettledResidentBytesAsync(CancellationToken cancellationToken)
    {
        var last = ResidentBytes();
        for (var (steady, reads) = (0, 0); steady < 5 && reads < 50; reads++)
        {
            await Task.Delay(100, cancellationToken);
            var now = ResidentBytes();
            steady = Math.Abs(now - last) < 64 * 1024 ? steady + 1 : 0;
            last = now;
        }

        return last;
    }
}

/// <summary>The server's resident memory and its managed heap (the runtime's count of its generations) after a full collection.</summary>
internal readonly record struct MemoryReading(long Resident, long ManagedHeap);
