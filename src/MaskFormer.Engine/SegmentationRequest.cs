namespace MaskFormer.Engine;

/// <summary>One image to segment.</summary>
public sealed record SegmentationRequest
{
    /// <summary>The model's name; empty for the default model.</summary>
    public string Model { get; init; } = string.Empty;

    /// <summary>The model's version; empty for the newest.</summary>
    public string ModelVersion { get; init; } = string.Empty;

    /// <summary>The image.</summary>
    public required ImageSource Image { get; init; }

    /// <summary>The tasks wanted.</summary>
    public SegmentationTasks Tasks { get; init; } = SegmentationTasks.Semantic;

    /// <summary>Thresholds for the inference rules.</summary>
    public Postprocessing.PostprocessOptions Postprocess { get; init; } = Postprocessing.PostprocessOptions.Detectron2;

    /// <summary>When the caller stops waiting; a request still queued then is dropped.</summary>
    public DateTimeOffset? Deadline { get; init; }

    /// <summary>
    /// Wait for admission control and for room in the model's queue as long as it takes (until the
    /// deadline or cancellation) instead of being turned away with <see cref="SegmentationErrorKind.QueueFull"/>:
    /// for callers whose own backlog is bounded and who are slowed down by waiting, such as a stream
    /// that stops reading meanwhile. Default false.
    /// </summary>
    public bool WaitForCapacity { get; init; }
}
