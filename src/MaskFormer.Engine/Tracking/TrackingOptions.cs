namespace MaskFormer.Engine.Tracking;

/// <summary>How segments are matched across consecutive frames of a stream.</summary>
public sealed record TrackingOptions
{
    /// <summary>Same class and mask IoU at least this means the same object. Default 0.3.</summary>
    public float IouThreshold { get; init; } = 0.3f;

    /// <summary>A track unseen for more than this many frames is forgotten. Default 5.</summary>
    public int MaxMissedFrames { get; init; } = 5;
}
