using MaskFormer.Engine.Postprocessing;
using MaskFormer.Engine.Tracking;

namespace MaskFormer.Engine.Tests.Tracking;

/// <summary>
/// The tracker's rule in plain loops, the oracle for the fast one. One list of tracks and one id counter
/// for everything. Each frame: tracks unseen for more than MaxMissedFrames frames or MaxMissedTime go;
/// panoptic segments (stuff and things) take the tracks they overlap most, whatever the classes, every
/// pair compared pixel by pixel over their boxes' overlap, greedy by IoU (ties by track, then segment);
/// each instance at or above MinInstanceScore then takes the id of the same frame's panoptic segment it
/// overlaps most (greedy the same way), the rest take the remaining old tracks, and what is left starts
/// tracks. A track's class is the most frequent of its last ClassVoteFrames classes, a tie keeping the
/// class it had, else going to the latest of the tied.
/// </summary>
internal sealed class ReferenceTracker
{
    private readonly List<TrackRecord> _tracks = [];
    private int _nextId;
    private long _frame;

    public (int[] Instances, int[] Panoptic, int[] InstanceClasses, int[] PanopticClasses) Track(
        IReadOnlyList<InstanceMask>? instances, PanopticResult? panoptic, TrackingOptions options, TimeSpan? time = null)
    {
        _frame++;
        _tracks.RemoveAll(t => _frame - t.LastFrame > options.MaxMissedFrames + 1
            || (time is { } now && t.LastTime is { } last && options.MaxMissedTime > TimeSpan.Zero && now - last > options.MaxMissedTime));
        var old = _tracks.ToList();

        var map = panoptic?.SegmentIds;
        var segments = panoptic is null
            ? []
            : panoptic.Segments.Select(s => new Detection(s.CategoryId, new Cropped(s.Box, s.Area, (x, y) => map!.Values[(y * map.Width) + x] == s.Id))).ToArray();
        var panopticIds = new int[segments.Length];
        var panopticClasses = new int[segments.Length];
        var free = old.ToList();
        Continue(segments, Enumerable.Range(0, segments.Length).ToList(), panopticIds, panopticClasses, free, time);
        Start(segments, panopticIds, panopticClasses, options, time);

        var detections = instances is null
            ? []
            : instances.Select(i => new Detection(i.LabelId, new Cropped(i.Box, i.Area, (x, y) => i.Mask.Pixels[(y * i.Mask.Width) + x] != 0))).ToArray();
        var instanceIds = new int[detections.Length];
        var instanceClasses = detections.Select(d => d.ClassId).ToArray();
        var tracked = Enumerable.Range(0, detections.Length).Where(i => instances![i].Score >= options.MinInstanceScore).ToList();
        var lent = new bool[segments.Length];
        foreach (var (_, p, i) in Pairs(segments.Select(s => s.Mask).ToList(), detections, tracked, options.IouThreshold))
        {
            if (!lent[p] && instanceIds[i] == 0)
            {
                lent[p] = true;
                instanceIds[i] = panopticIds[p];
                instanceClasses[i] = panopticClasses[p];
            }
        }

        Continue(detections, [.. tracked.Where(i => instanceIds[i] == 0)], instanceIds, instanceClasses, free, time);
        var untracked = Enumerable.Range(0, detections.Length).Except(tracked).ToArray();
        foreach (var i in untracked)
        {
            instanceIds[i] = -1;
        }

        Start(detections, instanceIds, instanceClasses, options, time);
        foreach (var i in untracked)
        {
            instanceIds[i] = 0;
        }

        return (instanceIds, panopticIds, instanceClasses, panopticClasses);

        void Continue(Detection[] found, List<int> candidates, int[] ids, int[] classes, List<TrackRecord> tracks, TimeSpan? at)
        {
            var taken = new HashSet<TrackRecord>();
            foreach (var (_, t, d) in Pairs(tracks.Select(t => t.Mask).ToList(), found, candidates, options.IouThreshold))
            {
                if (!taken.Contains(tracks[t]) && ids[d] == 0)
                {
                    taken.Add(tracks[t]);
                    ids[d] = tracks[t].Id;
                    classes[d] = tracks[t].See(found[d].ClassId, found[d].Mask, _frame, at);
                }
            }

            tracks.RemoveAll(taken.Contains);
        }
    }

    private void Start(Detection[] found, int[] ids, int[] classes, TrackingOptions options, TimeSpan? time)
    {
        for (var d = 0; d < found.Length; d++)
        {
            if (ids[d] == 0)
            {
                ids[d] = ++_nextId;
                classes[d] = found[d].ClassId;
                _tracks.Add(new TrackRecord(ids[d], found[d].ClassId, found[d].Mask, _frame, time, options.ClassVoteFrames));
            }
        }
    }

    private static IEnumerable<(double IoU, int Target, int Detection)> Pairs(List<Cropped> targets, Detection[] found, List<int> candidates, float threshold)
    {
        var pairs = new List<(double IoU, int Target, int Detection)>();
        for (var t = 0; t < targets.Count; t++)
        {
            foreach (var d in candidates)
            {
                var iou = IoU(targets[t], found[d].Mask);
                if (iou >= threshold)
                {
                    pairs.Add((iou, t, d));
                }
            }
        }

        return pairs.OrderByDescending(p => p.IoU).ThenBy(p => p.Target).ThenBy(p => p.Detection);
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

    private sealed record Detection(int ClassId, Cropped Mask);

    private sealed class TrackRecord(int id, int classId, Cropped mask, long frame, TimeSpan? time, int voteFrames)
    {
        private readonly List<int> _classes = [classId];

        public int Id { get; } = id;

        public int ClassId { get; private set; } = classId;

        public Cropped Mask { get; private set; } = mask;

        public long LastFrame { get; private set; } = frame;

        public TimeSpan? LastTime { get; private set; } = time;

        public int See(int classId, Cropped mask, long frame, TimeSpan? time)
        {
            (Mask, LastFrame, LastTime) = (mask, frame, time);
            _classes.Add(classId);
            var window = _classes.TakeLast(voteFrames).ToList();
            var counts = window.GroupBy(c => c).ToDictionary(g => g.Key, g => g.Count());
            var most = counts.Values.Max();
            if (counts.GetValueOrDefault(ClassId) != most)
            {
                ClassId = window.Last(c => counts[c] == most);
            }

            return ClassId;
        }
    }
}
