using MaskFormer.Engine.Postprocessing;

namespace MaskFormer.Engine.Tests.Postprocessing;

/// <summary>How many threads one image's large pass gets: the cores shared among the images being post-processed.</summary>
public sealed class RowParallelismTests
{
    [Theory]
    [InlineData(16, 1, int.MaxValue, 16)]
    [InlineData(16, 2, int.MaxValue, 8)]
    [InlineData(16, 3, int.MaxValue, 6)]
    [InlineData(16, 9, int.MaxValue, 2)]
    [InlineData(16, 16, int.MaxValue, 1)]
    [InlineData(16, 40, int.MaxValue, 1)]
    [InlineData(16, 0, int.MaxValue, 16)]
    [InlineData(16, 1, 4, 4)]
    [InlineData(16, 8, 4, 2)]
    [InlineData(16, 17, 4, 1)]
    [InlineData(16, 1, 1, 1)]
    [InlineData(2, 1, int.MaxValue, 2)]
    [InlineData(2, 2, int.MaxValue, 1)]
    [InlineData(1, 1, int.MaxValue, 1)]
    public void DegreeFor_CoresDividedAmongImagesCappedByTheSetting(int cores, int images, int maxThreads, int expected)
    {
        Assert.Equal(expected, RowParallelism.DegreeFor(cores, images, maxThreads));
    }

    [Fact]
    public void ForWork_SmallPass_OnTheCallersThreadWhateverTheLoad()
    {
        Assert.Equal(1, RowParallelism.ForWork(1000).MaxDegreeOfParallelism);
    }
}
