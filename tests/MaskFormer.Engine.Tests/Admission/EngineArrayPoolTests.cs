namespace MaskFormer.Engine.Tests.Admission;

public sealed class EngineArrayPoolTests
{
    // double and this size are used by nothing else in the engine, so no other test takes the array meanwhile.
    private const int Length = 5_000_000;

    [Fact]
    public void ReleaseAll_ArrayReturnedBefore_IsNotHandedOutAgain()
    {
        var first = EngineArrayPool<double>.Shared.Rent(Length);
        EngineArrayPool<double>.Shared.Return(first);
        var again = EngineArrayPool<double>.Shared.Rent(Length);
        Assert.Same(first, again);
        EngineArrayPool<double>.Shared.Return(again);

        EngineArrayPool.ReleaseAll();

        var afterRelease = EngineArrayPool<double>.Shared.Rent(Length);
        Assert.NotSame(first, afterRelease);
        EngineArrayPool<double>.Shared.Return(afterRelease);
    }

    [Fact]
    public void ReleaseAll_ArrayRentedBefore_ReturnsWithoutErrorAndIsLetGo()
    {
        var rented = EngineArrayPool<double>.Shared.Rent(Length + 1);

        EngineArrayPool.ReleaseAll();
        var error = Record.Exception(() => EngineArrayPool<double>.Shared.Return(rented));

        Assert.Null(error);
        var next = EngineArrayPool<double>.Shared.Rent(Length + 1);
        Assert.NotSame(rented, next);
        Assert.True(next.Length >= Length + 1);
        EngineArrayPool<double>.Shared.Return(next);
    }
}
