using System.Runtime.ExceptionServices;
using MaskFormer.Engine.Diagnostics;
using MaskFormer.Engine.Models;

namespace MaskFormer.Engine.Postprocessing;

/// <summary>
/// The requested detectron2 modes on one model output, from one set of tile bounds. While the image has
/// more than one thread (<see cref="RowParallelism.Degree"/>), two or three modes run side by side: each is
/// parallel inside, but each also has stretches on one thread (softmax and top-k, joining bands,
/// panoptic's second pass), which the others fill. The modes only read the shared bounds, so their
/// results are the same bit for bit as one after the other.
/// </summary>
internal static class Detectron2Tasks
{
    /// <summary>
    /// The requested modes' results; <paramref name="sideBySide"/> says whether the modes may run side by
    /// side (null: while the image has more than one thread).
    /// </summary>
    public static (LabelMap? Semantic, IReadOnlyList<InstanceMask>? Instances, PanopticResult? Panoptic) Run(
        MaskTiles tiles, SegmentationTasks tasks, IReadOnlyList<ModelLabel> labels, bool thingsOnly, bool isMask2Former, PostprocessOptions options, bool? sideBySide = null)
    {
        LabelMap? semantic = null;
        IReadOnlyList<InstanceMask>? instances = null;
        PanopticResult? panoptic = null;

        // The longest first, so that the shortest fills in at the end.
        var modes = new List<Action>(3);
        if ((tasks & SegmentationTasks.Panoptic) != 0)
        {
            modes.Add(() =>
            {
                using var span = EngineSpans.StartPostprocess("panoptic");
                panoptic = PanopticInference.Run(tiles, labels, isMask2Former, options);
            });
        }

        if ((tasks & SegmentationTasks.Instance) != 0)
        {
            modes.Add(() =>
            {
                using var span = EngineSpans.StartPostprocess("instance");
                instances = InstanceInference.Run(tiles, labels, thingsOnly, options);
            });
        }

        if ((tasks & SegmentationTasks.Semantic) != 0)
        {
            modes.Add(() =>
            {
                using var span = EngineSpans.StartPostprocess("semantic");
                semantic = SemanticInference.Run(tiles);
            });
        }

        try
        {
            if (modes.Count == 1)
            {
                modes[0]();
            }
            else if (sideBySide ?? RowParallelism.Degree > 1)
            {
                Parallel.Invoke(RowParallelism.ForModes(), [.. modes]);
            }
            else
            {
                // Every core has an image of its own: one mode after another, without the fork.
                foreach (var mode in modes)
                {
                    mode();
                }
            }

            return (semantic, instances, panoptic);
        }
        catch (Exception e)
        {
            // What one mode finished is not handed out; the caller sees the first failure itself, as
            // it would have one mode after another.
            semantic?.Dispose();
            panoptic?.Dispose();
            foreach (var instance in instances ?? [])
            {
                instance.Dispose();
            }

            if (e is AggregateException { InnerExceptions.Count: > 0 } aggregate)
            {
                ExceptionDispatchInfo.Capture(aggregate.InnerExceptions[0]).Throw();
            }

            throw;
        }
    }
}
