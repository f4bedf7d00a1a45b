using MaskFormer.Engine.Postprocessing;

namespace MaskFormer.Engine.Tracking;

/// <summary>
/// One frame's segments reduced to what tracking needs: class, score and run-length mask. Building it
/// reads the frame's masks and needs no tracker state, so it can run as soon as the frame is segmented,
/// off the stream's ordered path; <see cref="SegmentTracker.Track(FrameSegments, TrackingOptions, TimeSpan?)"/>
/// then only compares runs. Holds no pooled memory.
/// </summary>
public sealed class FrameSegments
{
    private FrameSegments(TrackedSegment[]? instances, TrackedSegment[]? panoptic, (int Width, int Height)? size)
    {
        Instances = instances;
        Panoptic = panoptic;
        Size = size;
    }

    /// <summary>The frame's size, when it has a panoptic result or an instance to read it from.</summary>
    internal (int Width, int Height)? Size { get; }

    internal TrackedSegment[]? Instances { get; }

    // Stuff and things alike, in the panoptic result's order.
    internal TrackedSegment[]? Panoptic { get; }

    /// <summary>
    /// Reads the instances and panoptic segments of one frame (either may be null). Instances scoring
    /// below <paramref name="minInstanceScore"/> are not read: they will not be tracked.
    /// </summary>
    public static FrameSegments From(IReadOnlyList<InstanceMask>? instances, PanopticResult? panoptic, float minInstanceScore = 0f)
    {
        TrackedSegment[]? tracked = null;
        if (instances is not null)
        {
            tracked = new TrackedSegment[instances.Count];
            for (var i = 0; i < tracked.Length; i++)
            {
                var instance = instances[i];
                tracked[i] = new TrackedSegment(
                    instance.LabelId,
                    instance.Score,
                    instance.Score >= minInstanceScore ? RunMask.FromRuns(instance.Runs, instance.Box, instance.Area) : null);
            }
        }

        TrackedSegment[]? segments = null;
        if (panoptic is not null)
        {
            segments = new TrackedSegment[panoptic.Segments.Count];
            for (var i = 0; i < segments.Length; i++)
            {
                var segment = panoptic.Segments[i];
                segments[i] = new TrackedSegment(segment.CategoryId, segment.Score, RunMask.FromSegment(panoptic.SegmentIds, segment.Id, segment.Box, segment.Area));
            }
        }

        var size = panoptic is not null ? (panoptic.SegmentIds.Width, panoptic.SegmentIds.Height)
            : instances is { Count: > 0 } ? (instances[0].Width, instances[0].Height)
            : ((int, int)?)null;
        return new FrameSegments(tracked, segments, size);
    }

    /// <summary>Reads the instances and panoptic segments of <paramref name="result"/>.</summary>
    public static FrameSegments From(SegmentationResult result, float minInstanceScore = 0f) => From(result.Instances, result.Panoptic, minInstanceScore);
}

/// <summary>A segment as the tracker sees it; no mask means it is not tracked.</summary>
internal readonly record struct TrackedSegment(int ClassId, float Score, RunMask? Mask);
