using MaskFormer.Engine.Postprocessing;
using MaskFormer.Engine.Preprocessing;
using MaskFormer.Engine.Sessions;

namespace MaskFormer.Engine.Tests.Postprocessing.Dense;

/// <summary>
/// Semantic inference where "no object" queries decide the label: each spare query (class probabilities
/// summing to under 1e-6, which the tile bounds take as one sum per class) adds 9e-7 to class 0, and
/// together they outweigh the one confident query's 2e-5 lead for class 1. The tile bounds must leave
/// room for them — an upper bound without them would take class 1 for every tile — so the tiled labels
/// are still the dense computation's, bit for bit, and class 0 wins.
/// </summary>
public sealed class SpareQuerySemanticTests
{
    private static readonly ResizePlan s_plan = new(40, 56, 32, 48, 32, 48);

    [Theory]
    [InlineData(0, 1)]
    [InlineData(60, 0)]
    [InlineData(20, 1)]
    public void Run_SpareQueriesTipTheScores_EqualsDenseLabels(int spareQueries, int expectedLabel)
    {
        using var output = Output(spareQueries);
        var want = AssertTiledEqualsDense(output, $"{spareQueries} spare queries");
        Assert.All(want, label => Assert.Equal(expectedLabel, label));
    }

    // A spare query's NaN mask logit makes the dense scores NaN wherever it reaches, at any probability:
    // such a query is bounded tile by tile like any other, so the labels still follow the dense ones.
    [Fact]
    public void Run_SpareQueryWithNaNMask_EqualsDenseLabels()
    {
        using var output = Output(20);
        var plane = output.MaskHeight * output.MaskWidth;
        output.MaskLogits[(10 * plane) + 13] = float.NaN;
        var labels = AssertTiledEqualsDense(output, "a NaN in spare query 10");

        // Where the NaN reaches, the dense argmax sees NaN scores and gives class 0; class 1 elsewhere.
        Assert.Contains((ushort)0, labels);
        Assert.Contains((ushort)1, labels);
    }

    private static ModelOutput Output(int spareQueries)
    {
        var plan = s_plan;
        var output = new ModelOutput(1 + spareQueries, 3, plan.PaddedHeight / 4, plan.PaddedWidth / 4);

        // The confident query: p(0) = 0.1, p(1) = 0.1 · e^2e-4 (about 2e-5 more), the rest "no object".
        output.ClassLogits[0] = 0f;
        output.ClassLogits[1] = 2e-4f;
        output.ClassLogits[2] = MathF.Log(7.9998f);
        for (var q = 1; q <= spareQueries; q++)
        {
            // p(0) = 9e-7, p(1) = 9e-7 · e^-30: "no object" takes the rest.
            output.ClassLogits[3 * q] = 0f;
            output.ClassLogits[(3 * q) + 1] = -30f;
            output.ClassLogits[(3 * q) + 2] = MathF.Log(1f / 9e-7f);
        }

        // Every mask confidently on, a little uneven so the tiles differ.
        var random = new Random(spareQueries);
        for (var i = 0; i < output.MaskLogits.Length; i++)
        {
            output.MaskLogits[i] = 10f + (float)(random.NextDouble() * 0.01);
        }

        return output;
    }

    private static ushort[] AssertTiledEqualsDense(ModelOutput output, string context)
    {
        using var tiled = SemanticInference.Run(output, s_plan);
        using var dense = DenseSemanticInference.Run(output, s_plan);
        var want = dense.Values.ToArray();
        var got = tiled.Values;
        for (var i = 0; i < want.Length; i++)
        {
            Assert.True(want[i] == got[i], $"pixel {i % dense.Width},{i / dense.Width}: dense {want[i]}, tiled {got[i]} ({context})");
        }

        return want;
    }
}
