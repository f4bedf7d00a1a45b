using MaskFormer.Engine.Postprocessing;
using Xunit.Abstractions;

namespace MaskFormer.Engine.Tests.Postprocessing;

/// <summary>
/// The float32 sigmoid that instance scores sum, against 1 / (1 + exp(-x)) in float64: within its
/// stated error for every float32 in ±100 (and at the extremes), the same from its vector and scalar paths.
/// </summary>
public sealed class SumSigmoidTests(ITestOutputHelper output)
{
    [Fact]
    public void Compute_EveryFloatWithin100_WithinMaxErrorOfTheExactSigmoid()
    {
        // Every float32 from -100 to 100, walked by bit pattern in chunks (about 2.2 billion values
        // would take minutes; every 61st pattern keeps each binade densely covered).
        const int Step = 61;
        var values = new float[1 << 16];
        var sigmoids = new float[values.Length];
        var (worst, worstAt, checkedCount) = (0.0, 0f, 0L);
        foreach (var (from, to) in new[] { (0f, 100f), (-100f, -0f) })
        {
            var (lo, hi) = (BitConverter.SingleToInt32Bits(Math.Abs(from) < Math.Abs(to) ? from : to), BitConverter.SingleToInt32Bits(Math.Abs(from) < Math.Abs(to) ? to : from));
            for (long bits = lo; bits <= hi;)
            {
                var count = 0;
                for (; count < values.Length && bits <= hi; count++, bits += Step)
                {
                    values[count] = BitConverter.Int32BitsToSingle((int)bits);
                }

                SumSigmoid.Compute(values.AsSpan(0, count), sigmoids.AsSpan(0, count));
                for (var i = 0; i < count; i++)
                {
                    var error = Math.Abs(sigmoids[i] - Exact(values[i]));
                    if (error > worst)
                    {
                        (worst, worstAt) = (error, values[i]);
                    }
                }

                checkedCount += count;
            }
        }

        output.WriteLine($"{checkedCount} values, largest error {worst:E3} at {worstAt:R}");
        Assert.True(checkedCount > 10_000_000, $"only {checkedCount} values checked");
        Assert.True(worst <= SumSigmoid.MaxError, $"error {worst:E3} at {worstAt:R}");
    }

    [Theory]
    [InlineData(float.MaxValue)]
    [InlineData(-float.MaxValue)]
    [InlineData(1e30f)]
    [InlineData(-1e30f)]
    [InlineData(87.5f)]
    [InlineData(-87.5f)]
    [InlineData(88.7f)]
    [InlineData(-88.7f)]
    [InlineData(0f)]
    [InlineData(1e-30f)]
    public void Compute_Extremes_WithinMaxErrorAndNeverNaN(float x)
    {
        var sigmoids = new float[9];
        SumSigmoid.Compute(Enumerable.Repeat(x, 9).ToArray(), sigmoids);
        Assert.All(sigmoids, s => Assert.True(Math.Abs(s - Exact(x)) <= SumSigmoid.MaxError, $"sigmoid({x:R}) = {s:R}, exact {Exact(x):R}"));
    }

    // A subnormal result costs Intel cores a hundred times a normal one; none is needed within MaxError.
    [Theory]
    [InlineData(-87.4f)]
    [InlineData(-88f)]
    [InlineData(-100f)]
    [InlineData(-float.MaxValue)]
    public void Compute_VeryNegative_NeverSubnormal(float x)
    {
        var sigmoids = new float[17];
        SumSigmoid.Compute(Enumerable.Repeat(x, 17).ToArray(), sigmoids);
        Assert.All(sigmoids, s => Assert.True(float.IsNormal(s) || s == 0f, $"sigmoid({x:R}) = {s:R} is subnormal"));
        Assert.True(float.IsNormal(SumSigmoid.Scalar(x)) || SumSigmoid.Scalar(x) == 0f, $"scalar sigmoid({x:R}) = {SumSigmoid.Scalar(x):R} is subnormal");
    }

    [Fact]
    public void Compute_VectorAndScalarLanes_AgreeBitForBit()
    {
        var random = new Random(7);
        var values = Enumerable.Range(0, 4099).Select(_ => (float)((random.NextDouble() - 0.5) * 60)).ToArray();
        var sigmoids = new float[values.Length];
        SumSigmoid.Compute(values, sigmoids);
        for (var i = 0; i < values.Length; i++)
        {
            Assert.Equal(BitConverter.SingleToInt32Bits(SumSigmoid.Scalar(values[i])), BitConverter.SingleToInt32Bits(sigmoids[i]));
        }
    }

    [Fact]
    public void Compute_SameSpanInAndOut_SameAsSeparate()
    {
        var values = Enumerable.Range(0, 37).Select(i => (i - 18) * 0.7f).ToArray();
        var separate = new float[values.Length];
        SumSigmoid.Compute(values, separate);
        SumSigmoid.Compute(values, values);
        Assert.Equal(separate, values);
    }

    private static double Exact(float x) => 1.0 / (1.0 + Math.Exp(-(double)x));
}
