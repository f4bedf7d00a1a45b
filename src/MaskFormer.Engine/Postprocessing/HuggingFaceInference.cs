using System.Buffers;
using MaskFormer.Engine.Models;
using MaskFormer.Engine.Sessions;

namespace MaskFormer.Engine.Postprocessing;

/// <summary>
/// transformers' <c>MaskFormerImageProcessor.post_process_semantic_segmentation</c>,
/// <c>post_process_instance_segmentation</c> and <c>post_process_panoptic_segmentation</c>
/// (Mask2Former's, which first resize mask logits to 384 × 384, when the model is one), with
/// <c>target_sizes</c> = the output size: mask logits, class scores or binary masks are resized straight
/// to it. Where transformers.js differs from Python transformers, Python is followed (see the README).
/// </summary>
public static class HuggingFaceInference
{
    /// <summary>Semantic: class scores (Σ softmax · sigmoid) at mask resolution, resized, argmax.</summary>
    public static LabelMap Semantic(ModelOutput output, int height, int width, bool mask2Former)
    {
        var (rented, maskHeight, maskWidth) = HuggingFaceResize.MaskLogits(output, mask2Former);
        var classes = output.ClassesWithNoObject - 1;
        var plane = maskHeight * maskWidth;
        var scores = EngineArrayPool<float>.Shared.Rent(classes * plane);
        var probabilities = new float[output.ClassesWithNoObject];
        var sums = new double[classes * plane];
        var resize = new HuggingFaceResize.BilinearRows(maskHeight, maskWidth, height, width);
        var band = resize.BandRows(classes);
        var resized = EngineArrayPool<float>.Shared.Rent(classes * band * width);
        try
        {
            ReadOnlySpan<float> logits = rented is null ? output.MaskLogits : rented.AsSpan(0, output.Queries * plane);
            for (var q = 0; q < output.Queries; q++)
            {
                HuggingFaceResize.Softmax(output.ClassLogits.Slice(q * output.ClassesWithNoObject, output.ClassesWithNoObject), probabilities);
                var mask = logits.Slice(q * plane, plane);
                for (var p = 0; p < plane; p++)
                {
                    var probability = HuggingFaceResize.Sigmoid(mask[p]);
                    for (var c = 0; c < classes; c++)
                    {
                        sums[(c * plane) + p] += probabilities[c] * probability;
                    }
                }
            }

            for (var i = 0; i < sums.Length; i++)
            {
                scores[i] = (float)sums[i];
            }

            // A band of output rows at a time: the resized scores of every class at full size would take
            // 4 x classes bytes a pixel (1.2 GB for 150 classes at 1080p).
            var map = new LabelMap(width, height);
            var labels = map.Values;
            for (var firstRow = 0; firstRow < height; firstRow += band)
            {
                var rows = Math.Min(band, height - firstRow);
                var bandPlane = rows * width;
                resize.Resize(scores.AsSpan(0, classes * plane), classes, resized, firstRow, rows);
                for (var p = 0; p < bandPlane; p++)
                {
                    var best = 0;
                    var bestScore = resized[p];
                    for (var c = 1; c < classes; c++)
                    {
                        if (resized[(c * bandPlane) + p] > bestScore)
                        {
                            best = c;
                            bestScore = resized[(c * bandPlane) + p];
                        }
                    }

                    labels[(firstRow * width) + p] = (ushort)best;
                }
            }

            return map;
        }
        finally
        {
            EngineArrayPool<float>.Shared.Return(scores);
            EngineArrayPool<float>.Shared.Return(resized);
            if (rented is not null)
            {
                EngineArrayPool<float>.Shared.Return(rented);
            }
        }
    }

    /// <summary>
    /// Instance: the top <c>num_queries</c> (query, class) pairs by class probability; binary mask =
    /// logit &gt; 0 at mask resolution; score = probability × mean sigmoid inside it (+1e-6 in the
    /// denominator); the mask resized by nearest neighbour; kept when not empty and score ≥ the threshold.
    /// </summary>
    public static IReadOnlyList<InstanceMask> Instance(ModelOutput output, int height, int width, bool mask2Former, IReadOnlyList<ModelLabel> labels, bool thingsOnly, PostprocessOptions options)
    {
        var (rented, maskHeight, maskWidth) = HuggingFaceResize.MaskLogits(output, mask2Former);
        var classes = output.ClassesWithNoObject - 1;
        var plane = maskHeight * maskWidth;
        var probabilities = new float[output.ClassesWithNoObject];
        var candidates = new List<(int Query, int Label, float Probability)>(output.Queries * classes);
        for (var q = 0; q < output.Queries; q++)
        {
            HuggingFaceResize.Softmax(output.ClassLogits.Slice(q * output.ClassesWithNoObject, output.ClassesWithNoObject), probabilities);
            for (var c = 0; c < classes; c++)
            {
                candidates.Add((q, c, probabilities[c]));
            }
        }

        // topk(num_queries), or the call's instance_top_k: transformers asks for sorted=False, so its
        // order is unspecified; best first here.
        var top = candidates
            .OrderByDescending(c => c.Probability)
            .ThenBy(c => c.Query)
            .ThenBy(c => c.Label)
            .Take(options.TopK(output.Queries))
            .ToArray();

        var xSource = new int[width];
        for (var x = 0; x < width; x++)
        {
            xSource[x] = HuggingFaceResize.NearestSource(x, maskWidth, width);
        }

        var results = new List<InstanceMask>();

        // A query's mean probability and its mask, each computed once however many of its classes are
        // kept (instance_top_k may keep all of a query's classes): a second class copies the first's runs.
        var means = new float?[output.Queries];
        var built = new (MaskRuns Runs, long Area, PixelBox Box)?[output.Queries];
        try
        {
            ReadOnlySpan<float> logits = rented is null ? output.MaskLogits : rented.AsSpan(0, output.Queries * plane);
            foreach (var (query, label, probability) in top)
            {
                if (thingsOnly && !labels[label].IsThing)
                {
                    continue;
                }

                var mask = logits.Slice(query * plane, plane);
                var mean = means[query] ??= MeanInside(mask);
                var score = probability * mean;
                if (!(score >= options.InstanceScoreThreshold) || float.IsNaN(mean))
                {
                    continue;
                }

                if (built[query] is { } first)
                {
                    results.Add(new InstanceMask(label, score, first.Area, first.Box, first.Runs.Copy()) { Query = query });
                    continue;
                }

                // As row runs, like detectron2's instances: a one-byte-a-pixel mask per instance would cost
                // the output's area each (1.6 GB for 100 queries at 4096x4096).
                var box = new PixelBox.Builder();
                using var builder = new MaskRunsBuilder(0, height);
                for (var y = 0; y < height; y++)
                {
                    var sourceRow = mask.Slice(HuggingFaceResize.NearestSource(y, maskHeight, height) * maskWidth, maskWidth);
                    for (var x = 0; x < width; x++)
                    {
                        if (sourceRow[xSource[x]] <= 0)
                        {
                            continue;
                        }

                        // A run of set pixels, added once.
                        var start = x;
                        while (x + 1 < width && sourceRow[xSource[x + 1]] > 0)
                        {
                            x++;
                        }

                        builder.Add(start, x + 1);
                        box.AddRun(start, x, y);
                    }

                    builder.EndRow(y);
                }

                if (builder.Area == 0)
                {
                    means[query] = float.NaN; // empty at this size: none of its classes is an instance
                    continue;
                }

                var instance = new InstanceMask(label, score, builder.Area, box.Build(), builder.Build(width, height)) { Query = query };
                results.Add(instance);
                built[query] = (instance.Runs, instance.Area, instance.Box);
            }

            // Highest score first, as the contract says of every convention (transformers leaves the order to topk).
            return [.. results.OrderByDescending(r => r.Score)];
        }
        catch
        {
            foreach (var instance in results)
            {
                instance.Dispose();
            }

            throw;
        }
        finally
        {
            if (rented is not null)
            {
                EngineArrayPool<float>.Shared.Return(rented);
            }
        }
    }

    /// <summary>
    /// Panoptic: queries whose best class is not "no object" and scores above the threshold; their
    /// sigmoid masks resized, weighted by the score, argmax per pixel; a query's segment kept when it
    /// wins pixels and (won pixels ÷ its pixels with weighted probability ≥ mask_threshold) &gt; the
    /// overlap threshold; labels in <c>label_ids_to_fuse</c> share one segment id per label, exactly as
    /// Python transformers' <c>compute_segments</c> numbers them. 0 = void.
    /// </summary>
    public static PanopticResult Panoptic(ModelOutput output, int height, int width, bool mask2Former, IReadOnlyList<ModelLabel> labels, PostprocessOptions options)
    {
        var (rented, maskHeight, maskWidth) = HuggingFaceResize.MaskLogits(output, mask2Former);
        var plane = maskHeight * maskWidth;
        var noObject = output.ClassesWithNoObject - 1;
        var probabilities = new float[output.ClassesWithNoObject];
        var kept = new List<(int Query, int Label, float Score)>();
        for (var q = 0; q < output.Queries; q++)
        {
            var logits = output.ClassLogits.Slice(q * output.ClassesWithNoObject, output.ClassesWithNoObject);
            HuggingFaceResize.Softmax(logits, probabilities);
            var label = 0;
            for (var c = 1; c < probabilities.Length; c++)
            {
                if (probabilities[c] > probabilities[label])
                {
                    label = c;
                }
            }

            if (label != noObject && probabilities[label] > options.ObjectMaskThreshold)
            {
                kept.Add((q, label, probabilities[label]));
            }
        }

        var map = new LabelMap(width, height);
        if (kept.Count == 0)
        {
            ReturnRented(rented);
            return new PanopticResult(map, []);
        }

        var outPlane = height * width;
        var resize = new HuggingFaceResize.BilinearRows(maskHeight, maskWidth, height, width);
        var band = resize.BandRows(kept.Count);
        var weighted = EngineArrayPool<float>.Shared.Rent(kept.Count * band * width);
        var sigmoid = EngineArrayPool<float>.Shared.Rent(kept.Count * plane);
        var owner = EngineArrayPool<int>.Shared.Rent(outPlane);
        var best = EngineArrayPool<float>.Shared.Rent(band * width);
        try
        {
            ReadOnlySpan<float> logits = rented is null ? output.MaskLogits : rented.AsSpan(0, output.Queries * plane);
            for (var k = 0; k < kept.Count; k++)
            {
                var mask = logits.Slice(kept[k].Query * plane, plane);
                var target = sigmoid.AsSpan(k * plane, plane);
                for (var p = 0; p < plane; p++)
                {
                    target[p] = HuggingFaceResize.Sigmoid(mask[p]);
                }
            }

            // A band of output rows at a time (the kept masks at full size would take 4 bytes a pixel
            // each): weigh each mask by its score, argmax over queries (the first maximum winning), and
            // count each query's pixels with weighted probability at or above mask_threshold.
            var ownArea = new long[kept.Count];
            for (var firstRow = 0; firstRow < height; firstRow += band)
            {
                var rows = Math.Min(band, height - firstRow);
                var bandPlane = rows * width;
                resize.Resize(sigmoid.AsSpan(0, kept.Count * plane), kept.Count, weighted, firstRow, rows);
                var bandBest = best.AsSpan(0, bandPlane);
                var bandOwner = owner.AsSpan(firstRow * width, bandPlane);
                bandBest.Clear();
                bandOwner.Clear();
                for (var k = 0; k < kept.Count; k++)
                {
                    var score = kept[k].Score;
                    var probabilityPlane = weighted.AsSpan(k * bandPlane, bandPlane);
                    for (var p = 0; p < bandPlane; p++)
                    {
                        var value = probabilityPlane[p] * score;
                        if (value >= options.MaskThreshold)
                        {
                            ownArea[k]++;
                        }

                        if (value > bandBest[p])
                        {
                            bandBest[p] = value;
                            bandOwner[p] = k;
                        }
                    }
                }
            }

            return BuildSegments(map, kept, ownArea, owner, outPlane, width, labels, options);
        }
        catch
        {
            map.Dispose();
            throw;
        }
        finally
        {
            EngineArrayPool<float>.Shared.Return(weighted);
            EngineArrayPool<float>.Shared.Return(sigmoid);
            EngineArrayPool<int>.Shared.Return(owner);
            EngineArrayPool<float>.Shared.Return(best);
            ReturnRented(rented);
        }
    }

    private static PanopticResult BuildSegments(LabelMap map, List<(int Query, int Label, float Score)> kept, long[] ownArea, int[] owner, int outPlane, int width, IReadOnlyList<ModelLabel> labels, PostprocessOptions options)
    {
        var ids = map.Values;
        var wonArea = new long[kept.Count];
        for (var p = 0; p < outPlane; p++)
        {
            wonArea[owner[p]]++;
        }

        var fuse = options.LabelIdsToFuse;
        var stuffMemory = new Dictionary<int, int>();
        var segmentIdOfQuery = new int[kept.Count];
        var segments = new List<(int Id, int Label, float Score, bool Fused)>();
        var currentSegmentId = 0;
        for (var k = 0; k < kept.Count; k++)
        {
            var (_, label, score) = kept[k];
            var exists = wonArea[k] > 0 && ownArea[k] > 0 && (double)wonArea[k] / ownArea[k] > options.OverlapThreshold;
            if (!exists)
            {
                continue;
            }

            // Python transformers' compute_segments sets the running id back to a fused label's id
            // (image_processing_maskformer.py: `current_segment_id = stuff_memory_list[pred_class]`),
            // so a later new segment can reuse an id; reproduced as is.
            var shouldFuse = fuse?.Contains(label) == true;
            currentSegmentId = stuffMemory.TryGetValue(label, out var fusedId) ? fusedId : currentSegmentId + 1;
            segmentIdOfQuery[k] = currentSegmentId;
            segments.Add((currentSegmentId, label, (float)Math.Round(score, 6), shouldFuse));
            if (shouldFuse)
            {
                stuffMemory[label] = currentSegmentId;
            }
        }

        for (var p = 0; p < outPlane; p++)
        {
            ids[p] = (ushort)segmentIdOfQuery[owner[p]];
        }

        var areas = new Dictionary<int, long>();
        var boxes = new Dictionary<int, PixelBox.Builder>();
        for (var p = 0; p < outPlane; p++)
        {
            int id = ids[p];
            if (id == 0)
            {
                continue;
            }

            areas[id] = areas.GetValueOrDefault(id) + 1;
            var box = boxes.GetValueOrDefault(id);
            box.Add(p % width, p / width);
            boxes[id] = box;
        }

        return new PanopticResult(map, [.. segments.Select(s => new PanopticSegment(
            s.Id,
            s.Label,
            fuse is null ? labels[s.Label].IsThing : !s.Fused,
            s.Score,
            areas.GetValueOrDefault(s.Id),
            boxes.GetValueOrDefault(s.Id).Build()))]);
    }

    private static void ReturnRented(float[]? rented)
    {
        if (rented is not null)
        {
            EngineArrayPool<float>.Shared.Return(rented);
        }
    }

    // transformers' mask score: the mean sigmoid over the logits above 0 (plus 1e-6 in the denominator);
    // NaN when none is, so an empty mask is no instance of any class.
    private static float MeanInside(ReadOnlySpan<float> mask)
    {
        var inside = 0f;
        var count = 0f;
        foreach (var logit in mask)
        {
            if (logit > 0)
            {
                inside += HuggingFaceResize.Sigmoid(logit);
                count++;
            }
        }

        return count == 0 ? float.NaN : inside / (count + 1e-6f);
    }
}
