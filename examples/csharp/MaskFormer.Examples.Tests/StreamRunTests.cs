using Grpc.Core;
using Grpc.Core.Interceptors;
using MaskFormer.Contracts.V1;

namespace MaskFormer.Examples.Tests;

/// <summary>
/// The example's stream called in-process, as a program that embeds <see cref="StreamRun"/> would: a
/// stream that fails must leave nothing of itself running (a call still open, a sender still reading
/// frames), which a process that exits right after cannot show.
/// </summary>
public sealed class StreamRunTests
{
    [Fact]
    public async Task RunAsync_ReadingFails_StopsSendingAndCallsBeforeItThrows()
    {
        var address = Example.Address;
        var folder = Directory.CreateTempSubdirectory("csstream-");
        try
        {
            // A folder where frame 1's result file should be: writing its answer fails, while the sender,
            // pacing 16 frames 0.25 s apart, has most of them still to read.
            var frames = new ReadFrames([.. Directory.GetFiles(Example.Clip, "frame_???.png").Order(StringComparer.Ordinal)]);
            Directory.CreateDirectory(Path.Combine(folder.FullName, Path.GetFileNameWithoutExtension(frames[0]) + ".json"));
            var calls = new OpenCalls();
            using var channel = await ServerConnection.ConnectAsync(address, TimeSpan.FromSeconds(60), waitForServer: false, CancellationToken.None);
            var client = new SegmentationService.SegmentationServiceClient(channel.Intercept(calls));
            var config = new StreamConfig();
            config.Tasks.Add(SegmentationTask.Panoptic);
            var options = new StreamOptions(TimeSpan.FromSeconds(0.25), TimeSpan.FromSeconds(60), folder.FullName);

            var failure = await Assert.ThrowsAsync<IOException>(() => StreamRun.RunAsync(client, config, frames, options, print: false, CancellationToken.None));
            var readWhenItFailed = frames.Reads;

            Assert.Contains("cannot write into", failure.Message, StringComparison.Ordinal);
            Assert.True(readWhenItFailed < frames.Count, $"every frame was read ({readWhenItFailed}) before the failure: nothing left to show");
            Assert.Equal(0, calls.Open);

            // A sender still running would read the next frame within 0.25 s; none in 2 s.
            await Task.Delay(TimeSpan.FromSeconds(2));
            Assert.Equal(readWhenItFailed, frames.Reads);
        }
        finally
        {
            folder.Delete(recursive: true);
        }
    }

    /// <summary>The frames' paths, counting how often one is read.</summary>
    private sealed class ReadFrames(IReadOnlyList<string> paths) : IReadOnlyList<string>
    {
        private int _reads;

        public int Reads => Volatile.Read(ref _reads);

        public int Count => paths.Count;

        public string this[int index]
        {
            get
            {
                Interlocked.Increment(ref _reads);
                return paths[index];
            }
        }

        public IEnumerator<string> GetEnumerator() => paths.GetEnumerator();

        System.Collections.IEnumerator System.Collections.IEnumerable.GetEnumerator() => GetEnumerator();
    }

    /// <summary>Counts the streaming calls made through it and not yet disposed.</summary>
    private sealed class OpenCalls : Interceptor
    {
        private int _open;

        public int Open => Volatile.Read(ref _open);

        public override AsyncDuplexStreamingCall<TRequest, TResponse> AsyncDuplexStreamingCall<TRequest, TResponse>(ClientInterceptorContext<TRequest, TResponse> context, AsyncDuplexStreamingCallContinuation<TRequest, TResponse> continuation)
        {
            var call = continuation(context);
            Interlocked.Increment(ref _open);
            return new AsyncDuplexStreamingCall<TRequest, TResponse>(call.RequestStream, call.ResponseStream, call.ResponseHeadersAsync, call.GetStatus, call.GetTrailers, () =>
            {
                call.Dispose();
                Interlocked.Decrement(ref _open);
            });
        }
    }
}
