namespace MaskFormer.Engine.Diagnostics;

/// <summary>
/// Attribute names: OpenTelemetry's semantic conventions where one exists (rpc.*, error.type,
/// server.*, network.*), <c>maskformer.*</c> for the rest.
/// </summary>
public static class TelemetryTags
{
    /// <summary>OpenTelemetry: the class of error a failed operation ended with.</summary>
    public const string ErrorType = "error.type";

    /// <summary>The served model's name.</summary>
    public const string ModelName = "maskformer.model.name";

    /// <summary>The served model's version.</summary>
    public const string ModelVersion = "maskformer.model.version";

    /// <summary>The device that ran the model (cpu, cuda:0).</summary>
    public const string Device = "maskformer.device";

    /// <summary>The tasks asked for, comma-separated (semantic,instance,panoptic).</summary>
    public const string Tasks = "maskformer.tasks";

    /// <summary>One post-processing task.</summary>
    public const string Task = "maskformer.task";

    /// <summary>The original image width in pixels.</summary>
    public const string ImageWidth = "maskformer.image.width";

    /// <summary>The original image height in pixels.</summary>
    public const string ImageHeight = "maskformer.image.height";

    /// <summary>Images in one model run.</summary>
    public const string BatchSize = "maskformer.batch.size";

    /// <summary>An encoded image's format as sniffed from its first bytes, or raw.</summary>
    public const string ImageFormat = "maskformer.image.format";

    /// <summary>A stream frame's id as the client sent it.</summary>
    public const string FrameId = "maskformer.frame.id";

    /// <summary>A stream frame's position in its stream, from 0.</summary>
    public const string FrameIndex = "maskformer.frame.index";

    /// <summary>What became of a stream frame: result, error or skipped.</summary>
    public const string FrameOutcome = "maskformer.frame.outcome";

    /// <summary>Why a stream frame was skipped.</summary>
    public const string SkipReason = "maskformer.frame.skip_reason";

    /// <summary>The label for each combination of <see cref="SegmentationTasks"/>, built once.</summary>
    private static readonly string[] s_taskLabels = [.. Enumerable.Range(0, 8).Select(bits => string.Join(',', new[] { "semantic", "instance", "panoptic" }.Where((_, i) => (bits & (1 << i)) != 0)))];

    /// <summary>The tasks as a low-cardinality label, e.g. "semantic,panoptic".</summary>
    public static string Label(SegmentationTasks tasks) => s_taskLabels[(int)tasks & 7];

    /// <summary>An error kind as an <c>error.type</c> value, e.g. "invalid_argument".</summary>
    public static string Label(SegmentationErrorKind kind) => kind switch
    {
        SegmentationErrorKind.InvalidArgument => "invalid_argument",
        SegmentationErrorKind.ModelNotFound => "model_not_found",
        SegmentationErrorKind.Unimplemented => "unimplemented",
        SegmentationErrorKind.QueueFull => "queue_full",
        SegmentationErrorKind.DeadlineExceeded => "deadline_exceeded",
        SegmentationErrorKind.Unavailable => "unavailable",
        SegmentationErrorKind.ModelRunFailed => "model_run_failed",
        _ => "unknown",
    };

    /// <summary>An <c>error.type</c> for any exception: the error kind, "cancelled", or the exception's type name.</summary>
    public static string ErrorTypeOf(Exception exception) => exception switch
    {
        SegmentationException segmentation => Label(segmentation.Kind),
        OperationCanceledException => "cancelled",
        _ => exception.GetType().FullName ?? "unknown",
    };
}
