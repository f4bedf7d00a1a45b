using System.Buffers;
using System.Numerics.Tensors;
using MaskFormer.Engine.Postprocessing;
using MaskFormer.Engine.Preprocessing;
using MaskFormer.Engine.Sessions;

namespace MaskFormer.Engine.Tests.Postprocessing.Dense;

/// <summary>
/// The dense semantic inference the service ran before tiles: every class scored at every pixel.
/// Kept verbatim as the oracle the tiled <see cref="SemanticInference"/> must equal bit for bit.
/// detectron2 MaskFormer's <c>semantic_inference</c> with <c>sem_seg_postprocess_before_inference</c>:
/// mask logits are upsampled (bilinear, align_corners=False) to the padded input, cropped, upsampled
/// to the original size; then softmax over classes without "no object", sigmoid over masks,
/// <c>einsum("qc,qhw->chw")</c> and argmax. Works one output row at a time, rows in parallel.
/// </summary>
internal static class DenseSemanticInference
{
    public static LabelMap Run(ModelOutput output, ResizePlan plan)
    {
        var upsampler = new MaskUpsampler(output, plan);
        var probabilities = ClassProbabilities.Softmax(output);
        var queries = output.Queries;
        var classes = output.ClassesWithNoObject - 1;
        var width = upsampler.Width;
        var map = new LabelMap(width, upsampler.Height);
        var rowsPerChunk = Math.Max(1, 16384 / Math.Max(1, width * Math.Max(queries, classes) / 64));

        Parallel.For(0, (upsampler.Height + rowsPerChunk - 1) / rowsPerChunk, RowParallelism.For(width, upsampler.Height, queries), chunk =>
        {
            var scratch = ArrayPool<float>.Shared.Rent(upsampler.ScratchLength + width + (classes * width));
            try
            {
                var rowScratch = scratch.AsSpan(0, upsampler.ScratchLength);
                var mask = scratch.AsSpan(upsampler.ScratchLength, width);
                var scores = scratch.AsSpan(upsampler.ScratchLength + width, classes * width);
                var end = Math.Min(upsampler.Height, (chunk + 1) * rowsPerChunk);
                for (var y = chunk * rowsPerChunk; y < end; y++)
                {
                    scores.Clear();
                    for (var q = 0; q < queries; q++)
                    {
                        upsampler.ComputeRow(q, y, mask, rowScratch);
                        TensorPrimitives.Sigmoid(mask, mask);
                        var classRow = probabilities.AsSpan(q * (classes + 1), classes);
                        for (var c = 0; c < classes; c++)
                        {
                            TensorPrimitives.MultiplyAdd(mask, classRow[c], scores.Slice(c * width, width), scores.Slice(c * width, width));
                        }
                    }

                    ArgMaxOverClasses(scores, classes, width, map.Row(y));
                }
            }
            finally
            {
                ArrayPool<float>.Shared.Return(scratch);
            }
        });

        return map;
    }

    // The first class wins a tie, as torch.argmax does.
    private static void ArgMaxOverClasses(ReadOnlySpan<float> scores, int classes, int width, Span<ushort> labels)
    {
        labels.Clear();
        for (var c = 1; c < classes; c++)
        {
            var row = scores.Slice(c * width, width);
            for (var x = 0; x < width; x++)
            {
                if (row[x] > scores[(labels[x] * width) + x])
                {
                    labels[x] = (ushort)c;
                }
            }
        }
    }
}
