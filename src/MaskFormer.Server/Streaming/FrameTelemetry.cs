using System.Diagnostics;
using MaskFormer.Contracts.V1;
using MaskFormer.Engine.Diagnostics;
using MaskFormer.Server.Diagnostics;
using Microsoft.Extensions.Options;

namespace MaskFormer.Server.Streaming;

/// <summary>
/// A stream frame's span, from arrival to its answer being written (so a skipped frame has one too),
/// under the stream's call span; and the frames-by-outcome metric. One frame in
/// <see cref="TelemetryOptions.StreamFrameSampleInterval"/> is sampled: a 30 fps stream must not export
/// 30 frames of spans a second. The others' spans are recorded but not sampled, so neither they nor the
/// stage spans under them are exported (ParentBased sampling drops a child of an unsampled parent).
/// </summary>
internal sealed partial class FrameTelemetry(IOptions<TelemetryOptions> options, ILogger<StreamSession> logger)
{
    private readonly int _interval = Math.Max(1, options.Value.StreamFrameSampleInterval);

    public Activity? Start(ulong frameId, long index)
    {
        var span = MaskFormerTelemetry.StartDetached(RpcTelemetry.FrameSpanName, ActivityKind.Internal, default, [
            new(TelemetryTags.FrameIndex, index),
            new(TelemetryTags.FrameId, unchecked((long)frameId)),
        ]);

        // Decided here rather than in an OpenTelemetry sampler: the source is process-wide, and this is
        // the one place that knows the stream's own setting.
        if (span is not null && index % _interval != 0)
        {
            span.ActivityTraceFlags &= ~ActivityTraceFlags.Recorded;
        }

        return span;
    }

    public static void End(FrameSlot slot, FrameOutcome outcome)
    {
        if (!slot.TryEnd())
        {
            return;
        }

        var (label, reason) = outcome switch
        {
            { Result: not null } => ("result", null),
            { Error: not null } => ("error", null),
            _ => ("skipped", SkipLabel(outcome.Skip)),
        };
        var tags = new TagList { { TelemetryTags.FrameOutcome, label } };
        if (reason is not null)
        {
            tags.Add(TelemetryTags.SkipReason, reason);
        }

        RpcTelemetry.Frames.Add(1, tags);
        if (slot.Span is { } span)
        {
            span.SetTag(TelemetryTags.FrameOutcome, label);
            if (reason is not null)
            {
                span.SetTag(TelemetryTags.SkipReason, reason);
            }

            if (outcome.Error is { } error)
            {
                span.SetTag(RpcTelemetry.RpcGrpcStatusCode, error.Code);
                if (error.Code == (int)Grpc.Core.StatusCode.Internal)
                {
                    span.SetStatus(ActivityStatusCode.Error, error.Message);
                }
            }

            span.Dispose();
        }
    }

    internal static string SkipLabel(SkipReason reason) => reason switch
    {
        SkipReason.Superseded => "superseded",
        SkipReason.DroppedOldest => "dropped_oldest",
        SkipReason.StreamEnded => "stream_ended",
        SkipReason.TooOld => "too_old",
        _ => reason.ToString().ToLowerInvariant(),
    };

    /// <summary>An unexpected exception of one frame: logged once, with its stack, in the frame's trace.</summary>
    public void LogFrameFailed(Exception exception, ulong frameId, string method, string model) => LogFrameFailed(logger, exception, frameId, method, model);

    [LoggerMessage(EventId = 310, EventName = "FrameFailed", Level = LogLevel.Error, Message = "Frame {FrameId} of {Method} failed unexpectedly (model {Model}); answered with a per-frame INTERNAL error and the stream goes on")]
    private static partial void LogFrameFailed(ILogger logger, Exception exception, ulong frameId, string method, string model);
}
