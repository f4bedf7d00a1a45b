using MaskFormer.Engine.Postprocessing;

namespace MaskFormer.Engine.Tracking;

/// <summary>Track ids for one frame, parallel to its instance and panoptic segment lists.</summary>
/// <param name="InstanceTrackIds">One per instance.</param>
/// <param name="PanopticTrackIds">One per panoptic segment; stuff gets its category id.</param>
public sealed record TrackedFrame(IReadOnlyList<int> InstanceTrackIds, IReadOnlyList<int> PanopticTrackIds);

/// <summary>
/// Gives segments stable ids across the frames of one stream: a segment continues the track of the same
/// class whose last mask overlaps it most (greedy by IoU, at least the threshold); otherwise it starts a
/// new track. Frames must be fed in order. Not thread-safe: one per stream.
/// </summary>
/// <remarks>
/// Cost follows boxes and boundaries: masks are kept as row runs, a pair whose IoU cannot reach the
/// threshold given its box overlap and areas is never compared, and the exact IoU of the rest walks
/// only the runs of the rows both boxes share. The matches are those of comparing every same-class
/// pair pixel by pixel.
/// </remarks>
public sealed class SegmentTracker
{
    private readonly List<TrackState> _instanceTracks = [];
    private readonly List<TrackState> _panopticTracks = [];
    private int _nextId;
    private long _frame;

    /// <summary>Assigns track ids to the frame's instances and thing segments.</summary>
    public TrackedFrame Track(SegmentationResult result, TrackingOptions options) => Track(FrameSegments.From(result), options);

    /// <summary>Assigns track ids to one frame's instances and panoptic segments (either may be null).</summary>
    public TrackedFrame Track(IReadOnlyList<InstanceMask>? frameInstances, PanopticResult? framePanoptic, TrackingOptions options) =>
        Track(FrameSegments.From(frameInstances, framePanoptic), options);

    /// <summary>Assigns track ids to one frame read by <see cref="FrameSegments.From(SegmentationResult)"/>.</summary>
    public TrackedFrame Track(FrameSegments frame, TrackingOptions options)
    {
        _frame++;
        var instanceIds = frame.Instances is { } instances ? Match(_instanceTracks, instances, options) : [];
        int[] panopticIds = [];
        if (frame.PanopticCategories is { } categories)
        {
            var thingIds = Match(_panopticTracks, frame.PanopticThings!, options);
            panopticIds = new int[categories.Length];
            for (int i = 0, thing = 0; i < categories.Length; i++)
            {
                panopticIds[i] = categories[i] >= 0 ? categories[i] : thingIds[thing++];
            }
        }

        return new TrackedFrame(instanceIds, panopticIds);
    }

    private int[] Match(List<TrackState> tracks, TrackedSegment[] detections, TrackingOptions options)
    {
        tracks.RemoveAll(t => _frame - t.LastSeen > options.MaxMissedFrames + 1);
        var pairs = new List<(double IoU, int Track, int Detection)>();
        for (var t = 0; t < tracks.Count; t++)
        {
            var track = tracks[t];
            for (var d = 0; d < detections.Length; d++)
            {
                if (track.ClassId != detections[d].ClassId || track.Mask.IoUUpperBound(detections[d].Mask) < options.IouThreshold)
                {
                    continue;
                }

                var iou = track.Mask.IoU(detections[d].Mask);
                if (iou >= options.IouThreshold)
                {
                    pairs.Add((iou, t, d));
                }
            }
        }

        pairs.Sort(static (a, b) => a.IoU != b.IoU ? b.IoU.CompareTo(a.IoU) : a.Track != b.Track ? a.Track.CompareTo(b.Track) : a.Detection.CompareTo(b.Detection));
        var ids = new int[detections.Length];
        var trackUsed = new bool[tracks.Count];
        foreach (var (_, t, d) in pairs)
        {
            if (!trackUsed[t] && ids[d] == 0)
            {
                trackUsed[t] = true;
                ids[d] = tracks[t].Id;
                tracks[t] = tracks[t] with { Mask = detections[d].Mask, LastSeen = _frame };
            }
        }

        for (var d = 0; d < detections.Length; d++)
        {
            if (ids[d] == 0)
            {
                ids[d] = ++_nextId;
                tracks.Add(new TrackState(ids[d], detections[d].ClassId, detections[d].Mask, _frame));
            }
        }

        return ids;
    }

    private sealed record TrackState(int Id, int ClassId, RunMask Mask, long LastSeen);
}
