using System.Globalization;
using System.Numerics.Tensors;
using MaskFormer.Engine.Postprocessing;

namespace MaskFormer.Engine.Tests.Postprocessing.Dense;

/// <summary>
/// The instance pass's row scan (<c>TiledMask.Scan</c>: runs in one vector loop, sigmoid sum in another)
/// against a plain loop: the same runs, the same sum (bit for bit on long rows of real sigmoids), on odd lengths, runs that start and
/// stop inside blocks of eight, and extreme logits (±0, subnormals, ±3e38, infinities, NaN).
/// </summary>
public sealed class TiledMaskScanTests
{
    [Fact]
    public void Scan_OddLengthsAndExtremes_EqualsPlainLoop()
    {
        var random = new Random(3);
        float[] specials = [0f, -0f, float.Epsilon, -float.Epsilon, 1e30f, -1e30f, float.MaxValue, float.MinValue, 3f, -3f, 100f, float.NaN, float.PositiveInfinity, float.NegativeInfinity];
        for (var trial = 0; trial < 3_000; trial++)
        {
            var length = random.Next(0, 70);
            var x0 = random.Next(0, 5);
            var values = new float[length];
            var style = random.Next(3);
            for (var i = 0; i < length; i++)
            {
                values[i] = style switch
                {
                    // Long inside and outside stretches.
                    0 => (i / 9 % 2 == 0 ? 1 : -1) * (float)(random.NextDouble() * 10),
                    // Runs that stop and start inside blocks of eight.
                    1 => random.Next(3) == 0 ? -(float)random.NextDouble() : (float)random.NextDouble() * 4,
                    _ => specials[random.Next(specials.Length)],
                };
            }

            var sigmoids = new float[length];
            if (length > 0)
            {
                TensorPrimitives.Sigmoid(values, sigmoids);
            }

            var (wantRuns, wantSum, start) = (new List<int>(), 0.0, -1);
            for (var i = 0; i <= length; i++)
            {
                if (i < length && values[i] > 0f)
                {
                    wantSum += sigmoids[i];
                    start = start >= 0 ? start : x0 + i;
                }
                else if (start >= 0)
                {
                    wantRuns.AddRange([start, x0 + i]);
                    start = -1;
                }
            }

            using var builder = new MaskRunsBuilder(0, 1);
            var sum = TiledMask.Scan(values, sigmoids, x0, builder);
            builder.EndRow(0);
            using var runs = builder.Build(x0 + length, 1);
            var context = $"trial {trial}: [{string.Join(", ", values.Select(v => v.ToString("R", CultureInfo.InvariantCulture)))}]";
            Assert.True(wantRuns.SequenceEqual(runs.Row(0).ToArray()), $"runs {string.Join(",", runs.Row(0).ToArray())}, expected {string.Join(",", wantRuns)} ({context})");
            Assert.True(Math.Abs(sum - wantSum) <= 1e-12 * Math.Max(1, wantSum), $"sum {sum:R}, expected {wantSum:R} ({context})");
            Assert.Equal(builder.Area, wantRuns.Chunk(2).Sum(r => (long)(r[1] - r[0])));
        }
    }

    [Fact]
    public void Scan_LongRows_SumEqualsSequentialLoopBitForBit()
    {
        // The vector sum regroups the adds; it must still give the plain loop's double exactly.
        var random = new Random(5);
        for (var trial = 0; trial < 200; trial++)
        {
            var length = random.Next(1, 4000);
            var values = new float[length];
            var scale = random.Next(3) switch { 0 => 0.01, 1 => 4, _ => 40 };
            for (var i = 0; i < length; i++)
            {
                values[i] = (float)((random.NextDouble() - 0.3) * scale);
            }

            var sigmoids = new float[length];
            TensorPrimitives.Sigmoid(values, sigmoids);
            var want = 0.0;
            for (var i = 0; i < length; i++)
            {
                if (values[i] > 0f)
                {
                    want += sigmoids[i];
                }
            }

            using var builder = new MaskRunsBuilder(0, 1);
            var sum = TiledMask.Scan(values, sigmoids, 0, builder);
            Assert.True(BitConverter.DoubleToInt64Bits(want) == BitConverter.DoubleToInt64Bits(sum), $"trial {trial}: sum {sum:R}, expected {want:R}");
        }
    }

    [Fact]
    public void Sigmoid_OfAnyLogitAboveZero_IsAtLeastAQuarter()
    {
        // What makes the float64 sigmoid sums exact in any order (TiledMask.SigmoidSum): every
        // summand is a float32 of at least 0.25. Every 997th positive float, and the smallest ones.
        var values = new List<float>();
        for (var bits = 1L; bits < 0x7F80_0000L; bits += 997)
        {
            values.Add(BitConverter.Int32BitsToSingle((int)bits));
        }

        values.AddRange([float.Epsilon, 1e-30f, 1e-7f, 5.9604645e-8f, float.MaxValue, float.PositiveInfinity]);
        var sigmoids = new float[values.Count];
        TensorPrimitives.Sigmoid(values.ToArray(), sigmoids);
        for (var i = 0; i < sigmoids.Length; i++)
        {
            Assert.True(sigmoids[i] >= 0.25f && sigmoids[i] <= 1f, $"sigmoid({values[i]:R}) = {sigmoids[i]:R}");
        }
    }
}
