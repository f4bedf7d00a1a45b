using MaskFormer.Engine.Postprocessing;
using MaskFormer.Engine.Preprocessing;
using MaskFormer.Engine.Sessions;

namespace MaskFormer.Engine.Tests.Postprocessing.Dense;

/// <summary>
/// The tile bounds (<see cref="MaskTiles.Lower"/> and <see cref="MaskTiles.Upper"/>) against a plain
/// loop: the smallest and largest resized-grid value over each tile's grid rows and columns
/// (<see cref="MaskUpsampler.ComputeGridRow"/>, <c>MathF.Min</c> and <c>Max</c>), less and plus the
/// query's margin, on random plans and on the benchmark's shapes (where tiles of eight take their
/// extremes by vector shuffles), with huge, signed-zero, infinite and NaN logits. A query with special
/// logits (not plain) gets no bounds: NaN in every tile, so that every tile is undecided for it (bounds
/// on its grid values would miss the NaN that 0 · ∞ makes in its pixels, <see cref="SpecialLogitTests"/>). A plain query's bounds skip the grid rows between two
/// that blend the same mask rows, so they may be a rounding tighter: never looser than the plain loop's,
/// and every grid value of the tile, skipped rows included, still lies at least 0.9 of the margin inside.
/// Where tiles span many grid points (<see cref="MaskTiles.BoundsFromCorners"/>) a plain query's bounds
/// come from the mask's corners and may be wider than the plain loop's; every grid value still lies at
/// least 0.9 of the margin inside them.
/// </summary>
public sealed class MaskTilesTests
{
    public static TheoryData<int> Seeds => TiledCases.Seeds;

    // The tiny model at 512x512 and 1920x1080, the realistic-width one at both (512x512: bounds from the
    // corners), and its 512x512 input stretched to 1920x1080, as `postproc` runs it: tiles of three and
    // four grid points, whose blocks of eight share one level of extremes and a window of three vectors.
    public static TheoryData<int, int, int, int, int, int> BenchmarkPlans => new()
    {
        { 512, 512, 128, 128, 128, 128 },
        { 1080, 1920, 128, 228, 128, 256 },
        { 512, 512, 512, 512, 512, 512 },
        { 1080, 1920, 512, 910, 512, 928 },
        { 1080, 1920, 512, 512, 512, 512 },
    };

    [Theory]
    [MemberData(nameof(Seeds))]
    public void Bounds_RandomPlans_HoldEveryGridValueWithinTheMargin(int seed)
    {
        var random = new Random(seed);
        AssertPlainBounds(random, TiledCases.Plan(random), $"seed {seed}");
    }

    [Theory]
    [MemberData(nameof(BenchmarkPlans))]
    public void Bounds_BenchmarkPlans_HoldEveryGridValueWithinTheMargin(int originalHeight, int originalWidth, int resizedHeight, int resizedWidth, int paddedHeight, int paddedWidth)
    {
        var plan = new ResizePlan(originalHeight, originalWidth, resizedHeight, resizedWidth, paddedHeight, paddedWidth);
        AssertPlainBounds(new Random(originalWidth + resizedWidth), plan, "benchmark plan");
    }

    private static void AssertPlainBounds(Random random, ResizePlan plan, string context)
    {
        using var output = Logits(random, plan);
        using var tiles = new MaskTiles(output, plan);
        var upsampler = tiles.Upsampler;
        var (rows, columns) = (tiles.TileRows, tiles.TileColumns);
        var grid = new float[upsampler.Rows.ResizedSize][];
        var scratch = new float[upsampler.ScratchLength];
        var (low, high) = (new float[columns.Count], new float[columns.Count]);
        for (var q = 0; q < output.Queries; q++)
        {
            for (var r = 0; r < grid.Length; r++)
            {
                grid[r] = new float[upsampler.Columns.ResizedSize];
                upsampler.ComputeGridRow(q, r, grid[r], scratch);
            }

            var margin = tiles.Margin(q);
            for (var row = 0; row < rows.Count; row++)
            {
                for (var t = 0; t < columns.Count; t++)
                {
                    var (min, max) = (float.PositiveInfinity, float.NegativeInfinity);
                    var first = true;
                    for (var r = rows.GridStarts[row]; r <= rows.GridEnds[row]; r++)
                    {
                        for (var c = columns.GridStarts[t]; c <= columns.GridEnds[t]; c++)
                        {
                            (min, max) = first ? (grid[r][c], grid[r][c]) : (MathF.Min(min, grid[r][c]), MathF.Max(max, grid[r][c]));
                            first = false;
                        }
                    }

                    (low[t], high[t]) = (min - margin, max + margin);
                }

                var where = $"{context}, plan {plan}, query {q}, tile row {row}";
                if (!tiles.IsPlain(q))
                {
                    Assert.True(tiles.Lower(q, row).ToArray().All(float.IsNaN), $"lower bounds of a query that is not plain ({where})");
                    Assert.True(tiles.Upper(q, row).ToArray().All(float.IsNaN), $"upper bounds of a query that is not plain ({where})");
                    continue;
                }

                for (var t = 0; t < columns.Count; t++)
                {
                    var (lower, upper) = (tiles.Lower(q, row)[t], tiles.Upper(q, row)[t]);
                    Assert.True(tiles.BoundsFromCorners || (lower >= low[t] && upper <= high[t]), $"tile {t}: [{lower:R}, {upper:R}] looser than [{low[t]:R}, {high[t]:R}] ({where})");
                    for (var r = rows.GridStarts[row]; r <= rows.GridEnds[row]; r++)
                    {
                        for (var c = columns.GridStarts[t]; c <= columns.GridEnds[t]; c++)
                        {
                            var value = grid[r][c];
                            Assert.True(value - lower >= 0.9f * margin && upper - value >= 0.9f * margin, $"tile {t}: grid value {value:R} at ({r}, {c}) not inside [{lower:R}, {upper:R}] by 0.9 of the margin {margin:R} ({where})");
                        }
                    }
                }
            }
        }
    }

    private static ModelOutput Logits(Random random, ResizePlan plan)
    {
        var output = new ModelOutput(3, 2, plan.PaddedHeight / 4, plan.PaddedWidth / 4);
        float[] specials = [0f, -0f, 1e-38f, -1e-40f, 3e38f, -3e38f, 1e30f, -87.5f, 88.7f, float.PositiveInfinity, float.NaN];
        var logits = output.MaskLogits;
        for (var i = 0; i < logits.Length; i++)
        {
            // The first query is plain, the second has a few specials, the third many.
            var query = i / (logits.Length / 3);
            var special = query switch
            {
                0 => false,
                1 => random.Next(500) == 0,
                _ => random.Next(4) == 0,
            };
            logits[i] = special ? specials[random.Next(specials.Length)] : (float)((random.NextDouble() * 40) - 20);
        }

        return output;
    }
}
