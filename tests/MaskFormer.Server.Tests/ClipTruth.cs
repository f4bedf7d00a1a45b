using System.Text.Json;
using SixLabors.ImageSharp.PixelFormats;

namespace MaskFormer.Server.Tests;

/// <summary>A clip with ground-truth identities (models/tiny-shapes/clip, clip-hard): frames, and per frame the objects by track.</summary>
internal sealed record ClipTruth(string Folder, IReadOnlyList<ClipTruth.Frame> Frames, IReadOnlyDictionary<int, (int CategoryId, string Name)> Tracks)
{
    public static ClipTruth Load(string folder)
    {
        using var json = JsonDocument.Parse(File.ReadAllText(Path.Combine(folder, "tracks.json")));
        var tracks = json.RootElement.GetProperty("tracks").EnumerateArray()
            .ToDictionary(t => t.GetProperty("track_id").GetInt32(), t => (t.GetProperty("category_id").GetInt32(), t.GetProperty("name").GetString()!));
        var frames = json.RootElement.GetProperty("frames").EnumerateArray().Select(f => new Frame(
            f.GetProperty("file_name").GetString()!,
            f.GetProperty("panoptic_file_name").GetString()!,
            [.. f.GetProperty("objects").EnumerateArray().Select(o => (o.GetProperty("track_id").GetInt32(), o.GetProperty("segment_id").GetInt32()))])).ToArray();
        return new ClipTruth(folder, frames, tracks);
    }

    /// <summary>Segment ids of a COCO panoptic PNG (id = R + 256 G + 65536 B), row by row.</summary>
    public static (int[] Ids, int Width, int Height) ReadSegmentIds(byte[] png)
    {
        using var image = SixLabors.ImageSharp.Image.Load<Rgb24>(png);
        var ids = new int[image.Width * image.Height];
        for (var y = 0; y < image.Height; y++)
        {
            for (var x = 0; x < image.Width; x++)
            {
                var p = image[x, y];
                ids[(y * image.Width) + x] = p.R + (256 * p.G) + (65536 * p.B);
            }
        }

        return (ids, image.Width, image.Height);
    }

    /// <summary>
    /// For each frame, each ground-truth object's predicted segment: the one segment, whatever its class, whose
    /// mask has IoU above 0.5 with the object's (unique when it exists, as in PQ), else none.
    /// </summary>
    public IReadOnlyList<Dictionary<int, int>> MatchObjects(IReadOnlyList<int[]> predictedSegmentIds)
    {
        var matches = new List<Dictionary<int, int>>();
        foreach (var (frame, predicted) in Frames.Zip(predictedSegmentIds))
        {
            var (truth, _, _) = ReadSegmentIds(File.ReadAllBytes(Path.Combine(Folder, frame.PanopticFile)));
            var overlap = new Dictionary<(int Truth, int Predicted), int>();
            var truthArea = new Dictionary<int, int>();
            var predictedArea = new Dictionary<int, int>();
            for (var i = 0; i < truth.Length; i++)
            {
                truthArea[truth[i]] = truthArea.GetValueOrDefault(truth[i]) + 1;
                predictedArea[predicted[i]] = predictedArea.GetValueOrDefault(predicted[i]) + 1;
                overlap[(truth[i], predicted[i])] = overlap.GetValueOrDefault((truth[i], predicted[i])) + 1;
            }

            var byObject = new Dictionary<int, int>();
            foreach (var (track, segment) in frame.Objects)
            {
                foreach (var ((t, p), intersection) in overlap)
                {
                    if (t == segment && p != 0 && intersection / (double)(truthArea[t] + predictedArea[p] - intersection) > 0.5)
                    {
                        byObject[track] = p;
                    }
                }
            }

            matches.Add(byObject);
        }

        return matches;
    }

    /// <summary>
    /// For each frame, each predicted segment that covers at least half of one or more ground-truth objects:
    /// those objects (track ids). A segment covering two is the model drawing both as one.
    /// </summary>
    public IReadOnlyList<Dictionary<int, HashSet<int>>> CoveredObjects(IReadOnlyList<int[]> predictedSegmentIds)
    {
        var covered = new List<Dictionary<int, HashSet<int>>>();
        foreach (var (frame, predicted) in Frames.Zip(predictedSegmentIds))
        {
            var (truth, _, _) = ReadSegmentIds(File.ReadAllBytes(Path.Combine(Folder, frame.PanopticFile)));
            var bySegment = new Dictionary<int, HashSet<int>>();
            foreach (var (track, segment) in frame.Objects)
            {
                var inside = new Dictionary<int, int>();
                var area = 0;
                for (var i = 0; i < truth.Length; i++)
                {
                    if (truth[i] == segment)
                    {
                        area++;
                        inside[predicted[i]] = inside.GetValueOrDefault(predicted[i]) + 1;
                    }
                }

                foreach (var (p, count) in inside)
                {
                    if (p != 0 && count * 2 >= area)
                    {
                        (bySegment.TryGetValue(p, out var objects) ? objects : bySegment[p] = []).Add(track);
                    }
                }
            }

            covered.Add(bySegment);
        }

        return covered;
    }

    /// <summary>
    /// Ids that passed from one object to another without the model ever drawing the two as one segment
    /// under that id (see <see cref="CoveredObjects"/>), counted once per extra group of objects that segments under the id joined: a hand-over the
    /// masks do not explain, which is the tracker's fault rather than the model's.
    /// </summary>
    public int CountUnmergedIdTransfers(IReadOnlyList<Dictionary<int, int>> matches, IReadOnlyList<Dictionary<int, HashSet<int>>> covered, Func<int, int, int> trackOf)
    {
        var objectsOf = new Dictionary<int, HashSet<int>>();
        for (var f = 0; f < Frames.Count; f++)
        {
            foreach (var (track, segment) in matches[f])
            {
                var id = trackOf(f, segment);
                (objectsOf.TryGetValue(id, out var objects) ? objects : objectsOf[id] = []).Add(track);
            }
        }

        var unmerged = 0;
        foreach (var (id, objects) in objectsOf.Where(o => o.Value.Count > 1))
        {
            // Objects one segment carrying this id covered together in some frame are one group; each
            // group beyond the first is a hand-over no merge explains.
            var groups = objects.Select(o => new HashSet<int> { o }).ToList();
            var merges = Enumerable.Range(0, Frames.Count)
                .SelectMany(f => covered[f].Where(c => trackOf(f, c.Key) == id).Select(c => c.Value));
            foreach (var merged in merges)
            {
                var joined = groups.Where(g => g.Overlaps(merged)).ToList();
                if (joined.Count < 2)
                {
                    continue;
                }

                groups.RemoveAll(joined.Contains);
                groups.Add([.. joined.SelectMany(g => g)]);
            }

            unmerged += groups.Count - 1;
        }

        return unmerged;
    }

    /// <summary>
    /// For each frame, each ground-truth object's instance: of the instances with a mask IoU above 0.5 with
    /// the object's mask, the one with the highest, as an index into <paramref name="instances"/>.
    /// </summary>
    public IReadOnlyList<Dictionary<int, int>> MatchInstances(IReadOnlyList<IReadOnlyList<int[]>> instances)
    {
        var matches = new List<Dictionary<int, int>>();
        foreach (var (frame, masks) in Frames.Zip(instances))
        {
            var (truth, _, _) = ReadSegmentIds(File.ReadAllBytes(Path.Combine(Folder, frame.PanopticFile)));
            var byObject = new Dictionary<int, int>();
            foreach (var (track, segment) in frame.Objects)
            {
                var inside = truth.Count(id => id == segment);
                var (best, bestIoU) = (-1, 0.5);
                for (var m = 0; m < masks.Count; m++)
                {
                    var intersection = masks[m].Count(p => truth[p] == segment);
                    var iou = intersection / (double)(inside + masks[m].Length - intersection);
                    if (iou > bestIoU)
                    {
                        (best, bestIoU) = (m, iou);
                    }
                }

                if (best >= 0)
                {
                    byObject[track] = best;
                }
            }

            matches.Add(byObject);
        }

        return matches;
    }

    /// <summary>The pixel indices (row-major) of a mask sent as uncompressed COCO RLE (column-major runs, first of 0s).</summary>
    public static int[] DecodeRle(Contracts.V1.Rle rle)
    {
        var pixels = new List<int>();
        var (position, set) = (0, false);
        foreach (var count in rle.Counts)
        {
            if (set)
            {
                for (var p = position; p < position + count; p++)
                {
                    pixels.Add((p % (int)rle.Height * (int)rle.Width) + (p / (int)rle.Height));
                }
            }

            position += (int)count;
            set = !set;
        }

        return [.. pixels];
    }

    /// <summary>
    /// Identity switches as CLEAR MOT counts them: an object matched to a track other than the one it was
    /// last matched to. <paramref name="trackOf"/> gives, per frame, the track id of a predicted segment id.
    /// </summary>
    public IdSwitchReport CountIdSwitches(IReadOnlyList<Dictionary<int, int>> matches, Func<int, int, int> trackOf)
    {
        var last = new Dictionary<int, int>();
        var ids = Tracks.Keys.ToDictionary(t => t, _ => new HashSet<int>());
        var (objectFrames, matched, switches) = (0, 0, 0);
        for (var f = 0; f < Frames.Count; f++)
        {
            foreach (var (track, _) in Frames[f].Objects)
            {
                objectFrames++;
                if (!matches[f].TryGetValue(track, out var segment))
                {
                    continue;
                }

                matched++;
                var id = trackOf(f, segment);
                ids[track].Add(id);
                if (last.TryGetValue(track, out var before) && before != id)
                {
                    switches++;
                }

                last[track] = id;
            }
        }

        var transfers = ids.Values.SelectMany(s => s).GroupBy(id => id).Sum(g => g.Count() - 1);
        return new IdSwitchReport(Tracks.Count, objectFrames, matched, switches, transfers, ids.Values.Max(s => s.Count), ids.Values.SelectMany(s => s).Distinct().Count());
    }

    public sealed record Frame(string File, string PanopticFile, IReadOnlyList<(int TrackId, int SegmentId)> Objects);
}

/// <summary>Tracking quality on a clip with ground-truth identities.</summary>
/// <param name="IdTransfers">Ids matched to more than one object, counted once per extra object.</param>
internal sealed record IdSwitchReport(int Objects, int ObjectFrames, int Matched, int IdSwitches, int IdTransfers, int MostIdsPerObject, int DistinctIds)
{
    public override string ToString() =>
        $"{Objects} objects, {Matched} of {ObjectFrames} object-frames matched (mask IoU > 0.5), {IdSwitches} id switches, {IdTransfers} ids passed between objects, at most {MostIdsPerObject} ids per object, {DistinctIds} ids for {Objects} objects";
}
