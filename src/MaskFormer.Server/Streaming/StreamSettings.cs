using MaskFormer.Contracts.V1;
using MaskFormer.Engine;
using MaskFormer.Engine.Postprocessing;
using MaskFormer.Server.Mapping;
using TrackingOptions = MaskFormer.Engine.Tracking.TrackingOptions;

namespace MaskFormer.Server.Streaming;

/// <summary>A stream's settings as of one StreamConfig; each frame keeps the settings it arrived under.</summary>
internal sealed record StreamSettings
{
    public string Model { get; init; } = string.Empty;

    public string ModelVersion { get; init; } = string.Empty;

    public SegmentationTasks Tasks { get; init; } = SegmentationTasks.Semantic;

    public SegmentationOptions? Options { get; init; }

    public PostprocessOptions Postprocess { get; init; } = PostprocessOptions.Detectron2;

    public OverloadPolicy Policy { get; init; } = OverloadPolicy.Queue;

    public int MaxInFlight { get; init; }

    public TrackingOptions Tracking { get; init; } = new();

    /// <summary>Set when results go out as deltas (StreamConfig.delta.enabled).</summary>
    public DeltaSettings? Delta { get; init; }

    /// <summary>Why the last config was rejected; frames under it fail with this message.</summary>
    public string? Error { get; init; }

    public static StreamSettings From(StreamConfig config, StreamingOptions limits)
    {
        try
        {
            RequestMapper.ValidateOptions(config.Options);
            var tracking = TrackingSettings.From(config.Tracking, limits.Tracking);
            if (!Enum.IsDefined(config.OverloadPolicy))
            {
                throw SegmentationException.Invalid("config.overload_policy", $"Overload policy {config.OverloadPolicy} is not known.");
            }

            return new StreamSettings
            {
                Model = config.Model,
                ModelVersion = config.ModelVersion,
                Tasks = RequestMapper.ToTasks(config.Tasks),
                Options = config.Options,
                Postprocess = RequestMapper.ToPostprocessOptions(config.Options),
                Policy = config.OverloadPolicy == OverloadPolicy.Unspecified ? OverloadPolicy.Queue : config.OverloadPolicy,
                MaxInFlight = config.MaxInFlight == 0 ? limits.DefaultMaxInFlight : (int)Math.Min(config.MaxInFlight, (uint)limits.MaxInFlightLimit),
                Tracking = tracking,
                Delta = config.Delta is { Enabled: true } d ? new DeltaSettings((int)Math.Min(d.KeyframeInterval, int.MaxValue)) : null,
            };
        }
        catch (SegmentationException ex)
        {
            return new StreamSettings { MaxInFlight = limits.DefaultMaxInFlight, Error = $"The last StreamConfig was rejected: {ex.Message}" };
        }
    }
}

/// <summary>Delta results: a keyframe at least every <paramref name="KeyframeInterval"/> results (0: only when needed).</summary>
internal sealed record DeltaSettings(int KeyframeInterval);
