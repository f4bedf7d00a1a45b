using MaskFormer.Engine.Postprocessing;
using MaskFormer.Engine.Preprocessing;

namespace MaskFormer.Engine.Tests.Postprocessing.Dense;

/// <summary>
/// A mask with an infinite, NaN or huge logit (not plain: its blends can reach infinity) against the dense
/// computation, for all three tasks and for an image larger than the model's input, smaller, and the same
/// size. The same size is the trap: the second resize then keeps the grid, its second tap weighs nothing,
/// and 0 · ∞ makes NaN in the dense computation's pixels next to an infinite grid value, as PyTorch's
/// bilinear interpolation does (`F.interpolate` of a grid holding +∞ to its own size gives NaN there),
/// where bounds on the grid values alone see only ∞.
/// </summary>
public sealed class SpecialLogitTests
{
    public static TheoryData<float, int, int> Cases()
    {
        var cases = new TheoryData<float, int, int>();
        foreach (var special in new[] { float.PositiveInfinity, float.NegativeInfinity, float.NaN, 3e38f, -3e38f })
        {
            for (var plan = 0; plan < 3; plan++)
            {
                for (var seed = 1; seed <= 4; seed++)
                {
                    cases.Add(special, plan, seed);
                }
            }
        }

        return cases;
    }

    [Theory]
    [MemberData(nameof(Cases))]
    public void Semantic_SpecialMaskLogit_EqualsDenseLabels(float special, int planKind, int seed)
    {
        var (plan, output, _) = Case(special, planKind, seed);
        using (output)
        {
            using var tiled = SemanticInference.Run(output, plan);
            using var dense = DenseSemanticInference.Run(output, plan);
            Assert.Equal(dense.Values.ToArray(), tiled.Values.ToArray());
        }
    }

    [Theory]
    [MemberData(nameof(Cases))]
    public void Instance_SpecialMaskLogit_EqualsDenseInstances(float special, int planKind, int seed)
    {
        var (plan, output, random) = Case(special, planKind, seed);
        using (output)
        {
            TiledInstanceTests.AssertEqualsDense(random, plan, output, PeakyModelOutput.Labels(random, 3), $"{special} in query 1, plan {plan}, seed {seed}");
        }
    }

    [Theory]
    [MemberData(nameof(Cases))]
    public void Panoptic_SpecialMaskLogit_EqualsDenseSegments(float special, int planKind, int seed)
    {
        var (plan, output, random) = Case(special, planKind, seed);
        using (output)
        {
            var labels = PeakyModelOutput.Labels(random, 3);
            foreach (var isMask2Former in new[] { false, true })
            {
                using var tiled = PanopticInference.Run(output, plan, labels, isMask2Former, PostprocessOptions.Detectron2);
                using var dense = DensePanopticInference.Run(output, plan, labels, isMask2Former, PostprocessOptions.Detectron2);
                Assert.Equal(dense.Segments, tiled.Segments);
                Assert.Equal(dense.SegmentIds.Values.ToArray(), tiled.SegmentIds.Values.ToArray());
            }
        }
    }

    // A 32x48 model input (an 8x12 mask grid) for an image of 96x150, 20x30 or 32x48 (the grid kept);
    // four queries over three classes, the special value in query 1's mask, away from its edges.
    private static (ResizePlan Plan, MaskFormer.Engine.Sessions.ModelOutput Output, Random Random) Case(float special, int planKind, int seed)
    {
        var plan = planKind switch
        {
            0 => new ResizePlan(96, 150, 32, 48, 32, 48),
            1 => new ResizePlan(20, 30, 32, 48, 32, 48),
            _ => new ResizePlan(32, 48, 32, 48, 32, 48),
        };
        var random = new Random(seed);
        var output = TiledCases.Output(random, 4, 4, plan);
        output.MaskLogits[(output.MaskHeight * output.MaskWidth) + (3 * output.MaskWidth) + 5] = special;
        return (plan, output, random);
    }
}
