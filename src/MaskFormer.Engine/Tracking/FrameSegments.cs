using MaskFormer.Engine.Postprocessing;

namespace MaskFormer.Engine.Tracking;

/// <summary>
/// One frame's segments reduced to what tracking needs: class and run-length mask. Building it reads
/// the frame's masks and needs no tracker state, so it can run as soon as the frame is segmented,
/// off the stream's ordered path; <see cref="SegmentTracker.Track(FrameSegments, TrackingOptions)"/>
/// then only compares runs. Holds no pooled memory.
/// </summary>
public sealed class FrameSegments
{
    private FrameSegments(TrackedSegment[]? instances, TrackedSegment[]? panopticThings, int[]? panopticStuff)
    {
        Instances = instances;
        PanopticThings = panopticThings;
        PanopticCategories = panopticStuff;
    }

    internal TrackedSegment[]? Instances { get; }

    internal TrackedSegment[]? PanopticThings { get; }

    // One per panoptic segment: -1 for a thing (its id comes from matching), else the stuff category.
    internal int[]? PanopticCategories { get; }

    /// <summary>Reads the instances and panoptic segments of one frame (either may be null).</summary>
    public static FrameSegments From(IReadOnlyList<InstanceMask>? instances, PanopticResult? panoptic)
    {
        TrackedSegment[]? tracked = null;
        if (instances is not null)
        {
            tracked = new TrackedSegment[instances.Count];
            for (var i = 0; i < tracked.Length; i++)
            {
                var instance = instances[i];
                tracked[i] = new TrackedSegment(instance.LabelId, RunMask.FromBinary(instance.Mask, instance.Box, instance.Area));
            }
        }

        if (panoptic is null)
        {
            return new FrameSegments(tracked, null, null);
        }

        var things = new List<TrackedSegment>();
        var categories = new int[panoptic.Segments.Count];
        for (var i = 0; i < categories.Length; i++)
        {
            var segment = panoptic.Segments[i];
            categories[i] = segment.IsThing ? -1 : segment.CategoryId;
            if (segment.IsThing)
            {
                things.Add(new TrackedSegment(segment.CategoryId, RunMask.FromSegment(panoptic.SegmentIds, segment.Id, segment.Box, segment.Area)));
            }
        }

        return new FrameSegments(tracked, [.. things], categories);
    }

    /// <summary>Reads the instances and panoptic segments of <paramref name="result"/>.</summary>
    public static FrameSegments From(SegmentationResult result) => From(result.Instances, result.Panoptic);
}

/// <summary>A segment as the tracker sees it.</summary>
internal readonly record struct TrackedSegment(int ClassId, RunMask Mask);
