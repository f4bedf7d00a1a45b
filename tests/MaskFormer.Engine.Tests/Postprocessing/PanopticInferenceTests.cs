using MaskFormer.Engine.Postprocessing;
using MaskFormer.Engine.Preprocessing;
using MaskFormer.Engine.Sessions;
using MaskFormer.Engine.Tests.Reference;

namespace MaskFormer.Engine.Tests.Postprocessing;

public sealed class PanopticInferenceTests
{
    private const int SeedCount = 30;
    private const int CrowdedSeedCount = 16;
    private const float CrowdedObjectThreshold = 0.5f;
    private const double CrowdedOverlapThreshold = 0.8;

    public static TheoryData<int, bool> CrowdedCases() => SeedCases(CrowdedSeedCount);

    public static TheoryData<int, bool> Cases() => SeedCases(SeedCount);

    // Each seed for MaskFormer and for Mask2Former.
    private static TheoryData<int, bool> SeedCases(int seeds)
    {
        var cases = new TheoryData<int, bool>();
        foreach (var seed in Enumerable.Range(1, seeds))
        {
            cases.Add(seed, false);
            cases.Add(seed, true);
        }

        return cases;
    }

    [Theory]
    [MemberData(nameof(Cases))]
    public void Run_RandomLogits_MatchesFloat64Reference(int seed, bool isMask2Former)
    {
        // A case with a decision too close to call in float32 is skipped here and counted (and bounded)
        // by Run_RandomLogits_MostCasesAreClearAndProduceSegments.
        RunRandomCase(seed, isMask2Former);
    }

    [Fact]
    public void Run_RandomLogits_MostCasesAreClearAndProduceSegments()
    {
        var (cases, skipped, segments, things, stuff, voidPixels, dropped, merged) = (0, 0, 0, 0, 0, 0L, 0, 0);
        foreach (var seed in Enumerable.Range(1, SeedCount))
        {
            foreach (var isMask2Former in new[] { false, true })
            {
                var outcome = RunRandomCase(seed, isMask2Former);
                cases++;
                skipped += outcome.Ambiguity is null ? 0 : 1;
                segments += outcome.Segments;
                things += outcome.Things;
                stuff += outcome.Segments - outcome.Things;
                voidPixels += outcome.VoidPixels;
                dropped += outcome.DroppedByOverlap;
                merged += outcome.MergedStuff;
            }
        }

        Assert.True(skipped <= cases / 5, $"{skipped} of {cases} cases had a decision too close to call");
        Assert.True(segments >= 60 && things >= 15 && stuff >= 15, $"only {segments} segments ({things} things, {stuff} stuff) across {cases} cases, {skipped} skipped");
        Assert.True(voidPixels > 0, "no case left a pixel void");
        Assert.True(dropped >= 20 && merged >= 5, $"only {dropped} queries dropped by the overlap check and {merged} stuff merges ({segments} segments, {skipped} skipped)");
    }

    [Theory]
    [MemberData(nameof(CrowdedCases))]
    public void Run_ManyOverlappingQueries_MatchesFloat64Reference(int seed, bool isMask2Former)
    {
        // As Run_RandomLogits_MatchesFloat64Reference; the same cases without the reference, which
        // cannot call every one of them, follow.
        using var output = CrowdedOutput(seed, out var plan, out var labels);
        MatchReference(output, plan, labels, isMask2Former, CrowdedObjectThreshold, CrowdedOverlapThreshold, $"crowded seed {seed}, plan {plan}");
    }

    [Fact]
    public void SolveOrder_BusiestRowsFirst_TiesInRowOrder()
    {
        // Pass 1 takes the rows holding the most per-pixel work first; which rows it then skips may
        // change, the result may not (the test below compares every case with and without the bounds).
        Assert.Equal([3, 1, 0, 4, 5, 2], PanopticDropBounds.SolveOrder([5, 9, 0, 12, 5, 1]));
        Assert.Equal([0, 1, 2], PanopticDropBounds.SolveOrder([0, 0, 0]));
        Assert.Empty(PanopticDropBounds.SolveOrder([]));
    }

    [Fact]
    public void Run_ManyOverlappingQueries_SameWithoutDropBoundsAndTheyLeaveTilesUncomputed()
    {
        // The drop bounds change nothing but the work: bit for bit the same map and segments as pass 1
        // computing every tile, on every case, those the float64 reference cannot call included. They
        // must also leave tiles uncomputed, beside kept segments, or these cases test nothing of them.
        var (casesSkipping, segments, dropped) = (0, 0, 0);
        foreach (var seed in Enumerable.Range(1, CrowdedSeedCount))
        {
            using var output = CrowdedOutput(seed, out var plan, out var labels);
            foreach (var isMask2Former in new[] { false, true })
            {
                var options = new PostprocessOptions { ObjectMaskThreshold = CrowdedObjectThreshold, OverlapThreshold = (float)CrowdedOverlapThreshold };
                using var tiles = new MaskTiles(output, plan);
                using var bounded = PanopticInference.Run(tiles, labels, isMask2Former, options, dropBounds: true, out var skippedPixels);
                using var computed = PanopticInference.Run(tiles, labels, isMask2Former, options, dropBounds: false, out var none);

                var context = $"crowded seed {seed}, plan {plan}, {(isMask2Former ? "Mask2Former" : "MaskFormer")}";
                Assert.Equal(0, none);
                Assert.True(computed.SegmentIds.Values.SequenceEqual(bounded.SegmentIds.Values), $"segment maps differ ({context})");
                Assert.Equal(computed.Segments, bounded.Segments);
                casesSkipping += skippedPixels > 0 ? 1 : 0;
                segments += bounded.Segments.Count;
                dropped += PanopticKeptCount(output, options) - bounded.Segments.Count;
            }
        }

        Assert.True(casesSkipping >= CrowdedSeedCount, $"only {casesSkipping} of {2 * CrowdedSeedCount} cases left tiles uncomputed");
        Assert.True(segments >= CrowdedSeedCount / 2 && dropped >= 8 * CrowdedSeedCount, $"{segments} segments kept and {dropped} kept queries without a segment");
    }

    [Fact]
    public void Run_TwoStuffQueriesOfOneClass_MergeIntoOneSegment()
    {
        // Query 0 covers the left half and query 1 the right, both the stuff class 0; query 1 is surer.
        var plan = new ResizePlan(8, 8, 8, 8, 8, 8);
        using var output = Output(plan, [[10f, 0f, 0f], [12f, 0f, 0f]], [[8f, -8f, 8f, -8f], [-8f, 8f, -8f, 8f]]);

        using var result = PanopticInference.Run(output, plan, Labels(false, true), isMask2Former: false, PostprocessOptions.Detectron2);

        AssertSegments([new PanopticSegment(1, 0, false, Probability(10f, 0f, 0f), 64, new PixelBox(0, 0, 8, 8))], result.Segments);
        Assert.All(result.SegmentIds.Values.ToArray(), id => Assert.Equal(1, id));
    }

    [Fact]
    public void Run_TwoThingQueriesOfOneClass_StaySeparateSegments()
    {
        var plan = new ResizePlan(8, 8, 8, 8, 8, 8);
        using var output = Output(plan, [[0f, 10f, 0f], [0f, 12f, 0f]], [[8f, -8f, 8f, -8f], [-8f, 8f, -8f, 8f]]);

        using var result = PanopticInference.Run(output, plan, Labels(false, true), isMask2Former: false, PostprocessOptions.Detectron2);

        AssertSegments(
            [new PanopticSegment(1, 1, true, Probability(0f, 10f, 0f), 32, new PixelBox(0, 0, 4, 8)), new PanopticSegment(2, 1, true, Probability(0f, 12f, 0f), 32, new PixelBox(4, 0, 4, 8))],
            result.Segments);
        Assert.Equal([1, 1, 1, 1, 2, 2, 2, 2], result.SegmentIds.Row(5).ToArray().Select(v => (int)v));
    }

    [Theory]
    [InlineData(false)]
    [InlineData(true)]
    public void Run_ThingWinsTooLittleOfItsMask_IsDroppedAndLeavesVoid(bool isMask2Former)
    {
        // Query 0 (surer) is in on the left half; query 1 is in everywhere but wins only the right half,
        // 32 of its 64 mask pixels: 0.5 < 0.8, so it goes and the right half is void.
        var plan = new ResizePlan(8, 8, 8, 8, 8, 8);
        using var output = Output(plan, [[0f, 10f, 0f], [0f, 6f, 0f]], [[8f, -8f, 8f, -8f], [1f, 1f, 1f, 1f]]);

        using var result = PanopticInference.Run(output, plan, Labels(true, true), isMask2Former, PostprocessOptions.Detectron2);

        AssertSegments([new PanopticSegment(1, 1, true, Probability(0f, 10f, 0f), 32, new PixelBox(0, 0, 4, 8))], result.Segments);
        Assert.Equal([1, 1, 1, 1, 0, 0, 0, 0], result.SegmentIds.Row(0).ToArray().Select(v => (int)v));
    }

    [Fact]
    public void Run_ThingWinsEnoughOfItsMaskAtLowerOverlapThreshold_IsKept()
    {
        var plan = new ResizePlan(8, 8, 8, 8, 8, 8);
        using var output = Output(plan, [[0f, 10f, 0f], [0f, 6f, 0f]], [[8f, -8f, 8f, -8f], [1f, 1f, 1f, 1f]]);

        using var result = PanopticInference.Run(output, plan, Labels(true, true), isMask2Former: false, PostprocessOptions.Detectron2 with { OverlapThreshold = 0.4f });

        AssertSegments(
            [new PanopticSegment(1, 1, true, Probability(0f, 10f, 0f), 32, new PixelBox(0, 0, 4, 8)), new PanopticSegment(2, 1, true, Probability(0f, 6f, 0f), 32, new PixelBox(4, 0, 4, 8))],
            result.Segments);
    }

    [Fact]
    public void Run_VisibleAreaExactlyAtOverlapThreshold_IsKeptAsDetectron2Does()
    {
        // 8x20 image. Query 0 (surer) is in on columns 0-3; query 1 is in everywhere and wins columns
        // 4-19: 128 of its 160 mask pixels, a ratio of exactly 0.8. detectron2 drops a segment only when
        // mask_area / original_area < overlap_threshold (Python floats: 0.8 < 0.8 is false), so it stays.
        var plan = new ResizePlan(8, 20, 8, 20, 8, 20);
        float[] columnsZeroToThree = [8f, -8f, -8f, -8f, -8f, 8f, -8f, -8f, -8f, -8f];
        using var output = Output(plan, [[0f, 10f, 0f], [0f, 6f, 0f]], [columnsZeroToThree, [.. Enumerable.Repeat(1f, 10)]]);

        using var result = PanopticInference.Run(output, plan, Labels(true, true), isMask2Former: false, PostprocessOptions.Detectron2);

        AssertSegments(
            [new PanopticSegment(1, 1, true, Probability(0f, 10f, 0f), 32, new PixelBox(0, 0, 4, 8)), new PanopticSegment(2, 1, true, Probability(0f, 6f, 0f), 128, new PixelBox(4, 0, 16, 8))],
            result.Segments);
    }

    [Fact]
    public void Run_Mask2FormerPixelsBelowHalf_AreVoid()
    {
        // One query wins every pixel but is in (sigmoid >= 0.5) only on the left half. MaskFormer paints
        // all it wins; Mask2Former only what is also inside its mask.
        var plan = new ResizePlan(8, 8, 8, 8, 8, 8);
        using var output = Output(plan, [[0f, 10f, 0f]], [[8f, -8f, 8f, -8f]]);

        using var maskFormer = PanopticInference.Run(output, plan, Labels(true, true), isMask2Former: false, PostprocessOptions.Detectron2);
        using var mask2Former = PanopticInference.Run(output, plan, Labels(true, true), isMask2Former: true, PostprocessOptions.Detectron2);

        Assert.Equal(64, Assert.Single(maskFormer.Segments).Area);
        Assert.Equal(new PixelBox(0, 0, 4, 8), Assert.Single(mask2Former.Segments).Box);
        Assert.Equal(32, mask2Former.Segments[0].Area);
        Assert.Equal([1, 1, 1, 1, 0, 0, 0, 0], mask2Former.SegmentIds.Row(7).ToArray().Select(v => (int)v));
    }

    [Fact]
    public void Run_Mask2FormerQueryWinningOnlyOutsideItsMask_IsDroppedWithoutTakingAnId()
    {
        // Query 0 is in on the left half, where query 1 beats it, and wins the right half only where
        // both are out. MaskFormer keeps it as segment 1 (the right half); Mask2Former's
        // mask.sum() > 0 check drops it, so query 1 becomes segment 1 and the right half is void.
        var plan = new ResizePlan(8, 8, 8, 8, 8, 8);
        using var output = Output(plan, [[0f, 10f, 0f], [10f, 0f, 0f]], [[4f, -4f, 4f, -4f], [8f, -8f, 8f, -8f]]);

        using var maskFormer = PanopticInference.Run(output, plan, Labels(true, true), isMask2Former: false, PostprocessOptions.Detectron2);
        using var mask2Former = PanopticInference.Run(output, plan, Labels(true, true), isMask2Former: true, PostprocessOptions.Detectron2);

        Assert.Equal([(1, 1), (2, 0)], maskFormer.Segments.Select(s => (s.Id, s.CategoryId)));
        Assert.Equal(new PixelBox(4, 0, 4, 8), maskFormer.Segments[0].Box);
        Assert.Equal([(1, 0)], mask2Former.Segments.Select(s => (s.Id, s.CategoryId)));
        Assert.Equal([1, 1, 1, 1, 0, 0, 0, 0], mask2Former.SegmentIds.Row(2).ToArray().Select(v => (int)v));
    }

    [Fact]
    public void Run_TwoQueriesTiedEverywhere_FirstWinsAsTorchArgmax()
    {
        // Same score and same mask: cur_prob_masks.argmax(0) picks the first kept query at every pixel.
        var plan = new ResizePlan(8, 8, 8, 8, 8, 8);
        using var output = Output(plan, [[0f, 10f, 0f], [10f, 0f, 0f]], [[3f, 3f, 3f, 3f], [3f, 3f, 3f, 3f]]);

        using var result = PanopticInference.Run(output, plan, Labels(true, true), isMask2Former: false, PostprocessOptions.Detectron2);

        Assert.Equal([(1, 1, 64L)], result.Segments.Select(s => (s.Id, s.CategoryId, s.Area)));
    }

    [Theory]
    [InlineData(false)]
    [InlineData(true)]
    public void Run_EqualProductsOfDifferentScores_FirstQueryWinsAsTorchArgmax(bool isMask2Former)
    {
        // 0.5 · sigmoid(30) and 1.0 · sigmoid(0) are both exactly 0.5 in float32: the first query wins
        // every pixel though the second, with the higher score, is computed first.
        var plan = new ResizePlan(8, 8, 8, 8, 8, 8);
        using var output = Output(plan, [[0f, -100f, 0f], [0f, 100f, 0f]], [[30f, 30f, 30f, 30f], [0f, 0f, 0f, 0f]]);
        var options = PostprocessOptions.Detectron2 with { ObjectMaskThreshold = 0.4f };

        using var result = PanopticInference.Run(output, plan, Labels(true, true), isMask2Former, options);

        Assert.Equal([(1, 0, 64L, 0.5f)], result.Segments.Select(s => (s.Id, s.CategoryId, s.Area, s.Score)));
        Assert.All(result.SegmentIds.Values.ToArray(), id => Assert.Equal(1, id));
    }

    [Fact]
    public void Run_Mask2FormerSigmoidExactlyHalf_CountsAsInsideTheMask()
    {
        // Logit 0 gives sigmoid 0.5 exactly; the reference's test is cur_masks[k] >= 0.5.
        var plan = new ResizePlan(8, 8, 8, 8, 8, 8);
        using var output = Output(plan, [[0f, 10f, 0f]], [[0f, 0f, 0f, 0f]]);

        using var result = PanopticInference.Run(output, plan, Labels(true, true), isMask2Former: true, PostprocessOptions.Detectron2);

        Assert.Equal([(1, 64L)], result.Segments.Select(s => (s.Id, s.Area)));
    }

    [Fact]
    public void Run_NoQueryPassesThreshold_AllVoidAndNoSegments()
    {
        // Query 0's best is "no object"; query 1's best class scores below 0.8.
        var plan = new ResizePlan(8, 8, 8, 8, 8, 8);
        using var output = Output(plan, [[0f, 0f, 10f], [2f, 0f, 0f]], [[8f, 8f, 8f, 8f], [8f, 8f, 8f, 8f]]);

        using var result = PanopticInference.Run(output, plan, Labels(true, true), isMask2Former: false, PostprocessOptions.Detectron2);

        Assert.Empty(result.Segments);
        Assert.All(result.SegmentIds.Values.ToArray(), id => Assert.Equal(0, id));
        Assert.Equal(64, result.SegmentIds.Values.Length);
    }

    // Like the seeded realistic-width model: many confident queries over broad, overlapping masks (smooth
    // waves), so most are dropped by the overlap check, at a size with many tiles; and a few compact,
    // sharp, more confident objects that can keep theirs.
    private static ModelOutput CrowdedOutput(int seed, out ResizePlan plan, out Engine.Models.ModelLabel[] labels)
    {
        const int Queries = 12;
        const int Classes = 5;
        var random = new Random(1000 + seed);
        plan = ResizePlan.For(random.Next(48, 97), random.Next(48, 97), SemanticInferenceTests.Config(random));
        labels = PeakyModelOutput.Labels(random, Classes);
        var output = new ModelOutput(Queries, Classes + 1, plan.PaddedHeight / 4, plan.PaddedWidth / 4);
        var (height, width) = (output.MaskHeight, output.MaskWidth);
        for (var q = 0; q < Queries; q++)
        {
            var compact = q < 3;
            var classes = output.ClassLogits.Slice(q * (Classes + 1), Classes + 1);
            for (var c = 0; c < classes.Length; c++)
            {
                classes[c] = (float)((random.NextDouble() * 2) - 1);
            }

            classes[random.Next(Classes)] += 2f + (2.5f * random.NextSingle()) + (compact ? 2f : 0f);
            var plane = output.MaskLogits.Slice(q * height * width, height * width);
            var (bias, amplitude) = ((random.NextDouble() * 3) - 1, 3 + (random.NextDouble() * 3));
            var (fx, fy, px, py) = (random.NextDouble() * 0.5, random.NextDouble() * 0.5, random.NextDouble() * 6.3, random.NextDouble() * 6.3);
            var (cx, cy, radius) = (random.NextDouble() * width, random.NextDouble() * height, 2 + (random.NextDouble() * 2));
            for (var y = 0; y < height; y++)
            {
                for (var x = 0; x < width; x++)
                {
                    var distance = ((x - cx) * (x - cx)) + ((y - cy) * (y - cy));
                    plane[(y * width) + x] = compact
                        ? (float)(-30 + (60 * Math.Exp(-distance / (2 * radius * radius))))
                        : (float)(bias + (amplitude * Math.Sin((fx * x) + px) * Math.Cos((fy * y) + py)));
                }
            }
        }

        return output;
    }

    // The queries panoptic inference keeps before the overlap check: best class not "no object", above the threshold.
    private static int PanopticKeptCount(ModelOutput output, PostprocessOptions options)
    {
        var probabilities = ClassProbabilities.Softmax(output);
        var classes = output.ClassesWithNoObject;
        return Enumerable.Range(0, output.Queries).Count(q =>
        {
            var row = probabilities.AsSpan(q * classes, classes);
            var best = row.IndexOf(row.ToArray().Max());
            return best != classes - 1 && row[best] > options.ObjectMaskThreshold;
        });
    }

    private static Outcome RunRandomCase(int seed, bool isMask2Former)
    {
        var random = new Random(seed);
        var config = SemanticInferenceTests.Config(random);
        var plan = ResizePlan.For(random.Next(1, 81), random.Next(1, 81), config);
        var queries = random.Next(1, 13);
        var classes = random.Next(1, 10);
        var labels = PeakyModelOutput.Labels(random, classes);
        using var output = PeakyModelOutput.Create(random, queries, classes + 1, plan);
        float[] objectThresholds = [0.2f, 0.35f, 0.5f, 0.8f];
        double[] overlapThresholds = [0.2, 0.5, 0.8];
        var objectThreshold = objectThresholds[random.Next(objectThresholds.Length)];
        var overlapThreshold = overlapThresholds[random.Next(overlapThresholds.Length)];
        return MatchReference(output, plan, labels, isMask2Former, objectThreshold, overlapThreshold, $"seed {seed}, plan {plan}, {queries} queries, {classes} classes");
    }

    // Runs panoptic inference and asserts that it equals the float64 reference, unless the reference
    // finds a decision too close to call in float32.
    private static Outcome MatchReference(ModelOutput output, ResizePlan plan, Engine.Models.ModelLabel[] labels, bool isMask2Former, float objectThreshold, double overlapThreshold, string description)
    {
        var options = new PostprocessOptions { ObjectMaskThreshold = objectThreshold, OverlapThreshold = (float)overlapThreshold };
        using var tiles = new MaskTiles(output, plan);
        using var result = PanopticInference.Run(tiles, labels, isMask2Former, options);
        var expected = ReferencePanoptic.Run(output, plan, [.. labels.Select(l => l.IsThing)], isMask2Former, objectThreshold, overlapThreshold);

        if (expected.Ambiguity is not null)
        {
            return new Outcome(expected.Ambiguity, 0, 0, 0, 0, 0);
        }

        var context = $"{description}, thresholds {objectThreshold}/{overlapThreshold}, {(isMask2Former ? "Mask2Former" : "MaskFormer")}";
        Assert.Equal(plan.OriginalWidth, result.SegmentIds.Width);
        Assert.Equal(plan.OriginalHeight, result.SegmentIds.Height);
        var ids = result.SegmentIds.Values;
        for (var i = 0; i < expected.SegmentIds.Length; i++)
        {
            Assert.True(expected.SegmentIds[i] == ids[i], $"pixel {i % plan.OriginalWidth},{i / plan.OriginalWidth}: expected {expected.SegmentIds[i]}, got {ids[i]} ({context})");
        }

        Assert.True(expected.Segments.Count == result.Segments.Count, $"expected {expected.Segments.Count} segments, got {result.Segments.Count} ({context})");
        for (var s = 0; s < expected.Segments.Count; s++)
        {
            var (want, got) = (expected.Segments[s], result.Segments[s]);
            Assert.Equal((want.Id, want.CategoryId, want.IsThing, want.Area), (got.Id, got.CategoryId, got.IsThing, got.Area));
            Assert.Equal(new PixelBox(want.X, want.Y, want.Width, want.Height), got.Box);
            Assert.True(Math.Abs(want.Score - got.Score) < 1e-6, $"segment {want.Id}: score {got.Score}, expected {want.Score} ({context})");
        }

        return new Outcome(null, expected.Segments.Count, expected.Segments.Count(s => s.IsThing), expected.SegmentIds.LongCount(id => id == 0), expected.DroppedByOverlap, expected.MergedStuff);
    }

    // Scores come from float32 softmax, so they are compared within 1e-6; everything else exactly.
    private static void AssertSegments(PanopticSegment[] expected, IReadOnlyList<PanopticSegment> actual)
    {
        Assert.Equal(expected.Select(s => s with { Score = 0f }), actual.Select(s => s with { Score = 0f }));
        for (var i = 0; i < expected.Length; i++)
        {
            Assert.Equal(expected[i].Score, actual[i].Score, 1e-6);
        }
    }

    private static ModelOutput Output(ResizePlan plan, float[][] classLogits, float[][] maskLogits)
    {
        var output = new ModelOutput(classLogits.Length, classLogits[0].Length, plan.PaddedHeight / 4, plan.PaddedWidth / 4);
        for (var q = 0; q < classLogits.Length; q++)
        {
            classLogits[q].CopyTo(output.ClassLogits[(q * classLogits[0].Length)..]);
            maskLogits[q].CopyTo(output.MaskLogits[(q * maskLogits[0].Length)..]);
        }

        return output;
    }

    private static Engine.Models.ModelLabel[] Labels(bool firstIsThing, bool secondIsThing) =>
        [new(0, "first", firstIsThing), new(1, "second", secondIsThing)];

    private static float Probability(params float[] logits) => (float)ReferenceMath.Softmax(logits)[Array.IndexOf(logits, logits.Max())];

    private sealed record Outcome(string? Ambiguity, int Segments, int Things, long VoidPixels, int DroppedByOverlap, int MergedStuff);
}
