using System.Buffers;
using System.Numerics.Tensors;
using MaskFormer.Engine.Models;
using MaskFormer.Engine.Postprocessing;
using MaskFormer.Engine.Preprocessing;
using MaskFormer.Engine.Sessions;

namespace MaskFormer.Engine.Tests.Postprocessing.Dense;

/// <summary>
/// The dense instance inference the service ran before tiles, kept verbatim as the oracle for the
/// tiled <see cref="InstanceInference"/>. Mask2Former's <c>instance_inference</c> (detectron2): top-k over queries × classes of the class
/// probabilities (without "no object"); binary mask = mask logit &gt; 0; score = class probability ×
/// the mean sigmoid inside the binary mask; optionally things only and a score threshold.
/// Results are sorted best first (ties by query, then class).
/// </summary>
internal static class DenseInstanceInference
{
    public static IReadOnlyList<InstanceMask> Run(ModelOutput output, ResizePlan plan, IReadOnlyList<ModelLabel> labels, bool thingsOnly, PostprocessOptions options)
    {
        var upsampler = new MaskUpsampler(output, plan);
        var probabilities = ClassProbabilities.Softmax(output);
        var classes = output.ClassesWithNoObject - 1;
        var candidates = new List<(int Query, int Label, float Probability)>(output.Queries * classes);
        for (var q = 0; q < output.Queries; q++)
        {
            for (var c = 0; c < classes; c++)
            {
                candidates.Add((q, c, probabilities[(q * (classes + 1)) + c]));
            }
        }

        // Top-k first, then the things-only filter, as the reference does.
        var top = candidates
            .OrderByDescending(c => c.Probability)
            .ThenBy(c => c.Query)
            .ThenBy(c => c.Label)
            .Take(Math.Min(options.InstanceTopK, candidates.Count))
            .Where(c => !thingsOnly || labels[c.Label].IsThing)
            .ToArray();

        var queries = top.Select(t => t.Query).Distinct().ToArray();
        var masks = queries.ToDictionary(q => q, q => MeasureMask(upsampler, q));
        var handedOver = new HashSet<int>();
        try
        {
            var instances = new List<InstanceMask>();
            foreach (var (query, label, probability) in top)
            {
                var measured = masks[query];
                var score = probability * (float)(measured.SigmoidSum / (measured.Area + 1e-6));
                if (score <= options.InstanceScoreThreshold)
                {
                    continue;
                }

                // The first instance of a query takes its mask; only a query scored under several
                // classes needs copies.
                var mask = handedOver.Add(query) ? measured.Mask : Copy(measured.Mask);
                instances.Add(new InstanceMask(label, score, measured.Area, measured.Box, mask));
            }

            return [.. instances.OrderByDescending(i => i.Score)];
        }
        finally
        {
            foreach (var (query, measured) in masks)
            {
                if (!handedOver.Contains(query))
                {
                    measured.Mask.Dispose();
                }
            }
        }
    }

    private static BinaryMask Copy(BinaryMask source)
    {
        var copy = new BinaryMask(source.Width, source.Height);
        source.Pixels.CopyTo(copy.Pixels);
        return copy;
    }

    private static (BinaryMask Mask, long Area, double SigmoidSum, PixelBox Box) MeasureMask(MaskUpsampler upsampler, int query)
    {
        var width = upsampler.Width;
        var mask = new BinaryMask(width, upsampler.Height);
        var rowAreas = new long[upsampler.Height];
        var rowSums = new double[upsampler.Height];
        Parallel.For(0, upsampler.Height, RowParallelism.For(width, upsampler.Height, 1), y =>
        {
            var scratch = ArrayPool<float>.Shared.Rent(upsampler.ScratchLength + width);
            try
            {
                var logits = scratch.AsSpan(upsampler.ScratchLength, width);
                upsampler.ComputeRow(query, y, logits, scratch.AsSpan(0, upsampler.ScratchLength));
                var row = mask.Row(y);
                var area = 0L;
                var sum = 0.0;
                for (var x = 0; x < width; x++)
                {
                    if (logits[x] > 0f)
                    {
                        row[x] = 1;
                        area++;
                        sum += 1.0 / (1.0 + Math.Exp(-logits[x]));
                    }
                }

                rowAreas[y] = area;
                rowSums[y] = sum;
            }
            finally
            {
                ArrayPool<float>.Shared.Return(scratch);
            }
        });

        var box = default(PixelBox.Builder);
        for (var y = 0; y < upsampler.Height; y++)
        {
            if (rowAreas[y] == 0)
            {
                continue;
            }

            var row = mask.Row(y);
            box.AddRun(row.IndexOf((byte)1), row.LastIndexOf((byte)1), y);
        }

        return (mask, rowAreas.Sum(), rowSums.Sum(), box.Build());
    }
}
