using MaskFormer.Engine.Postprocessing;
using MaskFormer.Server.Mapping;
using Xunit;

namespace MaskFormer.Server.Tests;

public sealed class ResponseMapperTests
{
    [Fact]
    public void Masks_of_many_runs_in_all_are_encoded_side_by_side_few_are_not()
    {
        // A hundred 512x512 masks of 700 runs each (70,000 in all, as a realistic-width model's instances
        // hold several times over): side by side. Ten of them (7,000): on the caller's thread.
        var many = Enumerable.Range(0, 100).Select(_ => Striped(512, 512, runsPerRow: 7, rows: 100)).ToArray();
        try
        {
            Assert.All(many, instance => Assert.Equal(700, instance.RunCount));
            Assert.True(ResponseMapper.EncodesSideBySide(many));
            Assert.False(ResponseMapper.EncodesSideBySide(many[..10]));
            Assert.False(ResponseMapper.EncodesSideBySide([]));
        }
        finally
        {
            foreach (var instance in many)
            {
                instance.Dispose();
            }
        }
    }

    // A mask whose first `rows` rows hold `runsPerRow` runs of two set pixels each, four pixels apart.
    private static InstanceMask Striped(int width, int height, int runsPerRow, int rows)
    {
        var mask = new BinaryMask(width, height);
        for (var y = 0; y < rows; y++)
        {
            for (var r = 0; r < runsPerRow; r++)
            {
                mask.Row(y)[(4 * r) + 1] = 1;
                mask.Row(y)[(4 * r) + 2] = 1;
            }
        }

        return new InstanceMask(0, 1f, 2L * runsPerRow * rows, new PixelBox(1, 0, (4 * runsPerRow) - 2, rows), mask);
    }
}
