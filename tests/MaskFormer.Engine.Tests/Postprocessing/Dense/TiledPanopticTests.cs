using MaskFormer.Engine.Postprocessing;
using MaskFormer.Engine.Tests.Postprocessing;

namespace MaskFormer.Engine.Tests.Postprocessing.Dense;

/// <summary>The tiled panoptic inference against the dense one it replaced: the same map and segments, bit for bit.</summary>
public sealed class TiledPanopticTests
{
    public static TheoryData<int, bool> Cases
    {
        get
        {
            var cases = new TheoryData<int, bool>();
            for (var seed = 1; seed <= 60; seed++)
            {
                cases.Add(seed, seed % 2 == 0);
            }

            return cases;
        }
    }

    [Theory]
    [MemberData(nameof(Cases))]
    public void Run_RandomOutputs_EqualsDenseSegments(int seed, bool isMask2Former) => AssertEqualsDense(seed, isMask2Former, subnormalRange: false);

    // The tile bounds floor subnormal sigmoids (SubnormalFloor); the segments must not move.
    [Theory]
    [MemberData(nameof(Cases))]
    public void Run_SubnormalRangeOutputs_EqualsDenseSegments(int seed, bool isMask2Former) => AssertEqualsDense(seed, isMask2Former, subnormalRange: true);

    private static void AssertEqualsDense(int seed, bool isMask2Former, bool subnormalRange)
    {
        var random = new Random(seed);
        var plan = TiledCases.Plan(random);
        var (queries, classes) = (random.Next(1, 13), random.Next(1, 10));
        var labels = PeakyModelOutput.Labels(random, classes);
        using var output = TiledCases.Output(random, queries, classes + 1, plan, subnormalRange);
        var options = new PostprocessOptions
        {
            ObjectMaskThreshold = new[] { 0.2f, 0.5f, 0.8f }[random.Next(3)],
            OverlapThreshold = new[] { 0.2f, 0.5f, 0.8f }[random.Next(3)],
        };

        using var tiled = PanopticInference.Run(output, plan, labels, isMask2Former, options);
        using var dense = DensePanopticInference.Run(output, plan, labels, isMask2Former, options);

        var context = $"seed {seed}, subnormal range {subnormalRange}, plan {plan}, {queries} queries, {classes} classes";
        Assert.Equal(dense.Segments, tiled.Segments);
        var want = dense.SegmentIds.Values;
        var got = tiled.SegmentIds.Values;
        for (var i = 0; i < want.Length; i++)
        {
            Assert.True(want[i] == got[i], $"pixel {i % plan.OriginalWidth},{i / plan.OriginalWidth}: dense {want[i]}, tiled {got[i]} ({context})");
        }
    }
}
