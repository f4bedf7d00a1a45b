namespace MaskFormer.Engine.Postprocessing;

/// <summary>One segment of a panoptic result.</summary>
/// <param name="Id">Its id in the segment-id map, from 1.</param>
/// <param name="CategoryId">The label id.</param>
/// <param name="IsThing">Thing or stuff.</param>
/// <param name="Score">The class probability of the (first) query that made it.</param>
/// <param name="Area">Pixels in the final map.</param>
/// <param name="Box">The box around those pixels.</param>
public sealed record PanopticSegment(int Id, int CategoryId, bool IsThing, float Score, long Area, PixelBox Box);

/// <summary>A panoptic segmentation: segment ids per pixel (0 = void) and the segments.</summary>
public sealed class PanopticResult(LabelMap segmentIds, IReadOnlyList<PanopticSegment> segments) : IDisposable
{
    /// <summary>Segment id per pixel; 0 is void.</summary>
    public LabelMap SegmentIds { get; } = segmentIds;

    /// <summary>The segments by id.</summary>
    public IReadOnlyList<PanopticSegment> Segments { get; } = segments;

    /// <inheritdoc />
    public void Dispose() => SegmentIds.Dispose();
}
