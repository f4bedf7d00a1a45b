using MaskFormer.Engine.Postprocessing;

namespace MaskFormer.Engine.Tracking;

/// <summary>Track ids and track classes for one frame, parallel to its instance and panoptic segment lists.</summary>
/// <param name="InstanceTrackIds">One per instance; 0 for an instance not tracked (below the score threshold).</param>
/// <param name="PanopticTrackIds">One per panoptic segment, stuff and things alike.</param>
/// <param name="InstanceTrackClasses">One per instance: the class its track's recent frames vote for (its own label when not tracked).</param>
/// <param name="PanopticTrackClasses">One per panoptic segment: the class its track's recent frames vote for.</param>
public sealed record TrackedFrame(
    IReadOnlyList<int> InstanceTrackIds,
    IReadOnlyList<int> PanopticTrackIds,
    IReadOnlyList<int> InstanceTrackClasses,
    IReadOnlyList<int> PanopticTrackClasses);

/// <summary>
/// Gives the segments of one stream stable ids, one id space for stuff, things, instances and panoptic
/// segments, counting from 1 (0 means "not tracked"); ids are not category ids. A segment continues the
/// track whose last mask overlaps it most, whatever either's class (greedy by IoU, at least the
/// threshold), so a frame in which the model mislabels an object keeps its id; the track's class is a
/// vote over its recent frames. Panoptic segments are matched first when the frame has them; an
/// instance then takes the id of the panoptic segment of the same frame it overlaps most (the same
/// object seen by both tasks), and only instances left over are matched to the remaining tracks.
/// Unmatched segments start tracks; tracks unseen for too many frames or too long are forgotten.
/// Frames may change size: the tracks' masks are carried to the new size (nearest neighbour).
/// Frames must be fed in order. Not thread-safe: one per stream.
/// </summary>
/// <remarks>
/// Cost follows boxes and boundaries: masks are kept as row runs, a pair whose IoU cannot reach the
/// threshold given its box overlap and areas is never compared, a pair one of whose sides was taken by
/// a better pair before its turn came is never compared either, and the exact IoU of the rest walks
/// only the runs of the rows both boxes share. The matches are those of comparing every pair pixel by
/// pixel.
/// </remarks>
public sealed class SegmentTracker
{
    private readonly List<Track> _tracks = [];
    private int _lastId;
    private long _frame;
    private (int Width, int Height)? _size;

    /// <summary>Assigns track ids to the frame's instances and panoptic segments.</summary>
    public TrackedFrame Track(SegmentationResult result, TrackingOptions options, TimeSpan? time = null) =>
        Track(FrameSegments.From(result, options.MinInstanceScore), options, time);

    /// <summary>Assigns track ids to one frame's instances and panoptic segments (either may be null).</summary>
    public TrackedFrame Track(IReadOnlyList<InstanceMask>? frameInstances, PanopticResult? framePanoptic, TrackingOptions options, TimeSpan? time = null) =>
        Track(FrameSegments.From(frameInstances, framePanoptic, options.MinInstanceScore), options, time);

    /// <summary>
    /// Assigns track ids to one frame read by <see cref="FrameSegments.From(SegmentationResult, float)"/>.
    /// <paramref name="time"/> is when the frame was taken or received, on any clock that only goes
    /// forward; without it tracks expire by frame count alone.
    /// </summary>
    public TrackedFrame Track(FrameSegments frame, TrackingOptions options, TimeSpan? time = null)
    {
        _frame++;
        _tracks.RemoveAll(t => t.Expired(_frame, time, options));
        if (frame.Size is { } size)
        {
            // A stream's output size can change between frames (a latency contract lowering it, a new
            // config): the tracks' masks follow, so objects keep their ids through the change.
            if (_size is { } previous && previous != size)
            {
                foreach (var track in _tracks)
                {
                    track.Resize(previous, size);
                }
            }

            _size = size;
        }
        var matched = new bool[_tracks.Count];
        var existing = _tracks.Count;

        var panoptic = frame.Panoptic ?? [];
        var panopticIds = new int[panoptic.Length];
        var panopticClasses = new int[panoptic.Length];
        Assign(panoptic, panopticIds, panopticClasses, matched, existing, options, time);

        var instances = frame.Instances ?? [];
        var instanceIds = new int[instances.Length];
        var instanceClasses = new int[instances.Length];
        for (var i = 0; i < instances.Length; i++)
        {
            instanceClasses[i] = instances[i].ClassId;
            if (instances[i].Mask is null || instances[i].Score < options.MinInstanceScore)
            {
                instanceIds[i] = -1;
            }
        }

        if (panoptic.Length > 0)
        {
            // Each panoptic segment lends its id to at most one instance of the same frame.
            var lent = new bool[panoptic.Length];
            foreach (var (i, p) in Matches(instances, instanceIds, panoptic.Length, p => panoptic[p].Mask!, lent, options.IouThreshold))
            {
                lent[p] = true;
                instanceIds[i] = panopticIds[p];
                instanceClasses[i] = panopticClasses[p];
            }
        }

        Assign(instances, instanceIds, instanceClasses, matched, existing, options, time);
        for (var i = 0; i < instanceIds.Length; i++)
        {
            instanceIds[i] = Math.Max(instanceIds[i], 0);
        }

        return new TrackedFrame(instanceIds, panopticIds, instanceClasses, panopticClasses);
    }

    // Segments whose id is still 0 continue the best-overlapping tracks not yet seen in this frame, or
    // start new ones.
    private void Assign(TrackedSegment[] segments, int[] ids, int[] classes, bool[] matched, int existing, TrackingOptions options, TimeSpan? time)
    {
        foreach (var (d, t) in Matches(segments, ids, existing, t => _tracks[t].Mask, matched, options.IouThreshold))
        {
            matched[t] = true;
            ids[d] = _tracks[t].Id;
            classes[d] = _tracks[t].See(segments[d].ClassId, segments[d].Mask!, _frame, time, options.ClassVoteFrames);
        }

        for (var d = 0; d < segments.Length; d++)
        {
            if (ids[d] == 0)
            {
                // Wraps past int.MaxValue to 1, never to 0 or a negative id.
                _lastId = _lastId == int.MaxValue ? 1 : _lastId + 1;
                ids[d] = _lastId;
                classes[d] = segments[d].ClassId;
                _tracks.Add(new Track(_lastId, segments[d].ClassId, segments[d].Mask!, _frame, time));
            }
        }
    }

    // Greedy one-to-one matching by IoU, highest first (ties by target, then segment), of the segments
    // whose id is 0 to the targets not taken; only pairs at or above the threshold. Lazily: every pair
    // enters a queue under its bound, and only a pair that reaches the head while both its sides are
    // still free is measured exactly (and goes back in under its IoU). A bound never falls below the
    // IoU and goes ahead of an equal IoU, so pairs are taken in the order sorting every exact IoU would
    // give, and the pairs left behind by a taken side (most of them, when objects overlap a lot) are
    // never measured.
    private static List<(int Segment, int Target)> Matches(TrackedSegment[] segments, int[] ids, int targets, Func<int, RunMask> target, bool[] taken, float threshold)
    {
        var pairs = new List<((int Target, int Segment) Pair, PairKey Key)>();
        for (var t = 0; t < targets; t++)
        {
            if (taken[t])
            {
                continue;
            }

            var mask = target(t);
            for (var d = 0; d < segments.Length; d++)
            {
                if (ids[d] != 0)
                {
                    continue;
                }

                var bound = mask.IoUUpperBound(segments[d].Mask!);
                if (bound >= threshold)
                {
                    pairs.Add(((t, d), new PairKey(bound, false, t, d)));
                }
            }
        }

        var queue = new PriorityQueue<(int Target, int Segment), PairKey>(pairs, PairKey.Order);
        var result = new List<(int Segment, int Target)>();
        var targetUsed = new bool[targets];
        var segmentUsed = new bool[segments.Length];

        // A mask measured against several others is unpacked into bits once, for this call only.
        var targetBits = new MaskBits?[targets];
        var segmentBits = new MaskBits?[segments.Length];
        try
        {
            while (queue.TryDequeue(out var pair, out var key))
            {
                var (t, d) = pair;
                if (targetUsed[t] || segmentUsed[d])
                {
                    continue;
                }

                if (!key.Exact)
                {
                    var (mask, other) = (target(t), segments[d].Mask!);
                    if (pairs.Count > targets)
                    {
                        targetBits[t] ??= new MaskBits(mask);
                    }

                    if (pairs.Count > segments.Length)
                    {
                        segmentBits[d] ??= new MaskBits(other);
                    }

                    var iou = (targetBits[t], segmentBits[d]) switch
                    {
                        ({ } a, { } b) => mask.IoU(a, other, b),
                        ({ } a, null) => other.IoU(mask, a),
                        (null, { } b) => mask.IoU(other, b),
                        _ => mask.IoU(other),
                    };
                    if (iou >= threshold)
                    {
                        queue.Enqueue(pair, new PairKey(iou, true, t, d));
                    }

                    continue;
                }

                targetUsed[t] = segmentUsed[d] = true;
                result.Add((d, t));
            }
        }
        finally
        {
            foreach (var unpacked in targetBits.Concat(segmentBits))
            {
                unpacked?.Dispose();
            }
        }

        return result;
    }

    // A pair's place in the queue: higher IoU (or bound) first; at equal values a bound before an exact
    // IoU, then lower target, then lower segment.
    private readonly record struct PairKey(double Value, bool Exact, int Target, int Segment)
    {
        public static IComparer<PairKey> Order { get; } = Comparer<PairKey>.Create(static (a, b) =>
            a.Value != b.Value ? b.Value.CompareTo(a.Value)
            : a.Exact != b.Exact ? a.Exact.CompareTo(b.Exact)
            : a.Target != b.Target ? a.Target.CompareTo(b.Target)
            : a.Segment.CompareTo(b.Segment));
    }
}
