using MaskFormer.Engine.Models;
using MaskFormer.Engine.Postprocessing;
using MaskFormer.Engine.Preprocessing;
using MaskFormer.Engine.Sessions;
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

    // Smooth masks on images four to twelve times the grid's width: inside tiles then sum most of their
    // segments by series (SegmentSigmoidSum) rather than pixel by pixel; the scores must not move.
    [Theory]
    [MemberData(nameof(Seeds))]
    public void Run_SmoothMasksUpsampled_EqualsDenseInstances(int seed)
    {
        var random = new Random(seed);
        var (resizedHeight, resizedWidth) = (random.Next(4, 48), random.Next(4, 48));
        var (paddedHeight, paddedWidth) = ((resizedHeight + 3) / 4 * 4, (resizedWidth + 3) / 4 * 4);
        var plan = new ResizePlan(random.Next(resizedHeight, 4 * resizedHeight), random.Next(4 * resizedWidth, 12 * resizedWidth), resizedHeight, resizedWidth, paddedHeight, paddedWidth);
        var (queries, classes) = (random.Next(1, 9), random.Next(1, 6));
        using var output = new ModelOutput(queries, classes + 1, paddedHeight / 4, paddedWidth / 4);
        foreach (ref var logit in output.ClassLogits)
        {
            logit = (float)((random.NextDouble() * 8) - 4);
        }

        var (height, width) = (output.MaskHeight, output.MaskWidth);
        for (var q = 0; q < queries; q++)
        {
            // A tilted plane with a gentle ripple: an edge where it crosses 0, wide inside and outside regions.
            var (level, slopeY, slopeX, ripple) = ((random.NextDouble() * 8) - 2, (random.NextDouble() - 0.5) * 0.8, (random.NextDouble() - 0.5) * 0.8, random.NextDouble() * 0.6);
            var plane = output.MaskLogits.Slice(q * height * width, height * width);
            for (var y = 0; y < height; y++)
            {
                for (var x = 0; x < width; x++)
                {
                    plane[(y * width) + x] = (float)(level + (slopeY * (y - (height / 2.0))) + (slopeX * (x - (width / 2.0))) + (ripple * Math.Sin(x + (2 * y))));
                }
            }
        }

        Assert.NotNull(new ComposedAxis(width, paddedWidth, resizedWidth, plan.OriginalWidth).Segments);
        AssertEqualsDense(random, plan, output, PeakyModelOutput.Labels(random, classes), $"smooth, seed {seed}, plan {plan}, {queries} queries, {classes} classes");
    }

    private static void AssertEqualsDense(int seed, bool subnormalRange)
    {
        var random = new Random(seed);
        var plan = TiledCases.Plan(random);
        var (queries, classes) = (random.Next(1, 13), random.Next(1, 10));
        var labels = PeakyModelOutput.Labels(random, classes);
        using var output = TiledCases.Output(random, queries, classes + 1, plan, subnormalRange);
        AssertEqualsDense(random, plan, output, labels, $"seed {seed}, subnormal range {subnormalRange}, plan {plan}, {queries} queries, {classes} classes");
    }

    internal static void AssertEqualsDense(Random random, ResizePlan plan, ModelOutput output, ModelLabel[] labels, string context)
    {
        var options = new PostprocessOptions { InstanceTopK = new[] { 1, 5, 100 }[random.Next(3)], InstanceScoreThreshold = new[] { 0f, 0.1f, 0.3f }[random.Next(3)] };
        var thingsOnly = random.Next(2) == 0;

        var tiled = InstanceInference.Run(output, plan, labels, thingsOnly, options);
        var dense = DenseInstanceInference.Run(output, plan, labels, thingsOnly, options);
        try
        {
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
