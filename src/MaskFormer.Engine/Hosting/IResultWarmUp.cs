namespace MaskFormer.Engine.Hosting;

/// <summary>
/// What a host does with every result (mapping it to its wire format, serialising it), run on each of
/// the engine's warm-up results before health says SERVING, so that path is warm for the first request
/// too. Registered in the container; the engine calls every one.
/// </summary>
public interface IResultWarmUp
{
    /// <summary>Handles one warm-up result as a real one would be.</summary>
    void WarmUp(SegmentationResult result);
}
