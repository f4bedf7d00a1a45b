using System.Numerics;
using System.Numerics.Tensors;
using System.Runtime.Intrinsics;
using MaskFormer.Engine.Postprocessing;

namespace MaskFormer.Engine.Tests.Postprocessing;

/// <summary>
/// The library's sigmoid written out: bit for bit <c>TensorPrimitives.Sigmoid</c> on every float it is
/// given, through each vector width the machine has, at every length and in place. If a runtime update
/// changes the library's arithmetic, these fail before semantic or panoptic results drift from the dense
/// computation's.
/// </summary>
public sealed class LibrarySigmoidTests
{
    // Every 251st bit pattern (17 M floats: every exponent, both signs, NaNs, infinities, subnormals),
    // plus the values where the exp's range checks switch.
    private static float[] Sample()
    {
        var values = new List<float>();
        for (var bits = 0L; bits <= uint.MaxValue; bits += 251)
        {
            values.Add(BitConverter.UInt32BitsToSingle((uint)bits));
        }

        foreach (var edge in new[] { 0f, -0f, 87f, 88.72284f, 88.72285f, 103.97208f, 103.97209f, 104f, float.Epsilon, float.MaxValue, float.MinValue, float.PositiveInfinity, float.NegativeInfinity, float.NaN })
        {
            for (var ulps = -3; ulps <= 3; ulps++)
            {
                values.Add(BitConverter.Int32BitsToSingle(BitConverter.SingleToInt32Bits(edge) + ulps));
                values.Add(-BitConverter.Int32BitsToSingle(BitConverter.SingleToInt32Bits(edge) + ulps));
            }
        }

        return [.. values];
    }

    private static void AssertLibrarys(ReadOnlySpan<float> values, ReadOnlySpan<float> got)
    {
        var want = new float[values.Length];
        TensorPrimitives.Sigmoid(values, want);
        for (var i = 0; i < values.Length; i++)
        {
            if (BitConverter.SingleToUInt32Bits(want[i]) != BitConverter.SingleToUInt32Bits(got[i]))
            {
                Assert.Fail($"sigmoid({values[i]:R}) (bits {BitConverter.SingleToUInt32Bits(values[i]):X8}): library {want[i]:R}, ours {got[i]:R}");
            }
        }
    }

    [Fact]
    public void Compute_SeventeenMillionFloats_TheLibrarysBits()
    {
        var values = Sample();
        var got = new float[values.Length];
        LibrarySigmoid.Compute(values, got);
        AssertLibrarys(values, got);
    }

    [Fact]
    public void Compute256_SeventeenMillionFloats_TheLibrarysBits()
    {
        // The path of a machine without 512-bit vectors: the same lanes' arithmetic, eight at a time.
        Assert.True(Vector256.IsHardwareAccelerated, "this test needs 256-bit vectors (every x64 CI machine has AVX2)");
        var values = Sample();
        var got = new float[values.Length];
        LibrarySigmoid.Compute256(values, got);
        AssertLibrarys(values, got);
    }

    [Theory]
    [InlineData(1)]
    [InlineData(3)]
    [InlineData(7)]
    [InlineData(8)]
    [InlineData(15)]
    [InlineData(16)]
    [InlineData(17)]
    [InlineData(31)]
    [InlineData(40)]
    [InlineData(1000)]
    public void Compute_EveryLengthInPlace_TheLibrarysBitsAndNothingOutsideTouched(int length)
    {
        var random = new Random(length);
        var values = Enumerable.Range(0, length).Select(_ => (float)((random.NextDouble() - 0.5) * 240)).ToArray();
        var buffer = new float[length + 2];
        values.CopyTo(buffer, 1);
        (buffer[0], buffer[^1]) = (-7f, 7f);
        LibrarySigmoid.Compute(buffer.AsSpan(1, length), buffer.AsSpan(1, length));
        AssertLibrarys(values, buffer.AsSpan(1, length));
        Assert.Equal((-7f, 7f), (buffer[0], buffer[^1]));
    }

    [Fact]
    public void CannotExceed_OnSeventeenMillionFloats_NeverClosesALaneTheProductExceedsAndClosesThoseWithin7Percent()
    {
        // Panoptic skips a query's exact sigmoids on eight pixels where CannotExceed closes every lane: a
        // lane closed where score · σ rounds above the best so far would change a label.
        Assert.True(Vector256.IsHardwareAccelerated, "this test needs 256-bit vectors (every x64 CI machine has AVX2)");
        var values = Sample().Where(x => MathF.Abs(x) < 1e37f).ToArray();
        var (wronglyClosed, leftOpen, tight) = (0L, 0L, 0L);
        foreach (var score in new[] { 1e-6f, 0.013f, 0.3f, 0.5f, 0.77f, 1f })
        {
            for (var i = 0; i + 8 <= values.Length; i += 8)
            {
                var x = Vector256.Create(values.AsSpan(i, 8));
                var product = Vector256.Create(score) * LibrarySigmoid.Of(x);

                // Just below the product: the lane must stay open.
                var below = Vector256.Create(Enumerable.Range(0, 8).Select(lane => MathF.BitDecrement(product[lane])).ToArray());
                wronglyClosed += BitOperations.PopCount(LibrarySigmoid.CannotExceed(x, Vector256.Create(score), below).ExtractMostSignificantBits());

                // 7 % above it, where the product is a normal float: the lane must close.
                var above = product * 1.07f;
                var closed = LibrarySigmoid.CannotExceed(x, Vector256.Create(score), above).ExtractMostSignificantBits();
                for (var lane = 0; lane < 8; lane++)
                {
                    if (score >= 1e-3f && MathF.Abs(x[lane]) <= 60f)
                    {
                        tight++;
                        leftOpen += (closed >> lane) & 1 ^ 1;
                    }
                }
            }
        }

        Assert.Equal(0, wronglyClosed);
        Assert.Equal(0, leftOpen);
        Assert.True(tight > 1_000_000, $"only {tight} lanes checked for tightness");
    }

    [Fact]
    public void CannotExceed_BestNotANumberOrMinusInfinityStaysOpen_PlusInfinityCloses()
    {
        var x = Vector256.Create(-200f, -87f, -1f, -0f, 0f, 1f, 87f, 1e30f);
        var score = Vector256.Create(0.9f);
        Assert.Equal(0u, LibrarySigmoid.CannotExceed(x, score, Vector256.Create(float.NaN)).ExtractMostSignificantBits());
        Assert.Equal(0u, LibrarySigmoid.CannotExceed(x, score, Vector256.Create(float.NegativeInfinity)).ExtractMostSignificantBits());
        Assert.Equal(0xFFu, LibrarySigmoid.CannotExceed(x, score, Vector256.Create(float.PositiveInfinity)).ExtractMostSignificantBits());

        // A best of 0 stays open wherever the product is above 0 (it is, up to x = -100 for this score).
        Assert.Equal(0u, LibrarySigmoid.CannotExceed(Vector256.Create(-100f, -87f, -1f, -0f, 0f, 1f, 87f, 1e30f), score, Vector256<float>.Zero).ExtractMostSignificantBits());
    }

    [Fact]
    public void Compute_ShorterDestination_Throws()
    {
        Assert.Throws<ArgumentOutOfRangeException>(() => LibrarySigmoid.Compute(new float[20], new float[19]));
    }
}
