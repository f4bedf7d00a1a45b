using MaskFormer.Engine.Encoding;
using MaskFormer.Engine.Postprocessing;

namespace MaskFormer.Engine.Tests.Encoding;

public sealed class LabelAreasTests
{
    [Theory]
    [InlineData(1, 1, 0)]
    [InlineData(333, 41, 1)]
    [InlineData(64, 64, 2)]
    public void Count_RunsNoiseAndIdsPastTheEnd_SameAsCountingEveryPixel(int width, int height, int seed)
    {
        var random = new Random(seed);
        using var map = new LabelMap(width, height);
        for (var y = 0; y < height; y++)
        {
            for (var x = 0; x < width; x++)
            {
                map.Row(y)[x] = y % 7 == 3 ? (ushort)random.Next(12) : (ushort)(((x / 50) + (y / 10)) % 10);
            }
        }

        var expected = new long[10];
        foreach (var id in map.Values)
        {
            if (id < expected.Length)
            {
                expected[id]++;
            }
        }

        var areas = new long[10];
        LabelAreas.Count(map, areas);

        Assert.Equal(expected, areas);
    }
}
