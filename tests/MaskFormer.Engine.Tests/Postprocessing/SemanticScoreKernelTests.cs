using System.Numerics.Tensors;
using MaskFormer.Engine.Postprocessing;

namespace MaskFormer.Engine.Tests.Postprocessing;

/// <summary>
/// The register-blocked score kernels against the dense computation's own loop, one
/// TensorPrimitives.MultiplyAdd per query and class: every score equal bit for bit.
/// </summary>
public sealed class SemanticScoreKernelTests
{
    private const int Lanes = 8;

    public static TheoryData<int> Seeds => [.. Enumerable.Range(1, 30)];

    [Theory]
    [MemberData(nameof(Seeds))]
    public void BoundScores_RandomSigmoids_EqualsMultiplyAddPerQuery(int seed)
    {
        var random = new Random(seed);
        var (queries, classes, tiles) = (random.Next(1, 40), random.Next(1, 12), Lanes * random.Next(1, 5));
        var first = Lanes * random.Next(tiles / Lanes);
        var sigmoids = Values(random, 2 * queries * tiles);
        var probabilities = Values(random, queries * (classes + 1));
        var classList = Enumerable.Range(0, classes).Where(_ => random.Next(3) != 0).ToArray();
        var (lower, upper) = (new float[classes * tiles], new float[classes * tiles]);

        SemanticTileRow.BoundScores(sigmoids, tiles, first, queries, probabilities, classes + 1, classList, lower, upper);

        var (wantLower, wantUpper) = (new float[classes * tiles], new float[classes * tiles]);
        for (var q = 0; q < queries; q++)
        {
            foreach (var c in classList)
            {
                var low = wantLower.AsSpan((c * tiles) + first, Lanes);
                var high = wantUpper.AsSpan((c * tiles) + first, Lanes);
                var probability = probabilities[(q * (classes + 1)) + c];
                TensorPrimitives.MultiplyAdd(sigmoids.AsSpan((2 * q * tiles) + first, Lanes), probability, low, low);
                TensorPrimitives.MultiplyAdd(sigmoids.AsSpan((((2 * q) + 1) * tiles) + first, Lanes), probability, high, high);
            }
        }

        AssertBitsEqual(wantLower, lower);
        AssertBitsEqual(wantUpper, upper);
    }

    [Theory]
    [MemberData(nameof(Seeds))]
    public void BlockBounds_RandomSigmoids_EqualsMultiplyAddPerQuery(int seed)
    {
        var random = new Random(seed);
        var (queries, classes) = (random.Next(1, 40), Lanes * random.Next(1, 8));
        var (lowest, highest) = (Values(random, queries), Values(random, queries));
        var probabilities = Values(random, queries * classes);
        var (lower, upper) = (new float[classes], new float[classes]);

        SemanticTileRow.BlockBounds(lowest, highest, queries, probabilities, classes, lower, upper);

        var (wantLower, wantUpper) = (new float[classes], new float[classes]);
        for (var q = 0; q < queries; q++)
        {
            var row = probabilities.AsSpan(q * classes, classes);
            TensorPrimitives.MultiplyAdd(row, lowest[q], wantLower, wantLower);
            TensorPrimitives.MultiplyAdd(row, highest[q], wantUpper, wantUpper);
        }

        AssertBitsEqual(wantLower, lower);
        AssertBitsEqual(wantUpper, upper);
    }

    [Theory]
    [MemberData(nameof(Seeds))]
    public void ScoreClasses_RandomSigmoids_EqualsMultiplyAddPerQuery(int seed)
    {
        var random = new Random(seed);
        var (queries, classes) = (random.Next(1, 40), random.Next(1, 12));
        var stride = Lanes * random.Next(1, 4);
        var sigmas = Values(random, queries * stride);
        var probabilities = Values(random, queries * (classes + 1));
        var classList = Enumerable.Range(0, random.Next(0, 10)).Select(_ => random.Next(classes)).ToArray();
        var scores = new float[classList.Length * Lanes];

        SemanticTileRow.ScoreClasses(sigmas, stride, queries, probabilities, classes + 1, classList, scores);

        var want = new float[classList.Length * Lanes];
        for (var q = 0; q < queries; q++)
        {
            for (var i = 0; i < classList.Length; i++)
            {
                var score = want.AsSpan(i * Lanes, Lanes);
                TensorPrimitives.MultiplyAdd(sigmas.AsSpan(q * stride, Lanes), probabilities[(q * (classes + 1)) + classList[i]], score, score);
            }
        }

        AssertBitsEqual(want, scores);
    }

    // Sigmoid-like values with enough spread that a fused multiply-add would round differently, and now
    // and then a NaN, an infinity, a denormal or a signed zero.
    private static float[] Values(Random random, int length)
    {
        var values = new float[length];
        for (var i = 0; i < length; i++)
        {
            values[i] = random.Next(40) switch
            {
                0 => float.NaN,
                1 => float.PositiveInfinity,
                2 => 1e-40f,
                3 => -0f,
                _ => (float)random.NextDouble(),
            };
        }

        return values;
    }

    private static void AssertBitsEqual(float[] expected, float[] actual)
    {
        for (var i = 0; i < expected.Length; i++)
        {
            Assert.True(BitConverter.SingleToInt32Bits(expected[i]) == BitConverter.SingleToInt32Bits(actual[i]), $"score {i}: expected {expected[i]:R}, got {actual[i]:R}");
        }
    }
}
