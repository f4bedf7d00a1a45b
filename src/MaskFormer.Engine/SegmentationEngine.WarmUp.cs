using MaskFormer.Engine.Encoding;
using MaskFormer.Engine.Hosting;
using MaskFormer.Engine.Postprocessing;
using MaskFormer.Engine.Tracking;

namespace MaskFormer.Engine;

/// <summary>
/// The request-path half of the warm-up: before health says SERVING, every model answers synthetic
/// requests through every decoder, pre-processing, batching, every post-processing mode and convention
/// (on the caller's thread and row-parallel), every encoder and the tracker, so the first real request
/// pays for no JIT compilation, codec set-up or thread-pool growth. Each result also goes through the
/// host's <see cref="IResultWarmUp"/>s.
/// </summary>
public sealed partial class SegmentationEngine
{
    private const SegmentationTasks AllTasks = SegmentationTasks.Semantic | SegmentationTasks.Instance | SegmentationTasks.Panoptic;

    // Small enough to post-process on the caller's thread, and large enough to go row-parallel (see RowParallelism).
    private static readonly (int Width, int Height) s_small = (48, 36);
    private static readonly (int Width, int Height) s_large = (320, 240);

    /// <summary>The largest image the warm-up segments: the image size limits must let it through.</summary>
    internal static (int Width, int Height) LargestWarmUpImage => s_large;

    private async Task WarmUpRequestPathAsync(ServedModel model, CancellationToken cancellationToken)
    {
        var requests = WarmUpImages.AllSources(s_small.Width, s_small.Height)
            .Select(source => new SegmentationRequest { Model = model.Name, ModelVersion = model.Version, Image = source.Source, Tasks = AllTasks })
            .ToList();
        var large = WarmUpImages.Png(s_large.Width, s_large.Height);
        var everything = new PostprocessOptions
        {
            ObjectMaskThreshold = 0,
            OverlapThreshold = 0,
            InstanceScoreThreshold = 0,
            LabelIdsToFuse = Enumerable.Range(0, model.Labels.Count).ToHashSet(),
        };
        foreach (var options in new[] { PostprocessOptions.Detectron2, PostprocessOptions.HuggingFace, everything })
        {
            requests.Add(new SegmentationRequest { Model = model.Name, ModelVersion = model.Version, Image = large, Tasks = AllTasks, Postprocess = options });
        }

        var tracker = new SegmentTracker();
        foreach (var request in requests)
        {
            using var result = await RunAsync(model, request, cancellationToken).ConfigureAwait(false);
            Encode(result, model.Labels.Count);
            tracker.Track(result, new TrackingOptions());
            foreach (var warmUp in resultWarmUps ?? [])
            {
                warmUp.WarmUp(result);
            }
        }
    }

    // What the host's response mapping does with a result, for every encoding a request may ask for.
    private static void Encode(SegmentationResult result, int labelCount)
    {
        if (result.Semantic is { } semantic)
        {
            var bits = LabelMapPngEncoder.BitsPerPixel(labelCount);
            LabelMapPngEncoder.EncodePng(semantic, bits);
            LabelMapPngEncoder.EncodeRaw(semantic, bits);
        }

        if (result.Panoptic is { } panoptic)
        {
            PanopticPngEncoder.Encode(panoptic.SegmentIds);
        }

        foreach (var instance in result.Instances ?? [])
        {
            CocoRle.Compress(CocoRle.Encode(instance));
        }
    }
}
