using MaskFormer.Engine.Postprocessing;

namespace MaskFormer.Engine.Tests.Postprocessing.Dense;

/// <summary>The tiled semantic inference against the dense one it replaced: the same labels, bit for bit.</summary>
public sealed class TiledSemanticTests
{
    public static TheoryData<int> Seeds => TiledCases.Seeds;

    public static TheoryData<int> SubnormalSeeds => [.. Enumerable.Range(1, 30)];

    [Theory]
    [MemberData(nameof(Seeds))]
    public void Run_RandomOutputs_EqualsDenseLabels(int seed) => AssertEqualsDense(seed, subnormalRange: false);

    // The bounds floor subnormal probabilities and sigmoids (SubnormalFloor); the labels must not move.
    [Theory]
    [MemberData(nameof(SubnormalSeeds))]
    public void Run_SubnormalRangeOutputs_EqualsDenseLabels(int seed) => AssertEqualsDense(seed, subnormalRange: true);

    [Fact]
    public void SubnormalRangeOutputs_HaveProbabilitiesAndSigmoidsBelowTheFloor()
    {
        var (withProbabilities, withSigmoids) = (0, 0);
        foreach (var seed in Enumerable.Range(1, 30))
        {
            var random = new Random(seed);
            var plan = TiledCases.Plan(random);
            var (queries, classes) = (random.Next(1, 13), random.Next(1, 10));
            using var output = TiledCases.Output(random, queries, classes + 1, plan, subnormalRange: true);
            var probabilities = ClassProbabilities.Softmax(output);
            withProbabilities += probabilities.Any(p => p < SubnormalFloor.Tiny) ? 1 : 0;
            var logits = output.MaskLogits.ToArray();
            withSigmoids += logits.Any(l => 1 / (1 + Math.Exp(-l)) < SubnormalFloor.Tiny) ? 1 : 0;
        }

        Assert.True(withProbabilities >= 15 && withSigmoids >= 15, $"of 30 cases, {withProbabilities} have a probability and {withSigmoids} a sigmoid below the floor");
    }

    // Two queries whose sigmoids sit just above and just below the floor (2^-60 is e^-41.59): the
    // second wins every pixel, which the bounds see only if the one below is raised to the floor, not cut to 0.
    [Fact]
    public void Run_SigmoidsEitherSideOfTheFloor_EqualsDenseLabels()
    {
        var plan = new MaskFormer.Engine.Preprocessing.ResizePlan(200, 150, 20, 15, 32, 32);
        using var output = new MaskFormer.Engine.Sessions.ModelOutput(2, 3, 8, 8);
        float[] classLogits = [0f, -1000f, MathF.Log(7f / 3f), -1000f, 5f, 0f];
        classLogits.CopyTo(output.ClassLogits);
        output.MaskLogits[..64].Fill(-41.4f);
        output.MaskLogits[64..].Fill(-41.7f);

        using var tiled = SemanticInference.Run(output, plan);
        using var dense = DenseSemanticInference.Run(output, plan);

        Assert.All(dense.Values.ToArray(), label => Assert.Equal(1, label));
        Assert.Equal(dense.Values.ToArray(), tiled.Values.ToArray());
    }

    private static void AssertEqualsDense(int seed, bool subnormalRange)
    {
        var random = new Random(seed);
        var plan = TiledCases.Plan(random);
        var (queries, classes) = (random.Next(1, 13), random.Next(1, 10));
        using var output = TiledCases.Output(random, queries, classes + 1, plan, subnormalRange);

        using var tiled = SemanticInference.Run(output, plan);
        using var dense = DenseSemanticInference.Run(output, plan);

        Assert.Equal((dense.Width, dense.Height), (tiled.Width, tiled.Height));
        var want = dense.Values;
        var got = tiled.Values;
        for (var i = 0; i < want.Length; i++)
        {
            Assert.True(want[i] == got[i], $"pixel {i % dense.Width},{i / dense.Width}: dense {want[i]}, tiled {got[i]} (seed {seed}, subnormal range {subnormalRange}, plan {plan}, {queries} queries, {classes} classes)");
        }
    }

    [Fact]
    public void Run_NaNLogit_EqualsDenseLabels()
    {
        var random = new Random(7);
        var plan = new MaskFormer.Engine.Preprocessing.ResizePlan(200, 150, 20, 15, 32, 32);
        using var output = TiledCases.Output(random, 5, 5, plan);
        output.MaskLogits[37] = float.NaN;
        output.MaskLogits[(2 * 64) + 5] = float.PositiveInfinity;

        using var tiled = SemanticInference.Run(output, plan);
        using var dense = DenseSemanticInference.Run(output, plan);

        Assert.Equal(dense.Values.ToArray(), tiled.Values.ToArray());
    }
}
