using MaskFormer.Engine;

namespace MaskFormer.Server.Streaming;

/// <summary>
/// What a stream runs each frame through: the engine. A seam so tests can swap in a fake whose frames
/// throw, a fault no real request can cause.
/// </summary>
internal interface IFrameSegmenter
{
    Task<SegmentationResult> SegmentAsync(SegmentationRequest request, CancellationToken cancellationToken);
}

/// <summary>The engine itself.</summary>
internal sealed class EngineFrameSegmenter(SegmentationEngine engine) : IFrameSegmenter
{
    public Task<SegmentationResult> SegmentAsync(SegmentationRequest request, CancellationToken cancellationToken) =>
        engine.SegmentAsync(request, cancellationToken);
}
