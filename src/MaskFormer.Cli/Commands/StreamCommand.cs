using System.Diagnostics;
using System.Globalization;
using System.Runtime.ExceptionServices;
using System.Threading.Channels;
using Grpc.Core;
using MaskFormer.Cli.Rendering;
using MaskFormer.Contracts.V1;
using Spectre.Console;

namespace MaskFormer.Cli.Commands;

/// <summary>
/// <c>maskformer stream INPUT</c>: streams a video (decoded by ffmpeg) or a folder of images through
/// SegmentStream at the source's frame rate, shows frames per second, latency and skipped frames live,
/// and writes an overlay video or overlay PNGs.
/// </summary>
internal static class StreamCommand
{
    // Frames sent but not yet drawn. Past this the sender waits for the drawing, never the reader: an
    // answer is always read (and timed) as soon as it arrives, and memory stays bounded.
    private const int MaxUndrawnFrames = 128;

    // How long an interrupted stream waits for ffmpeg to finish the video drawn so far.
    private static readonly TimeSpan s_finishTimeout = TimeSpan.FromSeconds(30);

    // How often the server reports its figures, shown live.
    private const uint StatusIntervalMs = 500;

    public static CommandInfo Info { get; } = new(
        "stream",
        "stream a video or a folder of frames; live fps, latency, skipped; overlay video out",
        $"""
        usage: maskformer stream INPUT(video|folder) [--out out.mp4|DIR] [--task semantic|panoptic|instance] [options]
        Streams INPUT through SegmentStream, sending frames at the source's own frame rate (a video's, or
        10 fps for a folder of images) as a camera would. Shows answers, skipped frames, fps and latency
        (from sending a frame to reading its answer; drawing the overlays is not counted). A folder's frames
        are its images in name order; a broken symbolic link among them, or one of 2 GiB or more, refuses
        the folder before anything is sent.
        Overlays go to a video when --out ends in .mp4/.mkv/.webm/.avi (ffmpeg), else as PNGs in the folder.
        A frame the server skipped repeats the last overlay. A frame that failed has its error printed (the
        first 10; the rest are counted) and no overlay PNG; in a video it repeats the last overlay to keep the
        timing. A video has its first overlay's size: one of another size is scaled to fit. The server's own
        figures (achieved and sustainable rate, result age, skips by reason) come from its status messages,
        shown live and at the end.
          --out PATH             overlay video or folder (default stream-out)
          --task NAME            semantic, panoptic or instance (default semantic); --panoptic is short for panoptic
          --policy NAME          queue, drop-oldest or latest-only: what the server does when frames come too fast (default queue)
          --in-flight N          frames of this stream in the engine at once (default 4)
          --fps N                send at N frames per second instead of the source's rate (or the target's)
          --target-fps N         latency contract: the rate wanted; the server adapts frames in flight to it (frames are sent at it unless --fps)
          --max-age D            latency contract: the oldest a result may be, e.g. 100ms or 0.2s; older frames are skipped (too_old)
          --allow-downscale      latency contract: the server may lower the output resolution to keep up
          --delta                results as changes from the previous one (StreamConfig.delta), rebuilt here before drawing
          --no-overlays          draw nothing: measure the stream alone
          --no-pacing            send as fast as the stream accepts them
          --reconnect-for S      when the server drains or goes away, reconnect and send again every frame
                                 without a result; give up once a frame has waited S seconds with no
                                 answer (default 60; a pause in the input does not count)
          --model NAME           the model (default: the server's default model)
          --alpha A              strength of the class colours over the image, 0..1 (default 0.6)
          --min-score S          instance: the lowest score kept and drawn (default 0.5)
        {CliApp.ServerHelp}
        """,
        ["out", "task", "panoptic", "policy", "in-flight", "fps", "no-pacing", "model", "alpha", "min-score", "target-fps", "max-age", "allow-downscale", "delta", "no-overlays", "reconnect-for"],
        RunAsync);

    public static async Task<int> RunAsync(CommandArguments args, TextWriter output, TextWriter error, CancellationToken cancellationToken)
    {
        if (args.Positional.Count != 1)
        {
            throw new UsageException($"give one INPUT, a video or a folder of images (got {args.Positional.Count}); see 'maskformer stream --help'.");
        }

        var config = ToConfig(args);
        var task = config.Tasks[0];
        var options = new OverlayOptions { Alpha = Math.Clamp(args.GetDouble("alpha", 0.6), 0, 1) };
        var console = AnsiConsole.Create(new AnsiConsoleSettings { Out = new AnsiConsoleOutput(output) });
        if (!ReferenceEquals(output, Console.Out) || Console.IsOutputRedirected)
        {
            // Logs and pipes have no width; keep each status on one line.
            console.Profile.Width = Math.Max(console.Profile.Width, 320);
        }

        // Stdout and stderr on one terminal: the live progress redraws over lines written to stderr behind its
        // back, so there they go through its console, which writes them above it.
        Action<string> writeError = ReferenceEquals(output, Console.Out) && ReferenceEquals(error, Console.Error) && !Console.IsOutputRedirected && !Console.IsErrorRedirected
            ? console.WriteLine
            : error.WriteLine;

        // A terminal's Ctrl+C goes to the ffmpeg processes this command starts as well (the whole process
        // group), and one of them can stop before this process hears of it: then it interrupts the command.
        using var interruption = CancellationTokenSource.CreateLinkedTokenSource(cancellationToken);
        cancellationToken = interruption.Token;
        await using var source = await FrameSource.OpenAsync(args.Positional[0], interruption.Cancel, cancellationToken).ConfigureAwait(false);
        var fps = args.Has("fps") ? args.GetDouble("fps", 0) : config.Latency is { TargetFps: > 0 } latency ? latency.TargetFps : source.FramesPerSecond;
        var pacer = args.Has("no-pacing") ? null : new FramePacer(fps, TimeProvider.System);

        using var channel = ServerChannel.Open(args);
        var client = new SegmentationService.SegmentationServiceClient(channel);
        var models = await RetryingCall.CallAsync(deadline => client.ListModelsAsync(new ListModelsRequest(), deadline: deadline, cancellationToken: cancellationToken), TimeSpan.FromSeconds(30), cancellationToken).ConfigureAwait(false);
        var modelName = args.Get("model", string.Empty);
        var model = models.Models.FirstOrDefault(m => modelName.Length == 0 ? m.IsDefault : m.Name == modelName)
            ?? throw new UsageException($"--model {modelName}: the server has no such model ({string.Join(", ", models.Models.Select(m => m.Name).Distinct())}).");
        var legend = task == SegmentationTask.Instance ? [] : ResultPictures.ModelLegend(model);
        var labelNames = model.Labels.ToDictionary(l => (int)l.Id, l => l.Name);
        // --no-overlays measures the stream alone: on a small machine drawing can be slower than the server.
        await using var sink = args.Has("no-overlays") ? null : new OverlaySink(args.Get("out", "stream-out"), fps, task, labelNames, legend, options, writeError, interruption.Cancel);

        console.MarkupLineInterpolated($"streaming {args.Positional[0]} ({(source.Count > 0 ? $"{source.Count} frames" : "frames")}) to {args.ServerAddress} {(pacer is null ? "as fast as the stream accepts them" : string.Create(CultureInfo.InvariantCulture, $"at {fps:0.##} fps"))}, {task.ToString().ToLowerInvariant()}, policy {args.Get("policy", "queue")}, {StreamStats.DescribeContract(config.Latency)}");

        using var stop = CancellationTokenSource.CreateLinkedTokenSource(cancellationToken);
        var reconnectFor = args.GetDouble("reconnect-for", 60);
        if (!(reconnectFor > 0))
        {
            throw new UsageException($"--reconnect-for {reconnectFor}: give a number of seconds above 0.");
        }

        // The first failure of the sender, the stream or the drawing stops the rest (a sender that cannot
        // read its next frame would leave the stream waiting for it) and is what the command reports: what
        // fails after it only fails because it was stopped.
        Exception? firstFailure = null;
        async Task StopAsync(Exception failure)
        {
            Interlocked.CompareExchange(ref firstFailure, failure, null);
            await stop.CancelAsync().ConfigureAwait(false);
        }

        async Task StopTheRestIfItFailsAsync(Task part)
        {
            try
            {
                await part.ConfigureAwait(false);
            }
            catch (Exception failure)
            {
                await StopAsync(failure).ConfigureAwait(false);
                throw;
            }
        }

        var stream = new ResumingStream(client, config, TimeSpan.FromSeconds(reconnectFor));
        var running = StopTheRestIfItFailsAsync(stream.RunAsync(stop.Token));

        var stats = new StreamStats();
        var failures = new FailedFrameLog(writeError);
        var sent = new Dictionary<ulong, SentFrame>();
        var sync = new Lock();
        var answers = Channel.CreateUnbounded<(SegmentStreamResponse Response, SentFrame Frame)>(new UnboundedChannelOptions { SingleReader = true, SingleWriter = true });
        using var undrawn = new SemaphoreSlim(MaxUndrawnFrames);
        var heldBack = 0;
        var rebuilder = config.Delta is { Enabled: true } ? new DeltaRebuilder() : null;
        long receivedBytes = 0;
        var results = 0;
        var drawn = 0;
        var clock = Stopwatch.StartNew();

        var sending = StopTheRestIfItFailsAsync(Task.Run(
            async () =>
            {
                ulong id = 0;
                while (await source.NextAsync(stop.Token).ConfigureAwait(false) is { } frame)
                {
                    if (pacer is not null)
                    {
                        await pacer.WaitAsync((long)id, stop.Token).ConfigureAwait(false);
                    }

                    if (!undrawn.Wait(0, CancellationToken.None))
                    {
                        heldBack++;
                        await undrawn.WaitAsync(stop.Token).ConfigureAwait(false);
                    }

                    lock (sync)
                    {
                        sent[id] = new SentFrame(frame.Image, frame.Name, Stopwatch.GetTimestamp());
                    }

                    await stream.SendAsync(new StreamFrame { FrameId = id++, Image = frame.Image }, stop.Token).ConfigureAwait(false);
                }

                stream.Complete();
            },
            stop.Token));

        // Answers are timed here, as they are read, and drawn by the loop below, so drawing never delays a
        // reading. Its failures, and the stream's, end the answers, and so the loop below.
        var receiving = Task.Run(
            async () =>
            {
                try
                {
                    await foreach (var response in stream.ReadAllAsync(stop.Token).ConfigureAwait(false))
                    {
                        if (response.OutcomeCase == SegmentStreamResponse.OutcomeOneofCase.Status)
                        {
                            stats.Record(response.Status);
                            continue;
                        }

                        var arrived = Stopwatch.GetTimestamp();
                        SentFrame frame;
                        lock (sync)
                        {
                            frame = sent[response.FrameId];
                            sent.Remove(response.FrameId);
                        }

                        stats.Record(response, Stopwatch.GetElapsedTime(frame.Timestamp, arrived), clock.Elapsed);
                        receivedBytes += response.CalculateSize();
                        answers.Writer.TryWrite((response, frame));
                    }

                    answers.Writer.Complete();
                }
                catch (Exception ex)
                {
                    answers.Writer.Complete(ex);
                }
            },
            stop.Token);

        try
        {
            await console.Progress()
                .AutoClear(false)
                .Columns(new TaskDescriptionColumn(), new ProgressBarColumn(), new PercentageColumn(), new ElapsedTimeColumn())
                .StartAsync(async progress =>
                {
                    var bar = progress.AddTask("streaming", maxValue: source.Count > 0 ? source.Count : 1);
                    await foreach (var (answer, frame) in answers.Reader.ReadAllAsync(stop.Token).ConfigureAwait(false))
                    {
                        var response = answer;
                        results += answer.Result is null ? 0 : 1;
                        if (answer.Error is { } failure)
                        {
                            failures.Write(frame.Name, failure);
                        }

                        if (rebuilder is not null && answer.Result is { } delta)
                        {
                            response = answer.Clone();
                            response.Result = rebuilder.Rebuild(delta);
                        }

                        if (sink is not null)
                        {
                            drawn += await sink.WriteAsync(frame.Image, frame.Name, response, stop.Token).ConfigureAwait(false) ? 1 : 0;
                        }

                        undrawn.Release();
                        bar.Increment(1);
                        bar.Description = stats.Describe();
                    }

                    bar.Value = bar.MaxValue;
                }).ConfigureAwait(false);
            await Task.WhenAll(sending, receiving, running).ConfigureAwait(false);
            if (sink is not null)
            {
                await sink.CompleteAsync(stop.Token).ConfigureAwait(false);
            }
        }
        catch (Exception failure)
        {
            await StopAsync(failure).ConfigureAwait(false);

            // None is left running once the command returns, and none's failure goes unobserved: each is
            // the first failure, reported below, or came of being stopped.
            await Task.WhenAll(sending, receiving, running).ConfigureAwait(ConfigureAwaitOptions.SuppressThrowing);
            if (cancellationToken.IsCancellationRequested && sink is not null)
            {
                // Interrupted (Ctrl+C): the overlays drawn so far are kept, and a video is finished so that it
                // plays up to the interruption (ffmpeg writes its index only when its input ends).
                using var finishing = new CancellationTokenSource(s_finishTimeout);
                await sink.CompleteAsync(finishing.Token, interrupted: true).ConfigureAwait(false);
                console.MarkupLineInterpolated($"[yellow]interrupted: {drawn} frame(s) drawn in {sink.Destination}[/]");
            }

            ExceptionDispatchInfo.Throw(firstFailure ?? failure);
        }
        finally
        {
            failures.WriteNotShown();
        }

        console.MarkupLineInterpolated($"[green]{stats.Describe()}[/] (latency: frame sent to answer read){(sink is null ? string.Empty : $"; overlays in {sink.Destination}")}");
        if (stats.ServerSummary(config.Latency) is { } summary)
        {
            console.MarkupLineInterpolated($"[green]{summary}[/]");
        }

        if (rebuilder is not null)
        {
            console.MarkupLineInterpolated($"[green]deltas: {rebuilder.Deltas} of {results} results came as changes from the previous one; {receivedBytes:N0} bytes of answers received[/]");
        }

        if (stream.Reconnects > 0)
        {
            console.MarkupLineInterpolated($"[yellow]reconnected {stream.Reconnects} time(s) ({stream.LastReconnect}); {stream.FramesSentAgain} frame(s) sent again, every frame answered once[/]");
        }

        if (heldBack > 0)
        {
            console.MarkupLineInterpolated($"[yellow]drawing the overlays fell {MaxUndrawnFrames} frames behind, so {heldBack} frames were sent late: the rate shown is this client's, not the server's (try --out with a folder, or --no-pacing to measure the server)[/]");
        }
        return stats.Errors == 0 ? 0 : 1;
    }

    /// <summary>The StreamConfig the options ask for: model, task, policy, in-flight, latency contract; status every 500 ms.</summary>
    public static StreamConfig ToConfig(CommandArguments args)
    {
        var policy = args.Get("policy", "queue") switch
        {
            "queue" => OverloadPolicy.Queue,
            "drop-oldest" => OverloadPolicy.DropOldest,
            "latest-only" => OverloadPolicy.LatestOnly,
            var other => throw new UsageException($"--policy {other}: use queue, drop-oldest or latest-only."),
        };
        var tasks = SegmentCommand.ParseTasks(args.Has("panoptic") ? "panoptic" : args.Get("task", "semantic"));
        var task = tasks.Count == 1 ? tasks[0] : throw new UsageException("--task: a stream draws one task; give semantic, panoptic or instance.");
        var config = new StreamConfig
        {
            Model = args.Get("model", string.Empty),
            OverloadPolicy = policy,
            MaxInFlight = (uint)args.GetDouble("in-flight", 4),
            Options = new SegmentationOptions { InstanceScoreThreshold = (float)args.GetDouble("min-score", 0.5), RleFormat = RleFormat.Counts },
            Latency = LatencyArguments.Parse(args),
            StatusIntervalMs = StatusIntervalMs,
            Delta = args.Has("delta") ? new DeltaOptions { Enabled = true } : null,
        };
        config.Tasks.Add(task);
        return config;
    }

    private sealed record SentFrame(Contracts.V1.Image Image, string Name, long Timestamp);
}
