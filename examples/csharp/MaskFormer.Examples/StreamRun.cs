using System.Globalization;
using Google.Protobuf;
using MaskFormer.Contracts.V1;

namespace MaskFormer.Examples;

/// <summary>One stream of a folder's frames: what came back, the rebuilt frames, and whether the answers kept the contract.</summary>
internal sealed class StreamRun
{
    private StreamRun(ResumingStream stream) => Stream = stream;

    public ResumingStream Stream { get; }

    public int Sent { get; private set; }

    public int Results { get; private set; }

    public int Errors { get; private set; }

    public int Skipped { get; private set; }

    /// <summary>The answers, in frame order (StreamStatus messages left out).</summary>
    public List<SegmentStreamResponse> Answers { get; } = [];

    /// <summary>Every result as a complete frame, by frame id.</summary>
    public Dictionary<ulong, Frame> Frames { get; } = [];

    public DeltaRebuilder Rebuilder { get; } = new();

    /// <summary>Frames unread, answers out of order or missing, answers without an outcome.</summary>
    public List<string> Problems { get; } = [];

    /// <summary>Streams <paramref name="paths"/> as frames 1..N; with <paramref name="print"/>, a line per answer as it comes.</summary>
    public static async Task<StreamRun> RunAsync(SegmentationService.SegmentationServiceClient client, StreamConfig config, IReadOnlyList<string> paths, StreamOptions options, bool print, CancellationToken cancellationToken)
    {
        var run = new StreamRun(new ResumingStream(client, config, options.ReconnectFor));
        using var stop = CancellationTokenSource.CreateLinkedTokenSource(cancellationToken);
        var sending = run.SendAsync(paths, options.Interval, stop.Token);
        var running = run.Stream.RunAsync(stop.Token);
        try
        {
            await run.ReadAsync(paths, config, options, print, cancellationToken);
        }
        catch
        {
            // The stream failed, or an answer could not be rebuilt or written: nothing of this stream may
            // outlive it. The sender may wait for a call that will never take its frame, the calls may still
            // run; both are stopped and awaited, their own failures seen here (the reader's is the one thrown).
            await stop.CancelAsync();
            await WhenStoppedAsync(sending);
            await WhenStoppedAsync(running);
            throw;
        }

        await running;
        await sending;
        run.Problems.AddRange(run.Stream.Problems);
        if (run.Answers.Count != run.Sent)
        {
            run.Problems.Add($"{run.Sent} frames sent but {run.Answers.Count} answered");
        }

        return run;
    }

    // Waits for a task that was told to stop, whatever way it ends.
    private static async Task WhenStoppedAsync(Task task)
    {
        try
        {
            await task;
        }
        catch (Exception)
        {
            // Cancelled, or the stream's own failure, which the reader has already met.
        }
    }

    private async Task ReadAsync(IReadOnlyList<string> paths, StreamConfig config, StreamOptions options, bool print, CancellationToken cancellationToken)
    {
        ulong expected = 1;
        await foreach (var answer in Stream.ReadAllAsync(cancellationToken))
        {
            if (answer.OutcomeCase == SegmentStreamResponse.OutcomeOneofCase.Status)
            {
                continue;
            }

            if (answer.FrameId != expected)
            {
                Problems.Add($"an answer for frame {answer.FrameId} where frame {expected} was due");
            }

            expected = answer.FrameId + 1;
            Answers.Add(answer);
            var path = answer.FrameId >= 1 && answer.FrameId <= (ulong)paths.Count ? paths[(int)answer.FrameId - 1] : null;
            var frame = answer.Result is { } result ? Rebuilder.Apply(result) : null;
            if (frame is not null)
            {
                Frames[answer.FrameId] = frame;
            }

            var description = Describe(answer, path is null ? null : Path.GetFileName(path));
            if (print)
            {
                Console.WriteLine(config.Delta is { Enabled: true } && frame is not null ? description + DeltaNote(frame.Result) : description);
            }

            if (options.Out is not null && path is not null && frame is not null)
            {
                await ResultFiles.WriteAsync(options.Out, path, frame.ToResponse(), cancellationToken);
            }
        }
    }

    private async Task SendAsync(IReadOnlyList<string> paths, TimeSpan interval, CancellationToken cancellationToken)
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
                    Problems.Add($"frame {i + 1}: cannot read {paths[i]}: {ex.Message}; nothing sent after it");
                    return;
                }

                await Stream.SendAsync(new StreamFrame { FrameId = (ulong)i + 1, Image = new Image { Encoded = ByteString.CopyFrom(image) } }, cancellationToken);
                Sent++;
            }
        }
        finally
        {
            Stream.Complete();
        }
    }

    /// <summary>One line for one answer: the outcome and, for a result, the panoptic segments as label#track.</summary>
    private string Describe(SegmentStreamResponse answer, string? name)
    {
        var head = $"frame {answer.FrameId}{(name is null ? "" : $" {name}")}:";
        switch (answer.OutcomeCase)
        {
            case SegmentStreamResponse.OutcomeOneofCase.Result:
                Results++;
                var segments = answer.Result.Panoptic?.Segments ?? [];
                var things = string.Join(' ', segments.Where(s => s.IsThing).Select(s => $"{s.LabelName}#{s.TrackId}"));
                var stuff = string.Join(' ', segments.Where(s => !s.IsThing).Select(s => $"{s.LabelName}#{s.TrackId}"));
                var ms = (answer.Result.Timings?.TotalMs ?? 0).ToString("F1", CultureInfo.InvariantCulture);
                return $"{head} result in {ms} ms; things: {(things.Length > 0 ? things : "-")}; stuff: {(stuff.Length > 0 ? stuff : "-")}";
            case SegmentStreamResponse.OutcomeOneofCase.Error:
                Errors++;
                return $"{head} ERROR {Names.Code(answer.Error.Code)}: {answer.Error.Message}";
            case SegmentStreamResponse.OutcomeOneofCase.Skipped:
                Skipped++;
                return $"{head} skipped ({Names.Of(answer.Skipped.Reason)})";
            default:
                Problems.Add($"the answer for frame {answer.FrameId} has no outcome");
                return $"{head} no outcome";
        }
    }

    /// <summary>How a result came: " [complete]" or " [delta: N patches, M masks by track id]".</summary>
    private static string DeltaNote(SegmentResponse result)
    {
        var patches = (result.Semantic?.LabelMapDelta?.Patches.Count ?? 0) + (result.Panoptic?.SegmentIdDelta?.Patches.Count ?? 0);
        var deltas = result.Semantic?.LabelMapDelta is not null || result.Panoptic?.SegmentIdDelta is not null;
        var unchanged = result.Instance?.Instances.Count(i => i.MaskUnchanged) ?? 0;
        return deltas || unchanged > 0 ? $" [delta: {patches} patches, {unchanged} masks by track id]" : " [complete]";
    }
}
