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
public sealed class SegmentTracker
{
    private readonly List<TrackState> _instanceTracks = [];
    private readonly List<TrackState> _panopticTracks = [];
    private int _nextId;
    private long _frame;

    /// <summary>Assigns track ids to the frame's instances and thing segments.</summary>
    public TrackedFrame Track(SegmentationResult result, TrackingOptions options) => Track(result.Instances, result.Panoptic, options);

    /// <summary>Assigns track ids to one frame's instances and panoptic segments (either may be null).</summary>
    public TrackedFrame Track(IReadOnlyList<InstanceMask>? frameInstances, PanopticResult? framePanoptic, TrackingOptions options)
    {
        _frame++;
        var instanceIds = frameInstances is { } instances
            ? Match(_instanceTracks, [.. instances.Select(i => (i.LabelId, CroppedMask.FromBinary(i.Mask, i.Box, i.Area)))], options)
            : [];

        int[] panopticIds = [];
        if (framePanoptic is { } panoptic)
        {
            var things = panoptic.Segments.Where(s => s.IsThing).ToArray();
            var thingIds = Match(_panopticTracks, [.. things.Select(s => (s.CategoryId, CroppedMask.FromSegment(panoptic.SegmentIds, s.Id, s.Box, s.Area)))], options);
            var byId = things.Select((s, i) => (s.Id, thingIds[i])).ToDictionary(p => p.Id, p => p.Item2);
            panopticIds = [.. panoptic.Segments.Select(s => s.IsThing ? byId[s.Id] : s.CategoryId)];
        }

        return new TrackedFrame(instanceIds, panopticIds);
    }

    private int[] Match(List<TrackState> tracks, (int ClassId, CroppedMask Mask)[] detections, TrackingOptions options)
    {
        tracks.RemoveAll(t => _frame - t.LastSeen > options.MaxMissedFrames + 1);
        var pairs = new List<(double IoU, int Track, int Detection)>();
        for (var t = 0; t < tracks.Count; t++)
        {
            for (var d = 0; d < detections.Length; d++)
            {
                if (tracks[t].ClassId == detections[d].ClassId)
                {
                    var iou = tracks[t].Mask.IoU(detections[d].Mask);
                    if (iou >= options.IouThreshold)
                    {
                        pairs.Add((iou, t, d));
                    }
                }
            }
        }

        var ids = new int[detections.Length];
        var trackUsed = new bool[tracks.Count];
        foreach (var (_, t, d) in pairs.OrderByDescending(p => p.IoU).ThenBy(p => p.Track).ThenBy(p => p.Detection))
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

    private sealed record TrackState(int Id, int ClassId, CroppedMask Mask, long LastSeen);
}
