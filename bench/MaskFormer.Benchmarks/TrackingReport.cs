using System.Globalization;
using MaskFormer.Benchmarks.Report;
using MaskFormer.Engine.Decoding;
using MaskFormer.Engine.Models;
using MaskFormer.Engine.Postprocessing;
using MaskFormer.Engine.Preprocessing;
using MaskFormer.Engine.Sessions;
using MaskFormer.Engine.Tracking;
using Microsoft.Extensions.Options;
using Microsoft.ML.OnnxRuntime;

namespace MaskFormer.Benchmarks;

/// <summary>
/// <c>tracking [--realistic] [--frames N]</c>: what a stream's tracking costs per frame on real results
/// (the held-out images 0000 and 0001 at 512x512, alternating, all tasks as the service post-processes
/// them): reading the masks as runs (<see cref="FrameSegments"/>, done per frame in parallel) and matching
/// them to the tracks (<see cref="SegmentTracker"/>, on the stream's ordered path); with how many pairs
/// the box-and-area bound leaves for an exact IoU, and how many of those match.
/// </summary>
internal static class TrackingReport
{
    private static readonly string[] s_images = ["0000.png", "0001.png"];

    public static async Task<int> RunAsync(string[] args)
    {
        var realistic = args.Contains("--realistic");
        var frames = args.SkipWhile(a => a != "--frames").Skip(1).Select(a => int.Parse(a, CultureInfo.InvariantCulture)).FirstOrDefault(40);
        var (name, path) = realistic
            ? (BenchmarkInputs.Realistic, await BenchmarkInputs.EnsureRealisticAsync(Console.Out, CancellationToken.None))
            : (BenchmarkInputs.Tiny, RepositoryPaths.TinyShapes);
        var folder = ModelFolder.Read(path, name, null);
        var results = s_images.Select(file => Segment(folder, BenchmarkInputs.Scaled(512, 512, file))).ToArray();
        var options = new TrackingOptions();
        try
        {
            var segments = results.Select(r => FrameSegments.From(r.Instances, r.Panoptic, options.MinInstanceScore)).ToArray();
            foreach (var (result, frame) in results.Zip(segments))
            {
                var tracked = frame.Instances!.Count(s => s.Mask is not null);
                var runs = frame.Instances!.Where(s => s.Mask is not null).Concat(frame.Panoptic!).Sum(s => s.Mask!.RunCount);
                Console.WriteLine($"{name}: {result.Instances.Count} instances ({tracked} at score >= {options.MinInstanceScore}), {result.Panoptic.Segments.Count} panoptic segments, {runs} runs");
            }

            Pairs(segments[0], segments[1], options.IouThreshold);
            var read = Time(frames, i => FrameSegments.From(results[i % 2].Instances, results[i % 2].Panoptic, options.MinInstanceScore));
            var tracker = new SegmentTracker();
            var track = Time(frames, i => tracker.Track(segments[i % 2], options, TimeSpan.FromMilliseconds(33 * i)));
            Console.WriteLine($"CPU per frame over {frames} frames: reading masks as runs {read:F2} ms, matching to tracks {track:F2} ms");
            return 0;
        }
        finally
        {
            foreach (var result in results)
            {
                result.Panoptic.Dispose();
                foreach (var instance in result.Instances)
                {
                    instance.Dispose();
                }
            }
        }
    }

    // Every (track, segment) pair a frame after the other would consider: what the bound prunes, and
    // how many a lazy greedy matching (pairs refined only when they reach the head of the queue with
    // both sides free) measures exactly.
    private static void Pairs(FrameSegments previous, FrameSegments next, float threshold)
    {
        var targets = previous.Panoptic!.Concat(previous.Instances!).Where(s => s.Mask is not null).Select(s => s.Mask!).ToArray();
        var candidates = next.Panoptic!.Concat(next.Instances!).Where(s => s.Mask is not null).Select(s => s.Mask!).ToArray();
        var pairs = new List<(double Bound, double IoU, int T, int D)>();
        foreach (var (target, t) in targets.Select((m, i) => (m, i)))
        {
            foreach (var (candidate, d) in candidates.Select((m, i) => (m, i)))
            {
                var bound = target.IoUUpperBound(candidate);
                if (bound >= threshold)
                {
                    pairs.Add((bound, target.IoU(candidate), t, d));
                }
            }
        }

        var matching = pairs.Count(p => p.IoU >= threshold);
        var refined = 0;
        var queue = new PriorityQueue<(int Pair, bool Exact), (double, int)>(pairs.Select((p, i) => ((i, false), (-p.Bound, 0))));
        var (targetUsed, candidateUsed) = (new bool[targets.Length], new bool[candidates.Length]);
        var best = new List<double>();
        while (queue.TryDequeue(out var item, out _))
        {
            var p = pairs[item.Pair];
            if (targetUsed[p.T] || candidateUsed[p.D])
            {
                continue;
            }

            if (!item.Exact)
            {
                refined++;
                if (p.IoU >= threshold)
                {
                    queue.Enqueue((item.Pair, true), (-p.IoU, 1));
                }

                continue;
            }

            targetUsed[p.T] = candidateUsed[p.D] = true;
            best.Add(p.IoU);
        }

        Console.WriteLine($"track x segment pairs across frames: {targets.Length * candidates.Length}, left by the bound {pairs.Count}, IoU >= {threshold}: {matching}; a lazy greedy matching measures {refined} and matches {best.Count} (IoU min / median / max {best.DefaultIfEmpty().Min():F2} / {Stats.Median(best):F2} / {best.DefaultIfEmpty().Max():F2}); bounds median {Stats.Median(pairs.Select(p => p.Bound)):F2}, IoUs median {Stats.Median(pairs.Select(p => p.IoU)):F2}");
    }

    // CPU time of this thread per frame (the machine may be shared: wall time would count others' work).
    private static double Time(int frames, Action<int> action)
    {
        action(0);
        var cpu = ThreadCpu.Now();
        for (var i = 1; i <= frames; i++)
        {
            action(i);
        }

        return (ThreadCpu.Now() - cpu).TotalMilliseconds / frames;
    }

    private static (IReadOnlyList<InstanceMask> Instances, PanopticResult Panoptic) Segment(ModelFolder folder, byte[] imageBytes)
    {
        using var image = new ImageDecoder(Options.Create(new ImageDecoderOptions())).Decode(imageBytes);
        using var input = new ImagePreprocessor(folder.Preprocessor).Process(image);
        using var session = new InferenceSession(folder.ModelPath);
        using var value = OrtValue.CreateTensorValueFromMemory(input.Tensor.ToArray(), [1, 3, input.Plan.PaddedHeight, input.Plan.PaddedWidth]);
        using var runOptions = new RunOptions();
        using var results = session.Run(runOptions, ["pixel_values"], [value], ["class_queries_logits", "masks_queries_logits"]);
        var classShape = results[0].GetTensorTypeAndShape().Shape;
        var maskShape = results[1].GetTensorTypeAndShape().Shape;
        using var output = new ModelOutput((int)classShape[1], (int)classShape[2], (int)maskShape[2], (int)maskShape[3]);
        results[0].GetTensorDataAsSpan<float>().CopyTo(output.ClassLogits);
        results[1].GetTensorDataAsSpan<float>().CopyTo(output.MaskLogits);
        var thingsOnly = folder.Config.DeclaresThings;
        var instances = InstanceInference.Run(output, input.Plan, folder.Config.Labels, thingsOnly, PostprocessOptions.Detectron2);
        var panoptic = PanopticInference.Run(output, input.Plan, folder.Config.Labels, folder.Config.IsMask2Former, PostprocessOptions.Detectron2);
        return (instances, panoptic);
    }
}
