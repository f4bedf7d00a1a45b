namespace MaskFormer.Engine;

/// <summary>Why a request could not be answered; the host maps each kind to a status code.</summary>
public enum SegmentationErrorKind
{
    /// <summary>The request itself is at fault (an undecodable image, a bad raw frame, a bad option).</summary>
    InvalidArgument,

    /// <summary>The named model is not served.</summary>
    ModelNotFound,

    /// <summary>The model cannot do the task asked for.</summary>
    Unimplemented,

    /// <summary>The queue is full; the caller should retry later.</summary>
    QueueFull,

    /// <summary>The request's deadline passed before inference started.</summary>
    DeadlineExceeded,

    /// <summary>The engine is not ready (still loading, or shutting down), or the model run hung and its session is being replaced.</summary>
    Unavailable,

    /// <summary>The model run that served the request failed (ONNX Runtime threw); other requests are not affected.</summary>
    ModelRunFailed,
}

/// <summary>A request the engine cannot answer, with a message fit to show the caller.</summary>
public sealed class SegmentationException : Exception
{
    /// <summary>Creates the exception.</summary>
    public SegmentationException(SegmentationErrorKind kind, string message, Exception? innerException = null)
        : base(message, innerException)
    {
        Kind = kind;
    }

    /// <summary>Why the request failed.</summary>
    public SegmentationErrorKind Kind { get; }

    /// <summary>For <see cref="SegmentationErrorKind.QueueFull"/> and a hung run's <see cref="SegmentationErrorKind.Unavailable"/>: when a retry may succeed.</summary>
    public TimeSpan? RetryAfter { get; init; }

    /// <summary>For <see cref="SegmentationErrorKind.InvalidArgument"/>: the request field at fault, if one is.</summary>
    public string? Field { get; init; }

    /// <summary>An <see cref="SegmentationErrorKind.InvalidArgument"/> error naming the field at fault.</summary>
    public static SegmentationException Invalid(string field, string message) =>
        new(SegmentationErrorKind.InvalidArgument, message) { Field = field };
}
