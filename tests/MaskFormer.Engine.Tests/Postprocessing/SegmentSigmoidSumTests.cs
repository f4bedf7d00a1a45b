using MaskFormer.Engine.Postprocessing;
using Xunit.Abstractions;

namespace MaskFormer.Engine.Tests.Postprocessing;

/// <summary>
/// The series that sums a segment's sigmoids from its two grid values, against every pixel's exact
/// sigmoid in float64: within 3e-7 a pixel where it takes the segment, the segment handed back exactly
/// where its step is too large, lanes and scalar alike, and unmarked segments left out.
/// </summary>
public sealed class SegmentSigmoidSumTests(ITestOutputHelper output)
{
    // The series' remainder (≤ 9.8e-8), SumSigmoid's error at the centre (≤ 2e-7) and float32 rounding.
    private const double PixelTolerance = 3.5e-7;

    public static TheoryData<int, int, int> Axes => new()
    {
        // (mask, padded, resized) → original: the realistic-width model at 1920 wide, the tiny model, odd sizes.
        { 128, 512, 1920 },
        { 32, 128, 512 },
        { 32, 128, 1920 },
        { 12, 48, 333 },
        { 7, 28, 98 },
    };

    [Theory]
    [MemberData(nameof(Axes))]
    public void Sum_RandomSteps_WithinToleranceOfEveryPixelOrHandedBack(int mask, int padded, int original)
    {
        var axis = new ComposedAxis(mask, padded, padded, original);
        var segments = axis.Segments!;
        var random = new Random(original + mask);
        var (worst, summedCount, failedCount) = (0.0, 0, 0);
        for (var trial = 0; trial < 40; trial++)
        {
            // Steps from flat to far past the series' reach, and centres from 0 to deep inside.
            var grid = Grid(random, segments.Count, maxStep: new[] { 0.05, 0.5, 2.0, 6.0 }[trial % 4], start: random.NextDouble() * 12);
            for (var r = 0; r < segments.Count; r++)
            {
                var (sum, failed) = SumOne(segments, grid, r);
                var exact = ExactSum(axis, segments, grid, r);
                var reach = Math.Abs((double)grid[r + 1] - grid[r]) * segments.Reach[r];

                // The float32 test and the float64 reach may differ within rounding: only clear cases are held to it.
                if (Math.Abs(reach - SegmentSigmoidSum.MaximumReach) > 1e-5)
                {
                    Assert.True(failed == reach > SegmentSigmoidSum.MaximumReach, $"segment {r}: reach {reach}, handed back {failed}");
                }

                if (failed)
                {
                    failedCount++;
                    continue;
                }

                summedCount++;
                var error = Math.Abs(sum - exact) / Math.Max(1, segments.Pixels[r]);
                worst = Math.Max(worst, error);
                Assert.True(error <= PixelTolerance, $"segment {r} of {segments.Count} ({segments.Pixels[r]} pixels, grid {grid[r]:R} → {grid[r + 1]:R}): sum {sum:R}, exact {exact:R}");
            }
        }

        output.WriteLine($"{summedCount} segments summed, {failedCount} handed back, largest error a pixel {worst:E2}");
        Assert.True(summedCount > 500 && failedCount > 100, $"{summedCount} summed, {failedCount} handed back: both paths must be exercised");
    }

    [Theory]
    [MemberData(nameof(Axes))]
    public void Sum_MarkedSegments_EqualsTheScalarLanesBitForBit(int mask, int padded, int original)
    {
        var axis = new ComposedAxis(mask, padded, padded, original);
        var segments = axis.Segments!;
        var random = new Random(mask * original);
        for (var trial = 0; trial < 20; trial++)
        {
            // Every logit above 0, as inside tiles have: each segment's sum is then a float32 of at least
            // 0.25, so the float64 totals are exact in any order and must agree to the last bit.
            var grid = Grid(random, segments.Count, maxStep: 0.4, start: 0.5 + (random.NextDouble() * 3), floor: 0.01);
            var first = random.Next(segments.Count);
            var count = random.Next(1, segments.Count - first + 1);
            var marks = new int[segments.Stride];
            var expected = 0.0;
            var expectedFailures = new List<int>();
            for (var i = 0; i < count; i++)
            {
                if (random.Next(3) == 0)
                {
                    continue;
                }

                marks[i] = -1;
                var lanes = new SegmentSigmoidSum.Lanes(segments, first);
                var (sum, summed) = SegmentSigmoidSum.Scalar(grid[first + i], grid[first + i + 1], lanes, (nuint)i);
                if (summed)
                {
                    expected += sum;
                }
                else
                {
                    expectedFailures.Add(first + i);
                }
            }

            var failed = new int[segments.Count];
            var total = SegmentSigmoidSum.Sum(segments, grid.AsSpan(first), marks, first, count, failed, out var failedCount);
            Assert.Equal(expected, total);
            Assert.Equal(expectedFailures, failed.Take(failedCount));
        }
    }

    // A subnormal reach would make every lane's product with it subnormal: a hundred times slower on Intel cores.
    [Theory]
    [MemberData(nameof(Axes))]
    public void For_UpsamplingAxis_ReachAndMomentsNeverSubnormal(int mask, int padded, int original)
    {
        var segments = new ComposedAxis(mask, padded, padded, original).Segments!;
        Assert.All(segments.Reach, reach => Assert.True(reach == 0f || float.IsNormal(reach), $"reach {reach:R}"));
        Assert.All(segments.Moments, moment => Assert.True(moment == 0f || float.IsNormal(moment), $"moment {moment:R}"));
        Assert.Contains(segments.Reach.AsSpan(0, segments.Count).ToArray(), reach => reach == 0f);
    }

    [Fact]
    public void For_AxisThatBarelyUpsamples_HasNoSegments()
    {
        Assert.Null(new ComposedAxis(128, 512, 512, 512).Segments);
        Assert.Null(new ComposedAxis(128, 512, 512, 1280).Segments);
        Assert.Null(new ComposedAxis(128, 512, 512, 1791).Segments);
        Assert.NotNull(new ComposedAxis(128, 512, 512, 1792).Segments);
    }

    // A grid row of segments + 1 values (padded for whole vectors), a random walk from `start` with steps up to `maxStep`.
    private static float[] Grid(Random random, int count, double maxStep, double start, double floor = double.NegativeInfinity)
    {
        var grid = new float[count + 17];
        var value = start;
        for (var r = 0; r < grid.Length; r++)
        {
            grid[r] = (float)value;
            value = Math.Max(floor, value + ((random.NextDouble() * 2) - 1) * maxStep);
        }

        return grid;
    }

    private static (double Sum, bool Failed) SumOne(SegmentMoments segments, float[] grid, int r)
    {
        var marks = new int[16];
        marks[0] = -1;
        var failed = new int[1];
        var sum = SegmentSigmoidSum.Sum(segments, grid.AsSpan(r), marks, r, 1, failed, out var failedCount);
        Assert.True(failedCount == 0 || failed[0] == r);
        return (sum, failedCount == 1);
    }

    // Every pixel of segment r at its exact position between the two grid values, in float64.
    private static double ExactSum(ComposedAxis axis, SegmentMoments segments, float[] grid, int r)
    {
        var sum = 0.0;
        for (var x = segments.First[r]; x < segments.First[r] + (int)segments.Pixels[r]; x++)
        {
            var t = (double)axis.ResizedWeights[x];
            var logit = ((1 - t) * grid[r]) + (t * grid[r + 1]);
            sum += 1 / (1 + Math.Exp(-logit));
        }

        return sum;
    }
}
