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
    public void Run_RandomOutputs_EqualsDenseInstances(int seed)
    {
        var random = new Random(seed);
        var plan = TiledCases.Plan(random);
        var (queries, classes) = (random.Next(1, 13), random.Next(1, 10));
        var labels = PeakyModelOutput.Labels(random, classes);
        using var output = TiledCases.Output(random, queries, classes + 1, plan);
        var options = new PostprocessOptions { InstanceTopK = new[] { 1, 5, 100 }[random.Next(3)], InstanceScoreThreshold = new[] { 0f, 0.1f, 0.3f }[random.Next(3)] };
        var thingsOnly = random.Next(2) == 0;

        var tiled = InstanceInference.Run(output, plan, labels, thingsOnly, options);
        var dense = DenseInstanceInference.Run(output, plan, labels, thingsOnly, options);
        try
        {
            var context = $"seed {seed}, plan {plan}, {queries} queries, {classes} classes";
            var denseScores = dense.Select(i => (double)i.Score).ToArray();

            // Only a score within the tolerance of the threshold or of another score may come out differently.
            var closeCall = denseScores.Any(s => Math.Abs(s - options.InstanceScoreThreshold) < ScoreTolerance)
                || denseScores.Zip(denseScores.Skip(1)).Any(p => p.First - p.Second < 2 * ScoreTolerance);
            if (closeCall && tiled.Count != dense.Count)
            {
                return;
            }

            Assert.True(dense.Count == tiled.Count, $"dense {dense.Count} instances, tiled {tiled.Count} ({context})");
            for (var i = 0; i < dense.Count; i++)
            {
                var (want, got) = (dense[i], tiled[i]);
                if (closeCall && (want.LabelId, want.Area) != (got.LabelId, got.Area))
                {
                    return;
                }

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
}
