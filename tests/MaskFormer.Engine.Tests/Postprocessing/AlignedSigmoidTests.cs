using System.Numerics.Tensors;
using MaskFormer.Engine.Postprocessing;

namespace MaskFormer.Engine.Tests.Postprocessing;

/// <summary>
/// The stack-aligned library sigmoid: bit for bit TensorPrimitives.Sigmoid at every stack offset (only
/// the stack moves), and the first call settles on one of the four offsets.
/// </summary>
public sealed class AlignedSigmoidTests
{
    [Theory]
    [InlineData(0)]
    [InlineData(16)]
    [InlineData(32)]
    [InlineData(48)]
    public void Compute_AtEveryOffset_TheLibrarysSigmoidBitForBit(int offset)
    {
        var random = new Random(offset);
        foreach (var length in new[] { 1, 7, 16, 33, 1000 })
        {
            var values = Enumerable.Range(0, length).Select(_ => (float)((random.NextDouble() - 0.5) * 200)).Append(float.NaN).Append(float.PositiveInfinity).Append(float.NegativeInfinity).ToArray();
            var (want, got) = (new float[values.Length], new float[values.Length]);
            TensorPrimitives.Sigmoid(values, want);
            AlignedSigmoid.Compute(values, got, offset);
            Assert.Equal(want.Select(BitConverter.SingleToInt32Bits), got.Select(BitConverter.SingleToInt32Bits));
        }
    }

    [Fact]
    public void Compute_FirstCall_SettlesOnOneOfTheFourOffsetsAndGivesTheLibrarysSigmoid()
    {
        var values = Enumerable.Range(0, 100).Select(i => (i - 50) * 0.37f).ToArray();
        var (want, got) = (new float[values.Length], new float[values.Length]);
        TensorPrimitives.Sigmoid(values, want);
        AlignedSigmoid.Compute(values, got);
        Assert.Contains(AlignedSigmoid.Offset, new[] { 0, 16, 32, 48 });
        Assert.Equal(want, got);
    }
}
