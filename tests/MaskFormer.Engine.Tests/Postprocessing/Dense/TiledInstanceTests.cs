using MaskFormer.Engine.Postprocessing;
using MaskFormer.Engine.Tests.Postprocessing;

namespace MaskFormer.Engine.Tests.Postprocessing.Dense;

/// <summary>
/// The tiled instance inference against the dense one it replaced: the same instances, masks, areas
/// and boxes bit for bit, scores within 2e-6 (saturated tiles add their sigmoid midpoint).
/// </summary>
public sealed class TiledInstanceTests
{
    private const double ScoreTolerance = 2e-6;

    public static TheoryData<int> Seeds => TiledCases.Seeds;

    [Theory]
    [MemberData(nameof(Seeds))]
    public void Run_RandomOutputs_EqualsDenseInstances(int seed) => AssertEqualsDense(seed, subnormalRange: false);

    // The tile bounds floor subnormal sigmoids (SubnormalFloor); the instances must not move.
    [Theory]
    [MemberData(nameof(Seeds))]
    public void Run_SubnormalRangeOutputs_EqualsDenseInstances(int seed) => AssertEqualsDense(seed, subnormalRange: true);

    private static void AssertEqualsDense(int seed, bool subnormalRange)
    {
        var random = new Random(seed);
        var plan = TiledCases.Plan(random);
        var (queries, classes) = (random.Next(1, 13), random.Next(1, 10));
        var labels = PeakyModelOutput.Labels(random, classes);
        using var output = TiledCases.Output(random, queries, classes + 1, plan, subnormalRange);
        var options = new PostprocessOptions { InstanceTopK = new[] { 1, 5, 100 }[random.Next(3)], InstanceScoreThreshold = new[] { 0f, 0.1f, 0.3f }[random.Next(3)] };
        var thingsOnly = random.Next(2) == 0;

        var tiled = InstanceInference.Run(output, plan, labels, thingsOnly, options);
        var dense = DenseInstanceInference.Run(output, plan, labels, thingsOnly, options);
        try
        {
            var context = $"seed {seed}, subnormal range {subnormalRange}, plan {plan}, {queries} queries, {classes} classes";
            var denseScores = dense.Select(i => (double)i.Score).ToArray();

            // Only a score within the tolerance of the threshold or of another score may come out differently:
            // then the two lists are compared as sets instead of in order.
            var closeCall = denseScores.Any(s => Math.Abs(s - options.InstanceScoreThreshold) < ScoreTolerance)
                || denseScores.Zip(denseScores.Skip(1)).Any(p => p.First - p.Second < 2 * ScoreTolerance);
            if (closeCall)
            {
                AssertSameUpToCloseCalls(dense, tiled, options.InstanceScoreThreshold, context);
                return;
            }

            Assert.True(dense.Count == tiled.Count, $"dense {dense.Count} instances, tiled {tiled.Count} ({context})");
            for (var i = 0; i < dense.Count; i++)
            {
                var (want, got) = (dense[i], tiled[i]);
                Assert.True(Math.Abs(want.Score - got.Score) <= ScoreTolerance, $"instance {i}: dense score {want.Score}, tiled {got.Score} ({context})");
                Assert.Equal((want.LabelId, want.Area, want.Box), (got.LabelId, got.Area, got.Box));
                Assert.True(want.Mask.Pixels.SequenceEqual(got.Mask.Pixels), $"instance {i}: masks differ ({context})");
            }
        }
        finally
        {
            foreach (var instance in tiled.Concat(dense))
            {
                instance.Dispose();
            }
        }
    }

    // Scores within the tolerance of each other may swap places, and one within it of the threshold may be
    // kept by one side only; every other instance must be on both sides with the same label, area, box
    // and mask, and a score within the tolerance.
    private static void AssertSameUpToCloseCalls(IReadOnlyList<InstanceMask> dense, IReadOnlyList<InstanceMask> tiled, float threshold, string context)
    {
        var unmatched = tiled.ToList();
        foreach (var want in dense)
        {
            var got = unmatched.FirstOrDefault(t => (t.LabelId, t.Area, t.Box) == (want.LabelId, want.Area, want.Box)
                && Math.Abs(t.Score - want.Score) <= ScoreTolerance
                && t.Mask.Pixels.SequenceEqual(want.Mask.Pixels));
            if (got is not null)
            {
                unmatched.Remove(got);
                continue;
            }

            Assert.True(Math.Abs(want.Score - threshold) < ScoreTolerance, $"dense instance (label {want.LabelId}, score {want.Score}) has no equal tiled one ({context})");
        }

        foreach (var extra in unmatched)
        {
            Assert.True(Math.Abs(extra.Score - threshold) < ScoreTolerance, $"tiled instance (label {extra.LabelId}, score {extra.Score}) has no equal dense one ({context})");
        }
    }
}
