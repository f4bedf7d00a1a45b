using System.Text.RegularExpressions;
using Grpc.Net.Client;
using MaskFormer.Cli.Commands;
using Xunit.Abstractions;

namespace MaskFormer.Server.Tests;

/// <summary>
/// <c>maskformer stream</c> across a server that goes away mid-stream (a real SIGTERM drain, or SIGKILL)
/// and another started on its port, as a rollout replaces a pod: the client rule of docs/deploy.md.
/// </summary>
public sealed partial class CliReconnectTests(ITestOutputHelper output) : IDisposable
{
    private readonly string _out = Directory.CreateTempSubdirectory("maskformer-cli-reconnect-").FullName;

    // TERM with time to drain: the client half-closes on the first answer (or status message) marked draining, and every frame
    // the first server holds is answered. TERM just after a batch was answered, when the next comes 2 s
    // later and the drain time is 1 s: the server stops reading before the client half-closes (it is still
    // sending), skips the frames not started as draining and ends the call UNAVAILABLE. KILL: the frames in flight get nothing.
    [Theory]
    [InlineData("TERM", 5, 1, 4, false)]
    [InlineData("TERM", 1, 2, 4, true)]
    [InlineData("KILL", 5, 1, 4, true)]
    public async Task Stream_ServerReplacedMidStream_EveryFrameIsDrawnOnceAndTheCommandSucceeds(string signal, int drainSeconds, int queueDelaySeconds, int fps, bool sentAgain)
    {
        // The clip twice over (8 s at 4 fps): frames are still to be sent when the first server goes, however
        // slow its first answers on a busy machine.
        var (clip, frames) = (TwiceTheClip(), 32);
        // Batches of 8 that 4 frames in flight never fill wait the full queue delay, so frames are still in
        // the first server's engine when it goes, and answers come four at a time.
        using var first = ServerProcess.Start(
            $"--MaskFormer:Streaming:DrainTimeout=00:00:{drainSeconds:D2}",
            "--MaskFormer:Inference:WarmUp=false",
            "--MaskFormer:Inference:MaxBatchSize=8",
            $"--MaskFormer:Inference:MaxQueueDelay=00:00:{queueDelaySeconds:D2}");
        var address = await first.AddressAsync();
        using (var channel = GrpcChannel.ForAddress(address))
        {
            await ServerFixture.WaitUntilServingAsync(channel);
        }

        await using var run = CliRun.Start((log, _, cancel) => StreamCommand.RunAsync(new CommandArguments([clip, "--server", address.ToString(), "--out", _out, "--fps", fps.ToString(System.Globalization.CultureInfo.InvariantCulture), "--policy", "queue"]), log, TextWriter.Null, cancel));
        var (streaming, log) = (run.Exit, run.Output);
        await WaitForOverlaysAsync(2, streaming);
        first.Signal(signal);
        await first.WaitForExitAsync(TimeSpan.FromSeconds(30));
        var drawnBeforeTheSecond = Overlays();

        using var second = ServerProcess.Start($"--Kestrel:Endpoints:Grpc:Url=http://127.0.0.1:{address.Port}", "--MaskFormer:Inference:WarmUp=false");
        var finished = await Task.WhenAny(streaming, Task.Delay(TimeSpan.FromSeconds(120)));
        output.WriteLine(log.ToString());
        Assert.True(finished == streaming, "the stream did not finish within 120 s of the second server's start");
        Assert.Equal(0, await streaming);

        // Every frame drawn once (one overlay each, from a result: no errors, no skips), some of them by
        // the second server, and the command says it reconnected.
        var text = log.ToString();
        Assert.Equal(frames, Overlays());
        Assert.True(drawnBeforeTheSecond < frames, $"{drawnBeforeTheSecond} of {frames} frames were drawn before the second server started");
        Assert.Contains($"{frames} done, 0 skipped, 0 errors", text, StringComparison.Ordinal);
        var reconnected = ReconnectedLine().Match(text);
        Assert.True(reconnected.Success, text);
        if (sentAgain)
        {
            // Frames the first server skipped as draining, or never answered, went again to the second one.
            Assert.True(int.Parse(reconnected.Groups[1].Value, System.Globalization.CultureInfo.InvariantCulture) > 0, reconnected.Value);
        }
    }

    [Fact]
    public async Task Stream_NoServerComesBack_GivesUpAfterReconnectFor()
    {
        var clip = TwiceTheClip();
        using var first = ServerProcess.Start("--MaskFormer:Inference:WarmUp=false", "--MaskFormer:Inference:MaxBatchSize=8", "--MaskFormer:Inference:MaxQueueDelay=00:00:01");
        var address = await first.AddressAsync();
        using (var channel = GrpcChannel.ForAddress(address))
        {
            await ServerFixture.WaitUntilServingAsync(channel);
        }

        // The command's tasks: a failure any of them leaves unobserved is reported here once collected.
        var unobserved = new List<AggregateException>();
        void Unobserved(object? sender, UnobservedTaskExceptionEventArgs e)
        {
            lock (unobserved)
            {
                unobserved.Add(e.Exception);
            }
        }

        TaskScheduler.UnobservedTaskException += Unobserved;
        try
        {
            await using var run = CliRun.Start((_, _, cancel) => StreamCommand.RunAsync(new CommandArguments([clip, "--server", address.ToString(), "--out", _out, "--fps", "4", "--reconnect-for", "3"]), TextWriter.Null, TextWriter.Null, cancel));
            var streaming = run.Exit;
            await WaitForOverlaysAsync(2, streaming);
            first.Signal("KILL");
            var stopwatch = System.Diagnostics.Stopwatch.StartNew();
            var failure = await Assert.ThrowsAsync<Grpc.Core.RpcException>(() => streaming);
            output.WriteLine($"{stopwatch.Elapsed.TotalSeconds:F1} s: {failure.Status}");
            Assert.Equal(Grpc.Core.StatusCode.Unavailable, failure.StatusCode);
            Assert.Contains("gave up", failure.Status.Detail, StringComparison.Ordinal);
            Assert.InRange(stopwatch.Elapsed, TimeSpan.FromSeconds(1), TimeSpan.FromSeconds(30));

            // The stream's failure was observed wherever it went: no task holding it is left for the finalizer
            // (other tests' unobserved failures, running beside this one, are not this stream's).
            for (var i = 0; i < 3; i++)
            {
                GC.Collect();
                GC.WaitForPendingFinalizers();
            }

            lock (unobserved)
            {
                Assert.DoesNotContain(unobserved, e => e.Flatten().InnerExceptions.Contains(failure));
            }
        }
        finally
        {
            TaskScheduler.UnobservedTaskException -= Unobserved;
        }
    }

    [Fact]
    public async Task Stream_ServerDrainsWhileNoFrameIsInFlight_HalfClosesOnAStatusMessage()
    {
        var folder = Directory.CreateDirectory(Path.Combine(_out, "frames")).FullName;
        foreach (var name in (string[])["frame_000.png", "frame_001.png"])
        {
            File.Copy(Path.Combine(RepositoryPaths.TinyShapes, "clip", name), Path.Combine(folder, name));
        }

        // A drain far longer than the test: while the stream is open the first server can end before it only
        // when the stream half-closes.
        using var first = ServerProcess.Start("--MaskFormer:Streaming:DrainTimeout=00:03:00", "--MaskFormer:Inference:WarmUp=false");
        var address = await first.AddressAsync();
        using (var channel = GrpcChannel.ForAddress(address))
        {
            await ServerFixture.WaitUntilServingAsync(channel);
        }

        // The second frame comes 35 s after the first (--fps 1/35): no answer between them can say that the
        // server drains. The server must exit within 20 s of the signal, sent once the first frame is drawn
        // (about a second after it), so it cannot wait for the second frame's answer to tell the stream.
        var overlays = Path.Combine(_out, "overlays");
        await using var run = CliRun.Start((log, _, cancel) => StreamCommand.RunAsync(new CommandArguments([folder, "--server", address.ToString(), "--out", overlays, "--fps", "0.0285714286"]), log, TextWriter.Null, cancel));
        var (streaming, log) = (run.Exit, run.Output);
        await WaitForOverlaysAsync(1, streaming, overlays);

        // The stream's status messages (two a second) say draining: it half-closes, its call ends OK and the
        // server exits (it waits for open streams), long before the second frame would have told it.
        first.Signal("TERM");
        await first.WaitForExitAsync(TimeSpan.FromSeconds(20));
        Assert.Contains("SegmentationService/SegmentStream OK", first.Output, StringComparison.Ordinal);

        using var second = ServerProcess.Start($"--Kestrel:Endpoints:Grpc:Url=http://127.0.0.1:{address.Port}", "--MaskFormer:Inference:WarmUp=false");
        var finished = await Task.WhenAny(streaming, Task.Delay(TimeSpan.FromSeconds(150)));
        output.WriteLine(log.ToString());
        Assert.True(finished == streaming, "the stream did not finish within 150 s of the second server's start");
        Assert.Equal(0, await streaming);

        // The second frame was answered by the second server, and each frame drawn once from a result.
        var text = log.ToString();
        Assert.Equal(2, Overlays(overlays));
        Assert.Contains("2 done, 0 skipped, 0 errors", text, StringComparison.Ordinal);
        Assert.Matches(ReconnectedLine(), text);
        Assert.Contains("SegmentationService/SegmentStream OK", second.Output, StringComparison.Ordinal);
    }

    [Fact]
    public async Task Stream_ServerStillLoading_FramesWaitForTheModelsAndAreEachDrawnOnce()
    {
        // A stream opened between the server's listening and its models being warm (a rollout's new pod, a
        // restart) is refused UNAVAILABLE as a call, and reconnected; it used to take every frame and answer
        // each with a frame error, which the command counted as failed.
        using var server = ServerProcess.Start("--MaskFormer:Inference:WarmUp=true");
        var address = await server.AddressAsync();
        var clip = Path.Combine(RepositoryPaths.TinyShapes, "clip");
        var frames = Directory.GetFiles(clip, "frame_???.png").Length;

        using var log = new StringWriter();
        var exitCode = await StreamCommand.RunAsync(new CommandArguments([clip, "--server", address.ToString(), "--out", _out]), log, log, CancellationToken.None);

        output.WriteLine(log.ToString());
        Assert.Equal(0, exitCode);
        Assert.Equal(frames, Overlays());
        Assert.Contains($"{frames} done, 0 skipped, 0 errors", log.ToString(), StringComparison.Ordinal);

        // What this test is about: the stream was turned away while loading, and a later one answered.
        Assert.Contains("SegmentationService/SegmentStream Unavailable", server.Output, StringComparison.Ordinal);
        Assert.Contains("SegmentationService/SegmentStream OK", server.Output, StringComparison.Ordinal);
    }

    [Fact]
    public async Task Segment_ServerStillLoading_IsRetriedUntilTheModelsAreWarmAndAnswered()
    {
        // The server listens before its models are loaded and warm (about 10 s here): a call in between is
        // answered UNAVAILABLE, "The models are still loading; retry shortly".
        using var server = ServerProcess.Start("--MaskFormer:Inference:WarmUp=true");
        var address = await server.AddressAsync();
        var image = Path.Combine(RepositoryPaths.TinyShapes, "heldout", "0000.png");

        using var log = new StringWriter();
        var exitCode = await SegmentCommand.RunAsync(new CommandArguments([image, "--server", address.ToString(), "--out", _out]), log, CancellationToken.None);

        output.WriteLine(log.ToString());
        Assert.Equal(0, exitCode);
        Assert.True(File.Exists(Path.Combine(_out, "0000.labels.png")), string.Join(", ", Directory.GetFiles(_out)));

        // What this test is about: the first call was turned away while loading, and a later one answered.
        Assert.Contains("SegmentationService/Segment Unavailable", server.Output, StringComparison.Ordinal);
        Assert.Contains("SegmentationService/Segment OK", server.Output, StringComparison.Ordinal);
    }

    public void Dispose() => Directory.Delete(_out, recursive: true);

    // The clip's 16 frames twice, as frame_000 to frame_031 (not the ground truth kept beside them).
    private string TwiceTheClip()
    {
        var clip = Path.Combine(RepositoryPaths.TinyShapes, "clip");
        var folder = Directory.CreateDirectory(Path.Combine(_out, "frames")).FullName;
        for (var i = 0; i < 32; i++)
        {
            File.Copy(Path.Combine(clip, $"frame_{i % 16:D3}.png"), Path.Combine(folder, $"frame_{i:D3}.png"));
        }

        return folder;
    }

    private int Overlays(string? folder = null) => Directory.Exists(folder ?? _out) ? Directory.GetFiles(folder ?? _out, "*.overlay.png").Length : 0;

    private async Task WaitForOverlaysAsync(int count, Task streaming, string? folder = null)
    {
        using var timeout = new CancellationTokenSource(TimeSpan.FromSeconds(60));
        while (Overlays(folder) < count)
        {
            Assert.False(streaming.IsCompleted, "the stream ended before the server was replaced");
            await Task.Delay(50, timeout.Token);
        }
    }

    [GeneratedRegex(@"reconnected \d+ time\(s\) .*?; (\d+) frame\(s\) sent again")]
    private static partial Regex ReconnectedLine();
}
