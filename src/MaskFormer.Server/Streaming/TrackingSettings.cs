using MaskFormer.Engine;
using TrackingOptions = MaskFormer.Engine.Tracking.TrackingOptions;

namespace MaskFormer.Server.Streaming;

/// <summary>A stream config's tracking fields over the server's defaults, each checked and named when out of range.</summary>
internal static class TrackingSettings
{
    public static TrackingOptions From(Contracts.V1.TrackingOptions? config, TrackingOptions defaults)
    {
        if (config is null)
        {
            return defaults;
        }

        if (config.HasIouThreshold && !(config.IouThreshold > 0f && config.IouThreshold <= 1f))
        {
            throw SegmentationException.Invalid("config.tracking.iou_threshold", $"config.tracking.iou_threshold must be in (0, 1] (was {config.IouThreshold}).");
        }

        if (config.HasMaxMissedFrames && config.MaxMissedFrames > 1000)
        {
            throw SegmentationException.Invalid("config.tracking.max_missed_frames", $"config.tracking.max_missed_frames must be at most 1000 (was {config.MaxMissedFrames}).");
        }

        if (config.HasMaxMissedMs && config.MaxMissedMs > 3_600_000)
        {
            throw SegmentationException.Invalid("config.tracking.max_missed_ms", $"config.tracking.max_missed_ms must be at most 3600000 (was {config.MaxMissedMs}).");
        }

        if (config.HasClassVoteFrames && config.ClassVoteFrames is < 1 or > 1000)
        {
            throw SegmentationException.Invalid("config.tracking.class_vote_frames", $"config.tracking.class_vote_frames must be in [1, 1000] (was {config.ClassVoteFrames}).");
        }

        if (config.HasMinInstanceScore && !(config.MinInstanceScore >= 0f && config.MinInstanceScore <= 1f))
        {
            throw SegmentationException.Invalid("config.tracking.min_instance_score", $"config.tracking.min_instance_score must be in [0, 1] (was {config.MinInstanceScore}).");
        }

        return defaults with
        {
            IouThreshold = config.HasIouThreshold ? config.IouThreshold : defaults.IouThreshold,
            MaxMissedFrames = config.HasMaxMissedFrames ? (int)config.MaxMissedFrames : defaults.MaxMissedFrames,
            MaxMissedTime = config.HasMaxMissedMs ? TimeSpan.FromMilliseconds(config.MaxMissedMs) : defaults.MaxMissedTime,
            ClassVoteFrames = config.HasClassVoteFrames ? (int)config.ClassVoteFrames : defaults.ClassVoteFrames,
            MinInstanceScore = config.HasMinInstanceScore ? config.MinInstanceScore : defaults.MinInstanceScore,
        };
    }
}
