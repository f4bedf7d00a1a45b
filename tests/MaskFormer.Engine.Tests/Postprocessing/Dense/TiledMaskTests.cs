using MaskFormer.Engine.Encoding;
using MaskFormer.Engine.Postprocessing;

namespace MaskFormer.Engine.Tests.Postprocessing.Dense;

/// <summary>
/// The tiled masks as row runs against the dense computation: the runs hold exactly the pixels with a
/// logit above 0, their COCO RLE is the dense mask's, the mean sigmoid (float32 sigmoids summed in
/// float64) is within 1e-6 of the float64 one, and splitting rows into bands changes nothing.
/// </summary>
public sealed class TiledMaskTests
{
    public static TheoryData<int> Seeds => TiledCases.Seeds;

    [Theory]
    [MemberData(nameof(Seeds))]
    public void Measure_RandomOutputs_RunsAndMeanSigmoidMatchTheDenseMask(int seed)
    {
        var random = new Random(seed);
        var plan = TiledCases.Plan(random);
        var queries = random.Next(1, 13);
        using var output = TiledCases.Output(random, queries, 3, plan);
        using var tiles = new MaskTiles(output, plan);
        var upsampler = tiles.Upsampler;
        var (width, height) = (upsampler.Width, upsampler.Height);

        // All queries at once (one band each) and each alone (split into bands of rows).
        var together = TiledMask.Measure(tiles, [.. Enumerable.Range(0, queries)]);
        var logits = new float[width];
        var scratch = new float[upsampler.ScratchLength];
        try
        {
            for (var q = 0; q < queries; q++)
            {
                var context = $"seed {seed}, plan {plan}, query {q}";
                var measured = together[q];
                using var dense = new BinaryMask(width, height);
                var (area, sum) = (0L, 0.0);
                for (var y = 0; y < height; y++)
                {
                    upsampler.ComputeRow(q, y, logits, scratch);
                    for (var x = 0; x < width; x++)
                    {
                        if (logits[x] > 0f)
                        {
                            dense.Row(y)[x] = 1;
                            area++;
                            sum += 1.0 / (1.0 + Math.Exp(-logits[x]));
                        }
                    }
                }

                using var fromRuns = measured.Runs.ToBinaryMask();
                Assert.True(dense.Pixels.SequenceEqual(fromRuns.Pixels), $"runs differ from the dense mask ({context})");
                Assert.Equal(area, measured.Area);
                Assert.True(Math.Abs((sum / (area + 1e-6)) - (measured.SigmoidSum / (measured.Area + 1e-6))) <= 1e-6, $"mean sigmoid {measured.SigmoidSum / measured.Area}, dense {sum / area} ({context})");
                Assert.Equal(CocoRle.Encode(dense), CocoRle.Encode(measured.Runs, measured.Box));

                var alone = TiledMask.Measure(tiles, q);
                using (alone.Runs)
                {
                    Assert.Equal((measured.Area, measured.SigmoidSum, measured.Box), (alone.Area, alone.SigmoidSum, alone.Box));
                    for (var y = 0; y < height; y++)
                    {
                        Assert.True(measured.Runs.Row(y).SequenceEqual(alone.Runs.Row(y)), $"row {y} differs measured alone ({context})");
                    }
                }
            }
        }
        finally
        {
            foreach (var measured in together)
            {
                measured.Runs.Dispose();
            }
        }
    }
}
