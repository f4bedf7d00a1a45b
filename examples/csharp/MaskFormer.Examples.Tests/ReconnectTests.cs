using System.Diagnostics;

namespace MaskFormer.Examples.Tests;

/// <summary>
/// A stream across a server that goes away mid-stream (SIGTERM: a real drain; SIGKILL) and another started on
/// its port, as a rollout replaces a pod (docs/deploy.md, "Drain"). As the Python example's ReconnectTest:
/// these tests start their own servers and need no MASKFORMER_ADDRESS.
/// </summary>
public sealed class ReconnectTests
{
    [Theory]
    [InlineData("TERM")]
    [InlineData("KILL")]
    public async Task Stream_ServerReplacedMidStream_AnswersEveryFrameOnceInOrder(string signal)
    {
        var port = Example.FreePort();

        // Batches of 8 that a paced stream never fills wait the whole queue delay: frames are still in the
        // first server's engine when it goes.
        using var first = ServerProcess.Start(port, "--MaskFormer:Streaming:DrainTimeout=00:00:05", "--MaskFormer:Inference:MaxBatchSize=8", "--MaskFormer:Inference:MaxQueueDelay=00:00:01");
        await first.WaitUntilReadyAsync(TimeSpan.FromSeconds(120));

        // 16 frames at 2 a second: most are sent after the first server has gone.
        using var example = Example.Start(["stream", Example.Clip, "--interval", "0.5", "--server", first.Address]);
        using var ending = new Ending(example);
        var lines = new List<(string Line, long At)>();
        long secondStarted = 0;
        var errors = example.StandardError.ReadToEndAsync();
        var reading = Task.Run(async () =>
        {
            while (await example.StandardOutput.ReadLineAsync() is { } line)
            {
                lock (lines)
                {
                    lines.Add((line, Stopwatch.GetTimestamp()));
                }
            }
        });
        string Output()
        {
            lock (lines)
            {
                return string.Join('\n', lines.Select(l => l.Line));
            }
        }

        string Timed()
        {
            lock (lines)
            {
                return string.Join('\n', lines.Select(l => $"{Stopwatch.GetElapsedTime(secondStarted, l.At).TotalSeconds:F2} {l.Line}"));
            }
        }

        var waited = Stopwatch.StartNew();
        while (StreamTests.FrameLines(Output()).Count < 2)
        {
            if (example.HasExited)
            {
                Assert.Fail($"the stream ended before the server was replaced:\n{Output()}\n{await errors}");
            }

            Assert.True(waited.Elapsed < TimeSpan.FromSeconds(60), $"fewer than 2 answers within 60 s:\n{Output()}\n{first.Output}");
            await Task.Delay(50);
        }

        first.Signal(signal);
        await first.WaitForExitAsync(TimeSpan.FromSeconds(30));
        using var second = ServerProcess.Start(port);
        secondStarted = Stopwatch.GetTimestamp();
        await FinishAsync(example, async () => $"{Output()}\n{await errors}\n{second.Output}");

        await reading;
        var output = Output();
        var message = $"exit {example.ExitCode}\n{Timed()}\n{await errors}\nsecond server:\n{second.Output}";
        Assert.True(example.ExitCode == 0, message);

        // Every frame answered once, in order, with a result; some after the second server started.
        var frames = StreamTests.FrameLines(output);
        Assert.Equal(Enumerable.Range(1, 16), frames.Select(f => f.Id));
        Assert.All(frames, f => Assert.StartsWith("result in ", f.Outcome, StringComparison.Ordinal));
        var later = lines.FirstOrDefault(l => l.Line.StartsWith("frame ", StringComparison.Ordinal) && l.At > secondStarted).Line;
        Assert.True(later is not null, $"every frame was answered before the second server started:\n{message}");

        // With deltas: the new call's first result is complete, and the rebuilder takes it as its new base.
        Assert.True(later.EndsWith(" [complete]", StringComparison.Ordinal), $"the first result on the second server is a delta:\n{message}");
        Assert.Contains(lines, l => l.Line.Contains(" [delta: ", StringComparison.Ordinal));
        var reconnected = lines.SingleOrDefault(l => l.Line.StartsWith("reconnected ", StringComparison.Ordinal)).Line;
        Assert.True(reconnected is not null, $"no line says the stream reconnected:\n{message}");
        Assert.Matches(@"^reconnected \d+ time\(s\) \(.+\); \d+ frame\(s\) sent again$", reconnected);
        if (signal == "KILL")
        {
            // Frames in the killed server's engine got no answer: they went again to the second one.
            Assert.DoesNotMatch("; 0 frame", reconnected);
        }

        // Not compared with a stream without deltas: the new call started its track ids again.
        Assert.Contains("\ncheck: not made: a stream went on new calls", output, StringComparison.Ordinal);
        Assert.EndsWith("sent 16, results 16, errors 0, skipped 0", output, StringComparison.Ordinal);
    }

    [Fact]
    public async Task Stream_ServerDrainsWhileNoFrameIsInFlight_HalfClosesOnAStatusMessage()
    {
        var port = Example.FreePort();
        var folder = Directory.CreateTempSubdirectory("maskformer-examples-");
        try
        {
            foreach (var name in (string[])["frame_000.png", "frame_001.png"])
            {
                File.Copy(Path.Combine(Example.Clip, name), Path.Combine(folder.FullName, name));
            }

            // A drain far longer than the test: while the stream is open the first server can end before it
            // only when the stream half-closes.
            using var first = ServerProcess.Start(port, "--MaskFormer:Streaming:DrainTimeout=00:03:00");
            await first.WaitUntilReadyAsync(TimeSpan.FromSeconds(120));

            // Frame 2 comes 60 s after frame 1: no answer between them can say that the server drains.
            using var example = Example.Start(["stream", folder.FullName, "--interval", "60", "--no-check", "--server", first.Address]);
            using var ending = new Ending(example);
            var output = new List<string>();
            var errors = example.StandardError.ReadToEndAsync();
            var firstAnswer = new TaskCompletionSource(TaskCreationOptions.RunContinuationsAsynchronously);
            var reading = Task.Run(async () =>
            {
                while (await example.StandardOutput.ReadLineAsync() is { } line)
                {
                    lock (output)
                    {
                        output.Add(line);
                    }

                    if (line.StartsWith("frame 1 ", StringComparison.Ordinal))
                    {
                        firstAnswer.TrySetResult();
                    }
                }
            });
            string Output()
            {
                lock (output)
                {
                    return string.Join('\n', output);
                }
            }

            var answered = await Task.WhenAny(firstAnswer.Task, Task.Delay(TimeSpan.FromSeconds(60)));
            Assert.True(answered == firstAnswer.Task, $"frame 1 not answered within 60 s:\n{Output()}\n{first.Output}");

            // The stream's status messages (one a second) say draining: it half-closes, its call ends OK and
            // the server exits, long before frame 2 would have told it.
            first.Signal("TERM");
            await first.WaitForExitAsync(TimeSpan.FromSeconds(20));
            using var second = ServerProcess.Start(port);
            await FinishAsync(example, async () => $"{Output()}\n{await errors}\n{second.Output}");

            await reading;
            var message = $"exit {example.ExitCode}\n{Output()}\n{await errors}\nsecond server:\n{second.Output}";
            Assert.True(example.ExitCode == 0, message);
            var frames = StreamTests.FrameLines(Output());
            Assert.Equal([1, 2], frames.Select(f => f.Id));
            Assert.All(frames, f => Assert.StartsWith("result in ", f.Outcome, StringComparison.Ordinal));
            Assert.Contains(output, l => l.StartsWith("reconnected ", StringComparison.Ordinal));
            Assert.EndsWith("sent 2, results 2, errors 0, skipped 0", Output(), StringComparison.Ordinal);
        }
        finally
        {
            folder.Delete(recursive: true);
        }
    }

    /// <summary>Waits for the example to end, 150 s at most; kills it and fails with <paramref name="describe"/>'s text if it does not.</summary>
    private static async Task FinishAsync(Process example, Func<Task<string>> describe)
    {
        using var timeout = new CancellationTokenSource(TimeSpan.FromSeconds(150));
        try
        {
            await example.WaitForExitAsync(timeout.Token);
        }
        catch (OperationCanceledException)
        {
            example.Kill(entireProcessTree: true);
            Assert.Fail($"the stream did not finish within 150 s of the second server's start:\n{await describe()}");
        }
    }
}
