using System.Globalization;
using Google.Protobuf;
using Grpc.Core;
using MaskFormer.Contracts.V1;

namespace MaskFormer.Examples;

/// <summary>
/// <c>stream FOLDER</c>: the folder's frames through one <see cref="ResumingStream"/> (a StreamConfig, then a
/// StreamFrame per image, ids 1..N), one line per answer as it comes, and a last line counting them.
/// </summary>
internal static class StreamCommand
{
    public const string Usage = """
        usage: MaskFormer.Examples stream FOLDER [--out DIR] [--tasks LIST] [--model NAME] [--policy POLICY]
                                              [--in-flight N] [--interval SECONDS] [--reconnect-for SECONDS]
                                              [--server ADDRESS] [--connect-timeout SECONDS] [--wait-for-server]
          --out DIR                 write each result's files there, as segment does (default: none written)
          --tasks LIST              semantic, instance, panoptic, comma-separated (default panoptic)
          --model NAME              the model (default: the server's default model)
          --policy POLICY           queue, drop-oldest or latest-only (default queue)
          --in-flight N             frames of this stream in the engine at once (default 0: the server's default)
          --interval SECONDS        wait between frames, as a camera would (default 0)
          --reconnect-for SECONDS   reconnect until a frame has waited this long with no answer (default 60)
        """;

    private static readonly string[] s_options = ["out", "tasks", "model", "policy", "in-flight", "interval", "reconnect-for", .. Connection.Options];

    public static async Task<int> RunAsync(IEnumerable<string> args, CancellationToken cancellationToken)
    {
        var line = CommandLine.Parse(args, s_options, Connection.Flags);
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
        var interval = TimeSpan.FromSeconds(line.Seconds("interval", 0, zeroAllowed: true));
        var reconnectFor = TimeSpan.FromSeconds(line.Seconds("reconnect-for", 60));
        var outFolder = line.Has("out") ? line.Get("out", ".") : null;
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

        var inFlight = config.MaxInFlight == 0 ? "server default" : config.MaxInFlight.ToString(CultureInfo.InvariantCulture);
        Console.WriteLine($"streaming {paths.Count} frames from {folder} to {connection.Address} (policy {policyName}, in-flight {inFlight}, tasks {taskNames}, complete results)");
        using var channel = await connection.OpenAsync(cancellationToken);
        var stream = new ResumingStream(new SegmentationService.SegmentationServiceClient(channel), config, reconnectFor);
        var counts = new Counts();
        var problems = new List<string>();
        var sending = SendAsync(stream, paths, interval, problems, cancellationToken);
        var running = stream.RunAsync(cancellationToken);
        try
        {
            ulong expected = 1;
            await foreach (var answer in stream.ReadAllAsync(cancellationToken))
            {
                if (answer.OutcomeCase == SegmentStreamResponse.OutcomeOneofCase.Status)
                {
                    continue;
                }

                if (answer.FrameId != expected)
                {
                    problems.Add($"an answer for frame {answer.FrameId} where frame {expected} was due");
                }

                expected = answer.FrameId + 1;
                var name = answer.FrameId >= 1 && answer.FrameId <= (ulong)paths.Count ? paths[(int)answer.FrameId - 1] : null;
                Console.WriteLine(Describe(answer, name is null ? null : Path.GetFileName(name), counts));
                if (outFolder is not null && name is not null && answer.Result is { } result)
                {
                    await ResultFiles.WriteAsync(outFolder, name, result, cancellationToken);
                }
            }

            await running;
            await sending;
        }
        catch (RpcException ex) when (!cancellationToken.IsCancellationRequested)
        {
            await Console.Error.WriteLineAsync($"error: SegmentStream failed with {Names.Code(ex.StatusCode)}: {ex.Status.Detail}");
            return 1;
        }

        if (stream.Reconnects > 0)
        {
            Console.WriteLine($"reconnected {stream.Reconnects} time(s) ({stream.LastReconnect}); {stream.FramesSentAgain} frame(s) sent again");
        }

        problems.AddRange(stream.Problems);
        if (counts.Other > 0)
        {
            problems.Add($"{counts.Other} answer(s) with no outcome");
        }

        if (counts.Answered != counts.Sent)
        {
            problems.Add($"{counts.Sent} frames sent but {counts.Answered} answered");
        }

        foreach (var problem in problems)
        {
            await Console.Error.WriteLineAsync($"error: {problem}");
        }

        Console.WriteLine($"sent {counts.Sent}, results {counts.Results}, errors {counts.Errors}, skipped {counts.Skipped}");
        return problems.Count == 0 && counts.Errors == 0 ? 0 : 1;

        async Task SendAsync(ResumingStream stream, IReadOnlyList<string> paths, TimeSpan interval, List<string> problems, CancellationToken cancellationToken)
        {
            try
            {
                for (var i = 0; i < paths.Count; i++)
                {
                    if (i > 0 && interval > TimeSpan.Zero)
                    {
                        await Task.Delay(interval, cancellationToken);
                    }

                    byte[] image;
                    try
                    {
                        image = await File.ReadAllBytesAsync(paths[i], cancellationToken);
                    }
                    catch (Exception ex) when (ex is IOException or UnauthorizedAccessException)
                    {
                        problems.Add($"frame {i + 1}: cannot read {paths[i]}: {ex.Message}; nothing sent after it");
                        return;
                    }

                    await stream.SendAsync(new StreamFrame { FrameId = (ulong)i + 1, Image = new Image { Encoded = ByteString.CopyFrom(image) } }, cancellationToken);
                    counts.Sent++;
                }
            }
            finally
            {
                stream.Complete();
            }
        }
    }

    /// <summary>One line for one answer: the outcome and, for a result, the panoptic segments as label#track.</summary>
    private static string Describe(SegmentStreamResponse answer, string? name, Counts counts)
    {
        var head = $"frame {answer.FrameId}{(name is null ? "" : $" {name}")}:";
        switch (answer.OutcomeCase)
        {
            case SegmentStreamResponse.OutcomeOneofCase.Result:
                counts.Results++;
                var segments = answer.Result.Panoptic?.Segments ?? [];
                var things = string.Join(' ', segments.Where(s => s.IsThing).Select(s => $"{s.LabelName}#{s.TrackId}"));
                var stuff = string.Join(' ', segments.Where(s => !s.IsThing).Select(s => $"{s.LabelName}#{s.TrackId}"));
                var ms = (answer.Result.Timings?.TotalMs ?? 0).ToString("F1", CultureInfo.InvariantCulture);
                return $"{head} result in {ms} ms; things: {(things.Length > 0 ? things : "-")}; stuff: {(stuff.Length > 0 ? stuff : "-")}";
            case SegmentStreamResponse.OutcomeOneofCase.Error:
                counts.Errors++;
                return $"{head} ERROR {Names.Code(answer.Error.Code)}: {answer.Error.Message}";
            case SegmentStreamResponse.OutcomeOneofCase.Skipped:
                counts.Skipped++;
                return $"{head} skipped ({Names.Of(answer.Skipped.Reason)})";
            default:
                counts.Other++;
                return $"{head} no outcome";
        }
    }

    private sealed class Counts
    {
        public int Sent { get; set; }

        public int Results { get; set; }

        public int Errors { get; set; }

        public int Skipped { get; set; }

        public int Other { get; set; }

        public int Answered => Results + Errors + Skipped + Other;
    }
}
