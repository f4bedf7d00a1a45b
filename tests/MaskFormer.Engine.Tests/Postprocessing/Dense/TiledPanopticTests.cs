using MaskFormer.Engine.Models;
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

    // Two kept queries: the left of the image is both masks (the second, scored higher, wins it); on the
    // right their sigmoids sit either side of the floor (2^-60 is e^-41.59), and the second still wins
    // there (0.99·e^-41.65 > 0.85·e^-41.55), which the tile and block bounds see only if the one below
    // the floor is raised to it, not cut to 0. Cut, the first query would take the right as a segment.
    // Tiles of 16x16 pixels, so that the mixed ones are cut into blocks (PanopticTileRow.Blocks).
    [Fact]
    public void Run_SigmoidsEitherSideOfTheFloor_EqualsDenseSegments()
    {
        var plan = new MaskFormer.Engine.Preprocessing.ResizePlan(256, 256, 16, 16, 32, 32);
        using var output = new MaskFormer.Engine.Sessions.ModelOutput(2, 3, 8, 8);
        float[] classLogits = [MathF.Log(0.85f / 0.15f), -1000f, 0f, -1000f, MathF.Log(99f), 0f];
        classLogits.CopyTo(output.ClassLogits);
        for (var i = 0; i < 64; i++)
        {
            var right = i % 8 >= 2;
            output.MaskLogits[i] = right ? -41.55f : 5f;
            output.MaskLogits[64 + i] = right ? -41.65f : 5f;
        }

        ModelLabel[] labels = [new(0, "first", true), new(1, "second", true)];
        var options = new PostprocessOptions { ObjectMaskThreshold = 0.8f, OverlapThreshold = 0.8f };

        using var tiled = PanopticInference.Run(output, plan, labels, isMask2Former: false, options);
        using var dense = DensePanopticInference.Run(output, plan, labels, isMask2Former: false, options);

        var segment = Assert.Single(dense.Segments);
        Assert.Equal((1, (long)plan.OriginalWidth * plan.OriginalHeight), (segment.CategoryId, segment.Area));
        Assert.Equal(dense.Segments, tiled.Segments);
        Assert.Equal(dense.SegmentIds.Values.ToArray(), tiled.SegmentIds.Values.ToArray());
    }

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
