using MaskFormer.Engine.Postprocessing;

namespace MaskFormer.Engine.Tests.Postprocessing;

public sealed class TopPairsTests
{
    public static TheoryData<int> Seeds => [.. Enumerable.Range(1, 40)];

    [Theory]
    [MemberData(nameof(Seeds))]
    public void Select_RandomProbabilitiesWithTiesAndNaN_SameAsSortingEveryPair(int seed)
    {
        var random = new Random(seed);
        var (queries, classes) = (random.Next(1, 30), random.Next(1, 20));
        var probabilities = new float[queries * (classes + 1)];
        for (var i = 0; i < probabilities.Length; i++)
        {
            // Few distinct values, so ties are common; now and then a NaN or a signed zero.
            probabilities[i] = random.Next(12) switch
            {
                0 => float.NaN,
                1 => -0f,
                2 => 0f,
                _ => random.Next(8) / 8f,
            };
        }

        var k = new[] { 1, 3, 10, 100, 1000 }[random.Next(5)];
        var expected = Enumerable.Range(0, queries)
            .SelectMany(q => Enumerable.Range(0, classes).Select(c => (Query: q, Label: c, Probability: probabilities[(q * (classes + 1)) + c])))
            .OrderByDescending(p => p.Probability)
            .ThenBy(p => p.Query)
            .ThenBy(p => p.Label)
            .Take(k)
            .ToArray();

        var top = TopPairs.Select(probabilities, queries, classes, k);

        Assert.Equal(expected.Select(p => (p.Query, p.Label)), top.Select(p => (p.Query, p.Label)));
        Assert.Equal(expected.Select(p => p.Probability), top.Select(p => p.Probability));
    }
}
