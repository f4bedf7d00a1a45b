using MaskFormer.Cli.Commands;

namespace MaskFormer.Cli.Tests.Commands;

public sealed class FramePacerTests
{
    [Fact]
    public void DelayBefore_OnSchedule_WaitsUntilTheFramesTime()
    {
        var pacer = new FramePacer(8, TimeProvider.System);

        Assert.Equal(TimeSpan.Zero, pacer.DelayBefore(0, TimeSpan.Zero));
        Assert.Equal(TimeSpan.FromMilliseconds(125), pacer.DelayBefore(1, TimeSpan.Zero));
        Assert.Equal(TimeSpan.FromMilliseconds(25), pacer.DelayBefore(2, TimeSpan.FromMilliseconds(225)));
    }

    [Fact]
    public void DelayBefore_BehindSchedule_SendsAtOnceWithoutShiftingLaterFrames()
    {
        var pacer = new FramePacer(10, TimeProvider.System);

        Assert.Equal(TimeSpan.Zero, pacer.DelayBefore(3, TimeSpan.FromMilliseconds(450)));
        Assert.Equal(TimeSpan.FromMilliseconds(50), pacer.DelayBefore(5, TimeSpan.FromMilliseconds(450)));
    }

    [Fact]
    public void Constructor_ZeroRate_IsAUsageError()
    {
        Assert.Throws<UsageException>(() => new FramePacer(0, TimeProvider.System));
    }
}
