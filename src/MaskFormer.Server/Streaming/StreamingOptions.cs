using MaskFormer.Engine.Tracking;

namespace MaskFormer.Server.Streaming;

/// <summary>Per-stream limits. Bound from "MaskFormer:Streaming".</summary>
public sealed class StreamingOptions
{
    /// <summary>Configuration section name.</summary>
    public const string SectionName = "MaskFormer:Streaming";

    /// <summary>Frames of one stream in the engine at once when the client does not say. Default 4.</summary>
    public int DefaultMaxInFlight { get; set; } = 4;

    /// <summary>The most a client may ask for. Default 16.</summary>
    public int MaxInFlightLimit { get; set; } = 16;

    /// <summary>Frames received but not yet started, per stream. Default 8.</summary>
    public int PendingFrames { get; set; } = 8;

    /// <summary>
    /// Answers not yet written to the client, per stream. When reached the server stops reading the
    /// stream until the client reads, whatever the overload policy, so memory stays bounded. Default 32.
    /// </summary>
    public int MaxUnwrittenResponses { get; set; } = 32;

    /// <summary>
    /// How a stream's segments are matched across frames when its config does not say ("Tracking:IouThreshold",
    /// "Tracking:MaxMissedFrames", "Tracking:MaxMissedTime", "Tracking:ClassVoteFrames", "Tracking:MinInstanceScore").
    /// </summary>
    public TrackingOptions Tracking { get; set; } = new();

    /// <summary>
    /// Bytes of finished answers not yet handed to the transport, per stream. A frame starts only while
    /// the held answers and those in flight (each guessed as large as the stream's largest) fit under it,
    /// so a client that stops reading stops its stream's work; an answer larger than this still goes
    /// through alone. Default 64 MiB.
    /// </summary>
    public long MaxUnwrittenBytes { get; set; } = 64L * 1024 * 1024;

    /// <summary>
    /// How long open streams may take to finish when the server shuts down (SIGTERM): frames received
    /// before the drain began are answered, later ones are skipped as draining, and when this time runs
    /// out the stream ends with UNAVAILABLE. The host's shutdown timeout is this plus
    /// <see cref="ShutdownMargin"/>; a Kubernetes terminationGracePeriodSeconds must exceed both. Default 20 s.
    /// </summary>
    public TimeSpan DrainTimeout { get; set; } = TimeSpan.FromSeconds(20);

    /// <summary>Time the host adds to <see cref="DrainTimeout"/> to finish in-flight model runs, write the
    /// last answers and stop the engine before it gives up on shutting down gracefully.</summary>
    public static TimeSpan ShutdownMargin { get; } = TimeSpan.FromSeconds(5);
}
