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
}
