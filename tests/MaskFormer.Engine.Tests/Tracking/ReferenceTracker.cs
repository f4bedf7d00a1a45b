using MaskFormer.Engine.Postprocessing;
using MaskFormer.Engine.Tracking;

namespace MaskFormer.Engine.Tests.Tracking;

/// <summary>
/// The tracker's rule in plain loops, the oracle for the fast one: every same-class pair of track and
/// detection compared pixel by pixel over their boxes' overlap, greedy by IoU (ties by track, then
/// detection), unmatched detections start tracks, tracks unseen for more than MaxMissedFrames go.
/// </summary>
internal sealed class ReferenceTracker
{
    private readonly List<TrackRecord> _instanceTracks = [];
    private readonly List<TrackRecord> _panopticTracks = [];
    private int _nextId;
    private long _frame;

    public (int[] Instances, int[] Panoptic) Track(IReadOnlyList<InstanceMask>? instances, PanopticResult? panoptic, TrackingOptions options)
    {
        _frame++;
        var instanceIds = instances is null
            ? []
            : Match(_instanceTracks, [.. instances.Select(i => new Detection(i.LabelId, i.Box, i.Area, (x, y) => i.Mask.Pixels[(y * i.Mask.Width) + x] != 0))], options);
        int[] panopticIds = [];
        if (panoptic is not null)
        {
            var things = panoptic.Segments.Where(s => s.IsThing).ToArray();
            var map = panoptic.SegmentIds;
            var thingIds = Match(_panopticTracks, [.. things.Select(s => new Detection(s.CategoryId, s.Box, s.Area, (x, y) => map.Values[(y * map.Width) + x] == s.Id))], options);
            var byId = things.Select((s, i) => (s.Id, thingIds[i])).ToDictionary(p => p.Id, p => p.Item2);
            panopticIds = [.. panoptic.Segments.Select(s => s.IsThing ? byId[s.Id] : s.CategoryId)];
        }

        return (instanceIds, panopticIds);
    }

    private int[] Match(List<TrackRecord> tracks, Detection[] detections, TrackingOptions options)
    {
        tracks.RemoveAll(t => _frame - t.LastSeen > options.MaxMissedFrames + 1);
        var pairs = new List<(double IoU, int Track, int Detection)>();
        for (var t = 0; t < tracks.Count; t++)
        {
            for (var d = 0; d < detections.Length; d++)
            {
                if (tracks[t].ClassId == detections[d].ClassId)
                {
                    var iou = IoU(tracks[t].Mask, detections[d].Mask);
                    if (iou >= options.IouThreshold)
                    {
                        pairs.Add((iou, t, d));
                    }
                }
            }
        }

        var ids = new int[detections.Length];
        var used = new bool[tracks.Count];
        foreach (var (_, t, d) in pairs.OrderByDescending(p => p.IoU).ThenBy(p => p.Track).ThenBy(p => p.Detection))
        {
            if (!used[t] && ids[d] == 0)
            {
                used[t] = true;
                ids[d] = tracks[t].Id;
                tracks[t] = tracks[t] with { Mask = detections[d].Mask, LastSeen = _frame };
            }
        }

        for (var d = 0; d < detections.Length; d++)
        {
            if (ids[d] == 0)
            {
                ids[d] = ++_nextId;
                tracks.Add(new TrackRecord(ids[d], detections[d].ClassId, detections[d].Mask, _frame));
            }
        }

        return ids;
    }

    private static double IoU(Cropped a, Cropped b)
    {
        long intersection = 0;
        for (var y = Math.Max(a.Box.Y, b.Box.Y); y < Math.Min(a.Box.Y + a.Box.Height, b.Box.Y + b.Box.Height); y++)
        {
            for (var x = Math.Max(a.Box.X, b.Box.X); x < Math.Min(a.Box.X + a.Box.Width, b.Box.X + b.Box.Width); x++)
            {
                if (a.Inside(x, y) && b.Inside(x, y))
                {
                    intersection++;
                }
            }
        }

        var union = a.Area + b.Area - intersection;
        return union > 0 ? intersection / (double)union : 0;
    }

    private sealed class Cropped(PixelBox box, long area, Func<int, int, bool> inside)
    {
        private readonly bool[] _pixels = [.. Enumerable.Range(0, box.Width * box.Height).Select(i => inside(box.X + (i % box.Width), box.Y + (i / box.Width)))];

        public PixelBox Box { get; } = box;

        public long Area { get; } = area;

        public bool Inside(int x, int y) => _pixels[((y - Box.Y) * Box.Width) + x - Box.X];
    }

    private sealed class Detection(int classId, PixelBox box, long area, Func<int, int, bool> inside)
    {
        public int ClassId { get; } = classId;

        public Cropped Mask { get; } = new(box, area, inside);
    }

    private sealed record TrackRecord(int Id, int ClassId, Cropped Mask, long LastSeen);
}
