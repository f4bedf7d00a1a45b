using MaskFormer.Contracts.V1;
using MaskFormer.Engine;
using MaskFormer.Engine.Postprocessing;
using MaskFormer.Server.Mapping;
using TrackingOptions = MaskFormer.Engine.Tracking.TrackingOptions;

namespace MaskFormer.Server.Streaming;

/// <summary>A stream's settings as of one StreamConfig; each frame keeps the settings it arrived under.</summary>
internal sealed record StreamSettings
{
    private const float MaxTargetFps = 1000f;
    private const uint MaxMilliseconds = 60_000;

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

    /// <summary>The latency contract, when the config states one.</summary>
    public LatencyContract? Latency { get; init; }

    /// <summary>The most frames a latency contract may keep in flight: max_in_flight, or the server's limit.</summary>
    public int InFlightCap { get; init; } = 1;

    /// <summary>
    /// Whether the latency contract may lower the output scale: it allows it and the config asks for no
    /// output size of its own (unset, an empty OutputSize and model_input false all mean the image's size).
    /// </summary>
    public bool Downscales => Latency is { AllowDownscale: true } && Postprocess.Output == Engine.Postprocessing.OutputSize.Original;

    /// <summary>How often a StreamStatus is sent; null for never.</summary>
    public TimeSpan? StatusInterval { get; init; }

    /// <summary>Why the last config was rejected; frames under it fail with this error and its BadRequest.</summary>
    public SegmentationException? Rejection { get; init; }

    /// <summary>
    /// The settings a config gives. A config that is rejected fails the frames after it, and keeps
    /// <paramref name="previous"/>'s status interval, so the stream's statuses go on.
    /// </summary>
    public static StreamSettings From(StreamConfig config, StreamingOptions limits, StreamSettings previous)
    {
        try
        {
            RequestMapper.ValidateOptions(config.Options);
            var tracking = TrackingSettings.From(config.Tracking, limits.Tracking);
            if (!Enum.IsDefined(config.OverloadPolicy))
            {
                throw SegmentationException.Invalid("config.overload_policy", $"Overload policy {config.OverloadPolicy} is not known.");
            }

            var latency = ValidateLatency(config);
            var maxInFlight = config.MaxInFlight == 0 ? limits.DefaultMaxInFlight : (int)Math.Min(config.MaxInFlight, (uint)limits.MaxInFlightLimit);
            return new StreamSettings
            {
                Model = config.Model,
                ModelVersion = config.ModelVersion,
                Tasks = RequestMapper.ToTasks(config.Tasks),
                Options = config.Options,
                Postprocess = RequestMapper.ToPostprocessOptions(config.Options),
                Policy = config.OverloadPolicy == OverloadPolicy.Unspecified ? OverloadPolicy.Queue : config.OverloadPolicy,
                MaxInFlight = maxInFlight,
                Latency = latency,
                InFlightCap = config.MaxInFlight == 0 ? limits.MaxInFlightLimit : maxInFlight,
                StatusInterval = config.HasStatusIntervalMs
                    ? (config.StatusIntervalMs == 0 ? null : TimeSpan.FromMilliseconds(config.StatusIntervalMs))
                    : (latency is null ? null : TimeSpan.FromSeconds(1)),
                Tracking = tracking,
                Delta = config.Delta is { Enabled: true } d ? new DeltaSettings((int)Math.Min(d.KeyframeInterval, int.MaxValue)) : null,
            };
        }
        catch (SegmentationException ex)
        {
            // The shared option checks name request fields ("options.x"); in a stream they are the config's.
            var field = ex.Field is { } name && !name.StartsWith("config.", StringComparison.Ordinal) ? $"config.{name}" : ex.Field;
            var rejection = new SegmentationException(ex.Kind, $"The last StreamConfig was rejected: {ex.Message}") { Field = field };
            return new StreamSettings { MaxInFlight = limits.DefaultMaxInFlight, Rejection = rejection, StatusInterval = previous.StatusInterval };
        }
    }

    private static LatencyContract? ValidateLatency(StreamConfig config)
    {
        if (config.HasStatusIntervalMs && config.StatusIntervalMs > MaxMilliseconds)
        {
            throw SegmentationException.Invalid("config.status_interval_ms", $"config.status_interval_ms must be at most {MaxMilliseconds} (was {config.StatusIntervalMs}).");
        }

        if (config.Latency is not { } latency)
        {
            return null;
        }

        if (!(latency.TargetFps >= 0f && latency.TargetFps <= MaxTargetFps))
        {
            throw SegmentationException.Invalid("config.latency.target_fps", $"config.latency.target_fps must be between 0 and {MaxTargetFps} frames per second (was {latency.TargetFps}).");
        }

        if (latency.MaxAgeMs > MaxMilliseconds)
        {
            throw SegmentationException.Invalid("config.latency.max_age_ms", $"config.latency.max_age_ms must be at most {MaxMilliseconds} (was {latency.MaxAgeMs}).");
        }

        return latency;
    }
}

/// <summary>Delta results: a keyframe at least every <paramref name="KeyframeInterval"/> results (0: only when needed).</summary>
internal sealed record DeltaSettings(int KeyframeInterval);
