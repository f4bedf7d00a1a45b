using System.Numerics.Tensors;
using MaskFormer.Engine.Preprocessing;
using MaskFormer.Engine.Sessions;

namespace MaskFormer.Engine.Postprocessing;

/// <summary>
/// detectron2 MaskFormer's <c>semantic_inference</c> with <c>sem_seg_postprocess_before_inference</c>:
/// mask logits are upsampled (bilinear, align_corners=False) to the padded input, cropped, upsampled
/// to the original size; then softmax over classes without "no object", sigmoid over masks,
/// <c>einsum("qc,qhw->chw")</c> and argmax.
/// </summary>
/// <remarks>
/// Cost follows the class boundaries: a class's score over a tile lies between Σ_q p_q(c)·σ(lower_q)
/// and Σ_q p_q(c)·σ(upper_q) (<see cref="MaskTiles"/>), so a tile whose best lower bound beats every
/// other class's upper bound takes that class whole; a class whose bound over a block of eight tiles
/// already falls below that test is dropped from the whole block before its tile bounds are summed.
/// Elsewhere only the classes still in the running are scored, per pixel, with the very float32
/// operations of the dense computation, so labels are the same bit for bit.
/// </remarks>
public static class SemanticInference
{
    /// <summary>Computes the label map at the original image size.</summary>
    public static LabelMap Run(ModelOutput output, ResizePlan plan)
    {
        using var tiles = new MaskTiles(output, plan);
        return Run(tiles);
    }

    internal static LabelMap Run(MaskTiles tiles)
    {
        var output = tiles.Output;
        var probabilities = ClassProbabilities.Softmax(output);
        var classes = output.ClassesWithNoObject - 1;
        // Every pixel is written below: a tile's decided run or its pixel's best class.
        var map = new LabelMap(tiles.Upsampler.Width, tiles.Upsampler.Height, clear: false);
        if (classes <= 1)
        {
            map.Values.Clear();
            return map;
        }

        var work = (long)tiles.TileCount * output.Queries * classes * 8;
        Parallel.For(0, tiles.TileRows.Count, RowParallelism.ForWork(work), () => new SemanticTileRow(tiles, probabilities, classes), (row, _, solver) =>
        {
            solver.Solve(row, map);
            return solver;
        }, solver => solver.Dispose());

        return map;
    }
}
