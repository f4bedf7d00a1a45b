using System.Globalization;
using Grpc.Core;
using MaskFormer.Contracts.V1;

namespace MaskFormer.Examples;

/// <summary>
/// <c>stream FOLDER</c>: the folder's frames through one <see cref="ResumingStream"/> (a StreamConfig, then a
/// StreamFrame per image, ids 1..N), one line per answer as it comes, and a last line counting them. With
/// deltas (unless --no-delta) every result is rebuilt (<see cref="DeltaRebuilder"/>) and, unless --no-check,
/// the frames are streamed again without deltas and every rebuilt frame compared with its complete answer.
/// </summary>
internal static class StreamCommand
{
    public const string Usage = """
        usage: MaskFormer.Examples stream FOLDER [--out DIR] [--tasks LIST] [--model NAME] [--policy POLICY]
                                              [--in-flight N] [--interval SECONDS] [--reconnect-for SECONDS]
                                              [--keyframe-interval N] [--no-delta] [--no-check]
                                              [--server ADDRESS] [--connect-timeout SECONDS] [--wait-for-server]
          --out DIR                 write each result's files there, as segment does (default: none written)
          --tasks LIST              semantic, instance, panoptic, comma-separated (default panoptic)
          --model NAME              the model (default: the server's default model)
          --policy POLICY           queue, drop-oldest or latest-only (default queue)
          --in-flight N             frames of this stream in the engine at once (default 0: the server's default)
          --interval SECONDS        wait between frames, as a camera would (default 0)
          --reconnect-for SECONDS   reconnect until a frame has waited this long with no answer (default 60)
          --keyframe-interval N     with deltas, a complete result at least every N results (default 0: only when needed)
          --no-delta                complete results, not deltas
          --no-check                do not compare the rebuilt frames with a stream without deltas
        """;

    private static readonly string[] s_options = ["out", "tasks", "model", "policy", "in-flight", "interval", "reconnect-for", "keyframe-interval", .. Connection.Options];
    private static readonly string[] s_flags = ["no-delta", "no-check", .. Connection.Flags];

    public static async Task<int> RunAsync(IEnumerable<string> args, CancellationToken cancellationToken)
    {
        var line = CommandLine.Parse(args, s_options, s_flags);
        if (line.Positional.Count != 1)
        {
            throw new UsageException($"give one FOLDER (got {line.Positional.Count})");
        }

        var folder = line.Positional[0];
        var policyName = line.Get("policy", "queue");
        var config = new StreamConfig
        {
            Model = line.Get("model", ""),
            OverloadPolicy = policyName switch
            {
                "queue" => OverloadPolicy.Queue,
                "drop-oldest" => OverloadPolicy.DropOldest,
                "latest-only" => OverloadPolicy.LatestOnly,
                _ => throw new UsageException("--policy takes queue, drop-oldest or latest-only"),
            },
            MaxInFlight = (uint)line.Count("in-flight", 0),
        };
        var taskNames = line.Get("tasks", "panoptic");
        config.Tasks.AddRange(Tasks.Parse(taskNames));
        var deltas = !line.Has("no-delta");
        var keyframeInterval = (uint)line.Count("keyframe-interval", 0);
        var options = new StreamOptions(
            TimeSpan.FromSeconds(line.Seconds("interval", 0, zeroAllowed: true)),
            TimeSpan.FromSeconds(line.Seconds("reconnect-for", 60)),
            line.Has("out") ? line.Get("out", ".") : null);
        var connection = Connection.From(line);

        IReadOnlyList<string> paths;
        try
        {
            paths = Frames.List(folder);
        }
        catch (Exception ex) when (ex is IOException or UnauthorizedAccessException)
        {
            await Console.Error.WriteLineAsync($"error: cannot read {folder}: {ex.Message}");
            return 1;
        }

        if (paths.Count == 0)
        {
            await Console.Error.WriteLineAsync($"error: no frames in {folder}");
            return 1;
        }

        if (options.Out is not null)
        {
            ResultFiles.CreateFolder(options.Out);
        }

        var inFlight = config.MaxInFlight == 0 ? "server default" : config.MaxInFlight.ToString(CultureInfo.InvariantCulture);
        Console.WriteLine($"streaming {paths.Count} frames from {folder} to {connection.Address} (policy {policyName}, in-flight {inFlight}, tasks {taskNames}, {(deltas ? "deltas" : "complete results")})");
        using var channel = await connection.OpenAsync(cancellationToken);
        var client = new SegmentationService.SegmentationServiceClient(channel);
        StreamRun run;
        Check? check = null;
        try
        {
            var withDeltas = config.Clone();
            withDeltas.Delta = deltas ? new DeltaOptions { Enabled = true, KeyframeInterval = keyframeInterval } : null;
            run = await StreamRun.RunAsync(client, withDeltas, paths, options, print: true, cancellationToken);

            // A stream that failed already, or got no result (a model the server does not serve), has nothing to check.
            if (deltas && !line.Has("no-check") && run.Problems.Count == 0 && run.Results > 0)
            {
                var complete = await StreamRun.RunAsync(client, config, paths, options with { Interval = TimeSpan.Zero, Out = null }, print: false, cancellationToken);
                check = Check.Compare(run, complete);
            }
        }
        catch (RpcException ex) when (!cancellationToken.IsCancellationRequested)
        {
            await Console.Error.WriteLineAsync($"error: SegmentStream failed with {Names.Code(ex.StatusCode)}: {ex.Status.Detail}");
            return 1;
        }
        catch (InvalidDataException ex)
        {
            await Console.Error.WriteLineAsync($"error: a delta result cannot be rebuilt: {ex.Message}");
            return 1;
        }

        if (run.Stream.Reconnects > 0)
        {
            Console.WriteLine($"reconnected {run.Stream.Reconnects} time(s) ({run.Stream.LastReconnect}); {run.Stream.FramesSentAgain} frame(s) sent again");
        }

        foreach (var problem in run.Problems.Concat(check?.Differences ?? []))
        {
            await Console.Error.WriteLineAsync($"error: {problem}");
        }

        foreach (var checkLine in check?.Lines() ?? [])
        {
            Console.WriteLine(checkLine);
        }

        Console.WriteLine($"sent {run.Sent}, results {run.Results}, errors {run.Errors}, skipped {run.Skipped}");
        return run.Problems.Count == 0 && run.Errors == 0 && (check?.Passed ?? true) ? 0 : 1;
    }
}

/// <summary>How a stream paces and keeps its frames.</summary>
internal sealed record StreamOptions(TimeSpan Interval, TimeSpan ReconnectFor, string? Out);
