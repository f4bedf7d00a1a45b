namespace MaskFormer.Engine.Tracking;

/// <summary>How segments are matched across the frames of a stream.</summary>
public sealed record TrackingOptions
{
    /// <summary>Mask IoU at least this, whatever the two classes, means the same object. Default 0.3.</summary>
    public float IouThreshold { get; init; } = 0.3f;

    /// <summary>A track unseen for more than this many frames is forgotten. Default 5.</summary>
    public int MaxMissedFrames { get; init; } = 5;

    /// <summary>
    /// A track unseen for longer than this (by the frames' times) is forgotten, however few frames that
    /// was; <see cref="TimeSpan.Zero"/> for no time limit. Default 2 s.
    /// </summary>
    public TimeSpan MaxMissedTime { get; init; } = TimeSpan.FromSeconds(2);

    /// <summary>
    /// A track's class is the one most of its last this many frames gave it (a tie keeps the class it
    /// had), so one mislabelled frame neither starts a new track nor changes the track's class; 1 follows
    /// every frame's class. Default 8.
    /// </summary>
    public int ClassVoteFrames { get; init; } = 8;

    /// <summary>
    /// Instances scoring below this are not tracked (track id 0): at the engine's instance threshold of
    /// 0, the many low-scoring near-duplicates of each object would each hold a track. Default 0.5, the
    /// threshold HuggingFace's instance post-processing uses.
    /// </summary>
    public float MinInstanceScore { get; init; } = 0.5f;

    /// <summary>The first setting out of range, named, or null when all are valid.</summary>
    public string? Check() =>
        !(IouThreshold > 0f && IouThreshold <= 1f) ? $"IouThreshold must be in (0, 1] (was {IouThreshold})."
        : MaxMissedFrames is < 0 or > 1000 ? $"MaxMissedFrames must be in [0, 1000] (was {MaxMissedFrames})."
        : MaxMissedTime < TimeSpan.Zero || MaxMissedTime > TimeSpan.FromHours(1) ? $"MaxMissedTime must be in [0, 1 hour] (was {MaxMissedTime})."
        : ClassVoteFrames is < 1 or > 1000 ? $"ClassVoteFrames must be in [1, 1000] (was {ClassVoteFrames})."
        : !(MinInstanceScore >= 0f && MinInstanceScore <= 1f) ? $"MinInstanceScore must be in [0, 1] (was {MinInstanceScore})."
        : null;
}
