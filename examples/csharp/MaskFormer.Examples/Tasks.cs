using MaskFormer.Contracts.V1;

namespace MaskFormer.Examples;

internal static class Tasks
{
    /// <summary>"semantic,panoptic" into tasks; an unknown name is a usage error.</summary>
    public static IReadOnlyList<SegmentationTask> Parse(string text) =>
        [
            .. text.Split(',', StringSplitOptions.RemoveEmptyEntries | StringSplitOptions.TrimEntries)
                .Select(name => name switch
                {
                    "semantic" => SegmentationTask.Semantic,
                    "instance" => SegmentationTask.Instance,
                    "panoptic" => SegmentationTask.Panoptic,
                    _ => throw new UsageException($"--tasks takes semantic, instance, panoptic (not {name})"),
                })
                .Distinct(),
        ];
}
