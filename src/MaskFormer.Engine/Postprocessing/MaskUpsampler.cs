using MaskFormer.Engine.Preprocessing;
using MaskFormer.Engine.Sessions;

namespace MaskFormer.Engine.Postprocessing;

/// <summary>
/// Produces rows of mask logits at the original image size, as detectron2's reference would after
/// <c>F.interpolate</c> to the padded size, cropping and <c>sem_seg_postprocess</c>, one output row at
/// a time so no full-resolution tensor of all queries is ever held.
/// </summary>
internal sealed class MaskUpsampler
{
    private readonly ModelOutput _output;
    private readonly ComposedAxis _rows;
    private readonly ComposedAxis _columns;

    public MaskUpsampler(ModelOutput output, ResizePlan plan)
    {
        if (output.MaskHeight * 4 != plan.PaddedHeight || output.MaskWidth * 4 != plan.PaddedWidth)
        {
            throw new InvalidOperationException($"Mask logits are {output.MaskHeight}x{output.MaskWidth}, expected a quarter of the padded input {plan.PaddedHeight}x{plan.PaddedWidth}.");
        }

        _output = output;
        _rows = new ComposedAxis(output.MaskHeight, plan.PaddedHeight, plan.ResizedHeight, plan.OriginalHeight);
        _columns = new ComposedAxis(output.MaskWidth, plan.PaddedWidth, plan.ResizedWidth, plan.OriginalWidth);
    }

    public int Width => _columns.OutputSize;

    public int Height => _rows.OutputSize;

    /// <summary>Floats of scratch space <see cref="ComputeRow"/> needs.</summary>
    public int ScratchLength => _output.MaskWidth;

    /// <summary>Writes query <paramref name="query"/>'s mask logits for output row <paramref name="y"/>.</summary>
    public void ComputeRow(int query, int y, Span<float> row, Span<float> scratch)
    {
        var maskWidth = _output.MaskWidth;
        var plane = _output.MaskLogits.Slice(query * _output.MaskHeight * maskWidth, _output.MaskHeight * maskWidth);
        var blended = scratch[..maskWidth];
        blended.Clear();
        var at = y * ComposedAxis.Taps;
        for (var k = 0; k < ComposedAxis.Taps; k++)
        {
            var weight = _rows.Weights[at + k];
            if (weight != 0f)
            {
                System.Numerics.Tensors.TensorPrimitives.MultiplyAdd(plane.Slice(_rows.Indices[at + k] * maskWidth, maskWidth), weight, blended, blended);
            }
        }

        var indices = _columns.Indices;
        var weights = _columns.Weights;
        for (var x = 0; x < row.Length; x++)
        {
            var i = x * ComposedAxis.Taps;
            row[x] = (weights[i] * blended[indices[i]]) + (weights[i + 1] * blended[indices[i + 1]])
                + (weights[i + 2] * blended[indices[i + 2]]) + (weights[i + 3] * blended[indices[i + 3]]);
        }
    }
}
