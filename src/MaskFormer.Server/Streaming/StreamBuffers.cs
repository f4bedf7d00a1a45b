using MaskFormer.Server.Diagnostics;

namespace MaskFormer.Server.Streaming;

/// <summary>
/// The bytes of finished stream answers not yet handed to the transport, over all streams of this
/// server, and how often a stream held back a frame because its own answers reached
/// <see cref="StreamingOptions.MaxUnwrittenBytes"/>. Exported as metrics; read by tests.
/// </summary>
internal sealed class StreamBuffers
{
    private long _unwrittenBytes;
    private long _heldBack;

    public long UnwrittenBytes => Interlocked.Read(ref _unwrittenBytes);

    /// <summary>Times a stream started no frame because of its unwritten bytes.</summary>
    public long HeldBack => Interlocked.Read(ref _heldBack);

    public void Add(long bytes)
    {
        Interlocked.Add(ref _unwrittenBytes, bytes);
        RpcTelemetry.UnwrittenBytes.Add(bytes);
    }

    public void HoldBack()
    {
        Interlocked.Increment(ref _heldBack);
        RpcTelemetry.HeldBack.Add(1);
    }
}
