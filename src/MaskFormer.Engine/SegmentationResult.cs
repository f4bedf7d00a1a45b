using MaskFormer.Engine.Postprocessing;

namespace MaskFormer.Engine;

/// <summary>What the engine found in one image, at the original size. Dispose to return pooled maps.</summary>
public sealed class SegmentationResult : IDisposable
{
    /// <summary>The model that answered.</summary>
    public required ServedModel Model { get; init; }

    /// <summary>Original width.</summary>
    public required int Width { get; init; }

    /// <summary>Original height.</summary>
    public required int Height { get; init; }

    /// <summary>The semantic label map, when asked for.</summary>
    public LabelMap? Semantic { get; init; }

    /// <summary>The instances, best first, when asked for.</summary>
    public IReadOnlyList<InstanceMask>? Instances { get; init; }

    /// <summary>The panoptic segmentation, when asked for.</summary>
    public PanopticResult? Panoptic { get; init; }

    /// <summary>Stage timings.</summary>
    public required StageTimings Timings { get; init; }

    /// <summary>The device that ran the model.</summary>
    public required string Device { get; init; }

    // Admission control's hold on this request, released once the host has encoded the result.
    internal IDisposable? Admission { get; init; }

    /// <inheritdoc />
    public void Dispose()
    {
        Admission?.Dispose();
        Semantic?.Dispose();
        Panoptic?.Dispose();
        foreach (var instance in Instances ?? [])
        {
            instance.Dispose();
        }
    }
}
