using System.Numerics.Tensors;
using MaskFormer.Engine.Postprocessing;
using MaskFormer.Engine.Preprocessing;
using MaskFormer.Engine.Sessions;

namespace MaskFormer.Engine.Tests.Postprocessing.Dense;

/// <summary>
/// The upsampler's windowed vector path (<see cref="MaskUpsampler.Interpolate"/>, and
/// <see cref="MaskUpsampler.ComputePixels"/> over it) against the plain per-pixel loop of
/// <see cref="MaskUpsampler.ComputeRow"/>: bit for bit at every start column and length, on upsampling,
/// downsampling and mixed plans, with huge, tiny, signed-zero and subnormal logits; and the grid rows
/// of <see cref="MaskUpsampler.ComputeGridRow"/> and the extremes of <see cref="MaskUpsampler.FoldGridRow"/>
/// against grid columns computed one by one.
/// </summary>
public sealed class MaskUpsamplerTests
{
    // Seeds past 1000 draw plans whose masks are 16 to 80 columns wide, where the 512-bit windows and
    // blends have room to run (TiledCases' masks are at most 12 wide).
    public static TheoryData<int> Seeds => [.. TiledCases.Seeds, .. Enumerable.Range(1001, 16)];

    [Theory]
    [MemberData(nameof(Seeds))]
    public void Interpolate_AnyStartAndLength_EqualsComputeRowBitForBit(int seed)
    {
        var random = new Random(seed);
        var plan = Plan(random, seed);
        using var output = Extremes(random, plan);
        var upsampler = new MaskUpsampler(output, plan);
        var width = upsampler.Width;
        var (row, values, scratch, blend) = (new float[width], new float[width], new float[upsampler.ScratchLength], new float[upsampler.ScratchLength]);
        for (var q = 0; q < output.Queries; q++)
        {
            for (var y = 0; y < upsampler.Height; y += 1 + random.Next(3))
            {
                upsampler.ComputeRow(q, y, row, scratch);
                var blended = upsampler.BlendRow(q, y, blend);
                for (var trial = 0; trial < 8; trial++)
                {
                    var x0 = random.Next(width);
                    var length = random.Next(width - x0 + 1);
                    upsampler.Interpolate(blended, x0, values.AsSpan(0, length));
                    AssertBits(row.AsSpan(x0, length), values.AsSpan(0, length), $"seed {seed}, plan {plan}, query {q}, row {y}, columns {x0}+{length}");
                }

                upsampler.Interpolate(blended, 0, values);
                AssertBits(row, values, $"seed {seed}, plan {plan}, query {q}, row {y}, whole row");

                // Scattered columns with runs of every length, as the panoptic and semantic passes gather them.
                var xs = Enumerable.Range(0, width).Where(_ => random.Next(4) != 0).ToArray();
                upsampler.ComputePixels(q, y, xs, values, scratch);
                AssertBits([.. xs.Select(x => row[x])], values.AsSpan(0, xs.Length), $"seed {seed}, plan {plan}, query {q}, row {y}, scattered");
            }
        }
    }

    [Fact]
    public void Interpolate_And_GridPoints_Refuse_Columns_Past_The_Row_Or_A_Row_Shorter_Than_The_Mask()
    {
        // Their vectors load and store unchecked: the columns and the blended row are checked once, up front.
        var random = new Random(1001);
        var plan = Plan(random, 1001);
        using var output = Extremes(random, plan);
        var upsampler = new MaskUpsampler(output, plan);
        var blended = upsampler.BlendRow(0, 0, new float[upsampler.ScratchLength]).ToArray();
        var (width, grid) = (upsampler.Width, upsampler.Columns.ResizedSize);
        Assert.Equal(output.MaskWidth, blended.Length);

        Assert.Throws<ArgumentOutOfRangeException>(() => upsampler.Interpolate(blended, 1, new float[width]));
        Assert.Throws<ArgumentOutOfRangeException>(() => upsampler.Interpolate(blended, -1, new float[8]));
        Assert.Throws<ArgumentOutOfRangeException>(() => upsampler.Interpolate(blended.AsSpan(0, blended.Length - 1), 0, new float[width]));
        Assert.Throws<ArgumentOutOfRangeException>(() => upsampler.GridPoints(blended, 1, new float[grid]));
        Assert.Throws<ArgumentOutOfRangeException>(() => upsampler.GridPoints(blended, -1, new float[8]));
        Assert.Throws<ArgumentOutOfRangeException>(() => upsampler.GridPoints(blended.AsSpan(0, blended.Length - 1), 0, new float[grid]));

        // The whole row, and the whole grid row, are taken.
        upsampler.Interpolate(blended, 0, new float[width]);
        upsampler.GridPoints(blended, 0, new float[grid]);
    }

    [Theory]
    [MemberData(nameof(Seeds))]
    public void InterpolateTwoTaps_FiniteLogits_EqualsComputeRowUpToTheSignOfZero(int seed)
    {
        var random = new Random(seed);
        var drawn = Plan(random, seed);
        var plan = drawn with { OriginalWidth = drawn.ResizedWidth };
        using var output = Extremes(random, plan);
        var upsampler = new MaskUpsampler(output, plan);
        Assert.True(upsampler.Columns.TwoTaps, $"plan {plan}");
        var width = upsampler.Width;
        var (row, values, scratch, blend) = (new float[width], new float[width], new float[upsampler.ScratchLength], new float[upsampler.ScratchLength]);
        for (var q = 0; q < output.Queries; q++)
        {
            for (var y = 0; y < upsampler.Height; y += 1 + random.Next(3))
            {
                upsampler.ComputeRow(q, y, row, scratch);
                var blended = upsampler.BlendRow(q, y, blend);
                if (!float.IsFinite(TensorPrimitives.MaxMagnitude(blended)))
                {
                    continue;
                }

                for (var trial = 0; trial < 8; trial++)
                {
                    var x0 = random.Next(width);
                    var length = random.Next(width - x0 + 1);
                    upsampler.InterpolateTwoTaps(blended, x0, values.AsSpan(0, length));
                    AssertBitsOrZeros(row.AsSpan(x0, length), values.AsSpan(0, length), $"seed {seed}, plan {plan}, query {q}, row {y}, columns {x0}+{length}");
                }
            }
        }
    }

    [Fact]
    public void TwoTaps_OnlyWhereTheSecondResizeKeepsTheGrid()
    {
        Assert.True(new ComposedAxis(128, 512, 512, 512).TwoTaps);
        Assert.True(new ComposedAxis(232, 928, 910, 910).TwoTaps);
        Assert.False(new ComposedAxis(128, 512, 512, 1920).TwoTaps);
        Assert.False(new ComposedAxis(232, 928, 910, 1920).TwoTaps);
        Assert.False(new ComposedAxis(128, 512, 512, 300).TwoTaps);
    }

    [Theory]
    [MemberData(nameof(Seeds))]
    public void FoldGridRow_AnyRows_EqualsComputeGridRowsMinAndMaxBitForBit(int seed)
    {
        var random = new Random(seed);
        var plan = Plan(random, seed);
        using var output = Extremes(random, plan);
        var upsampler = new MaskUpsampler(output, plan);
        var (gridWidth, gridHeight) = (upsampler.Columns.ResizedSize, upsampler.Rows.ResizedSize);
        var (values, wantLow, wantHigh, low, high) = (new float[gridWidth], new float[gridWidth], new float[gridWidth], new float[gridWidth], new float[gridWidth]);
        var scratch = new float[upsampler.ScratchLength];
        for (var q = 0; q < output.Queries; q++)
        {
            for (var trial = 0; trial < 6; trial++)
            {
                var first = random.Next(gridHeight);
                var last = Math.Min(gridHeight - 1, first + random.Next(6));
                for (var r = first; r <= last; r++)
                {
                    var want = GridRow(output, upsampler, q, r);
                    upsampler.ComputeGridRow(q, r, values, scratch);
                    AssertBits(want, values, $"seed {seed}, plan {plan}, query {q}, grid row {r}");
                    for (var c = 0; c < gridWidth; c++)
                    {
                        (wantLow[c], wantHigh[c]) = r == first ? (values[c], values[c]) : (MathF.Min(wantLow[c], values[c]), MathF.Max(wantHigh[c], values[c]));
                    }

                    upsampler.FoldGridRow<IeeeMin, IeeeMax>(q, r, low, high, r == first, scratch);
                }

                var context = $"seed {seed}, plan {plan}, query {q}, grid rows {first}..{last}";
                AssertBits(wantLow, low, context + ", low");
                AssertBits(wantHigh, high, context + ", high");
            }
        }
    }

    [Theory]
    [MemberData(nameof(Seeds))]
    public void BlendRow_AnyRow_EqualsTensorPrimitivesMultiplyAddBitForBit(int seed)
    {
        var random = new Random(seed);
        var plan = Plan(random, seed);
        using var output = Extremes(random, plan);
        var upsampler = new MaskUpsampler(output, plan);
        var (maskWidth, maskHeight) = (output.MaskWidth, output.MaskHeight);
        var scratch = new float[upsampler.ScratchLength];
        for (var q = 0; q < output.Queries; q++)
        {
            var plane = upsampler.Plane(q);
            for (var y = 0; y < upsampler.Height; y += 1 + random.Next(3))
            {
                // The row as the upsampler first wrote it: cleared, then each tap with a weight added by MultiplyAdd.
                var want = new float[maskWidth];
                for (var k = y * ComposedAxis.Taps; k < (y + 1) * ComposedAxis.Taps; k++)
                {
                    if (upsampler.Rows.Weights[k] != 0f)
                    {
                        TensorPrimitives.MultiplyAdd(plane.Slice(upsampler.Rows.Indices[k] * maskWidth, maskWidth), upsampler.Rows.Weights[k], want, want);
                    }
                }

                AssertBits(want, upsampler.BlendRow(q, y, scratch), $"seed {seed}, plan {plan}, query {q}, row {y} of {maskHeight} mask rows");
            }
        }
    }

    [Theory]
    [InlineData(false)]
    [InlineData(true)]
    public void WindowStarts_Upsampling_HoldEveryTapOfTheirOutputs(bool wide)
    {
        var axis = new ComposedAxis(232, 928, 910, 1920);
        var (starts, length) = wide ? (axis.WideWindowStarts, ComposedAxis.WideWindowLength) : (axis.WindowStarts, ComposedAxis.WindowLength);
        var covered = 0;
        for (var x = 0; x < axis.OutputSize; x++)
        {
            var start = starts[x];
            if (start < 0)
            {
                Assert.True(x + length > axis.OutputSize, $"column {x} has no window");
                continue;
            }

            covered++;
            for (var i = x * ComposedAxis.Taps; i < (x + length) * ComposedAxis.Taps; i++)
            {
                Assert.InRange(axis.Indices[i], start, start + length - 1);
            }
        }

        Assert.Equal(axis.OutputSize - length + 1, covered);
    }

    // Grid row r the plain way: the two mask rows blended as the upsampler does, then each grid column
    // from its two mask columns one by one.
    private static float[] GridRow(ModelOutput output, MaskUpsampler upsampler, int query, int r)
    {
        var (maskWidth, maskHeight) = (output.MaskWidth, output.MaskHeight);
        var plane = upsampler.Plane(query);
        var (lower, weight) = (upsampler.Rows.GridLower[r], upsampler.Rows.GridWeights[r]);
        var upper = Math.Min(lower + 1, maskHeight - 1);
        var blended = new float[maskWidth];
        TensorPrimitives.Multiply(plane.Slice(lower * maskWidth, maskWidth), 1f - weight, blended);
        TensorPrimitives.MultiplyAdd(plane.Slice(upper * maskWidth, maskWidth), weight, blended, blended);
        var row = new float[upsampler.Columns.ResizedSize];
        for (var c = 0; c < row.Length; c++)
        {
            var (left, w) = (upsampler.Columns.GridLower[c], upsampler.Columns.GridWeights[c]);
            row[c] = ((1f - w) * blended[left]) + (w * blended[Math.Min(left + 1, maskWidth - 1)]);
        }

        return row;
    }

    private static void AssertBits(ReadOnlySpan<float> want, ReadOnlySpan<float> got, string context)
    {
        Assert.Equal(want.Length, got.Length);
        for (var i = 0; i < want.Length; i++)
        {
            if (BitConverter.SingleToInt32Bits(want[i]) != BitConverter.SingleToInt32Bits(got[i]))
            {
                Assert.Fail($"value {i}: {got[i]:R}, expected {want[i]:R} ({context})");
            }
        }
    }

    private static void AssertBitsOrZeros(ReadOnlySpan<float> want, ReadOnlySpan<float> got, string context)
    {
        Assert.Equal(want.Length, got.Length);
        for (var i = 0; i < want.Length; i++)
        {
            if (BitConverter.SingleToInt32Bits(want[i]) != BitConverter.SingleToInt32Bits(got[i]) && !(want[i] == 0f && got[i] == 0f))
            {
                Assert.Fail($"value {i}: {got[i]:R}, expected {want[i]:R} ({context})");
            }
        }
    }

    private static ResizePlan Plan(Random random, int seed)
    {
        if (seed <= 1000)
        {
            return TiledCases.Plan(random);
        }

        var divisor = new[] { 4, 16, 32 }[random.Next(3)];
        var (resizedHeight, resizedWidth) = (random.Next(1, 24), random.Next(61, 320));
        var paddedHeight = (resizedHeight + divisor - 1) / divisor * divisor;
        var paddedWidth = (resizedWidth + divisor - 1) / divisor * divisor;
        var originalWidth = random.Next(3) switch
        {
            0 => random.Next(1, resizedWidth + 1),
            1 => resizedWidth,
            _ => random.Next(resizedWidth, 1000),
        };

        return new ResizePlan(random.Next(1, 40), originalWidth, resizedHeight, resizedWidth, paddedHeight, paddedWidth);
    }

    private static ModelOutput Extremes(Random random, ResizePlan plan)
    {
        var output = new ModelOutput(2, 2, plan.PaddedHeight / 4, plan.PaddedWidth / 4);
        float[] specials = [0f, -0f, 1e-38f, -1e-40f, 3e38f, -3e38f, 1e30f, -87.5f, 88.7f, 1e-7f];
        var logits = output.MaskLogits;
        for (var i = 0; i < logits.Length; i++)
        {
            logits[i] = random.Next(4) == 0 ? specials[random.Next(specials.Length)] : (float)((random.NextDouble() * 40) - 20);
        }

        return output;
    }
}
