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
    public void Compute_ShorterDestination_Throws()
    {
        Assert.Throws<ArgumentOutOfRangeException>(() => LibrarySigmoid.Compute(new float[20], new float[19]));
    }
}
