using System.Diagnostics;
using MaskFormer.Contracts.V1;
using MaskFormer.Engine.Tracking;

namespace MaskFormer.Server.Streaming;

/// <summary>One frame's place in the stream's answer order, and its eventual outcome.</summary>
internal sealed class FrameSlot(ulong frameId, StreamSettings settings, Image? image, long receivedAt)
{
    public ulong FrameId { get; } = frameId;

    public StreamSettings Settings { get; } = settings;

    /// <summary>The frame's pixels until it starts; released then so skipped frames cost nothing.</summary>
    public Image? Image { get; set; } = image;

    public long ReceivedAt { get; } = receivedAt;

    /// <summary>The frame's span, ended once its answer is written.</summary>
    public Activity? Span { get; init; }

    public TaskCompletionSource<FrameOutcome> Outcome { get; } = new(TaskCreationOptions.RunContinuationsAsynchronously);

    private int _ended;

    /// <summary>True the first time only: the frame's span ends and it is counted once.</summary>
    public bool TryEnd() => Interlocked.Exchange(ref _ended, 1) == 0;
}

/// <summary>
/// A frame's outcome: an encoded result (with its segments read for tracking, when it has any; track
/// ids are filled in when it is answered, in frame order), an error, or a skip.
/// </summary>
internal sealed record FrameOutcome(SegmentResponse? Result, FrameSegments? Segments, FrameError? Error, SkipReason Skip)
{
    /// <summary>The result's maps as pixels, when the stream sends deltas.</summary>
    public DeltaMaps? Maps { get; init; }
    /// <summary>The encoded result's size, held by the stream until the answer is written.</summary>
    public long Bytes { get; init; }

    public static FrameOutcome Skipped(SkipReason reason) => new(null, null, null, reason);

    public static FrameOutcome Failed(Grpc.Core.StatusCode code, string message) =>
        new(null, null, new FrameError { Code = (int)code, Message = message }, SkipReason.Unspecified);

    /// <summary>A frame the engine turned down, with the status details a unary call would carry (RetryInfo, BadRequest).</summary>
    public static FrameOutcome Failed(Engine.SegmentationException exception) =>
        new(null, null, Services.RpcErrors.ToFrameError(exception), SkipReason.Unspecified);
}
