using MaskFormer.Contracts.V1;
using MaskFormer.Server.Streaming;

namespace MaskFormer.Server.Tests;

/// <summary>The latency contract's frames in flight, as a stream's status reports them.</summary>
public sealed class LatencyGovernorTests
{
    // 150 ms a frame at 30 fps wants ceil(30 × 0.15 × 1.2) = 6 frames in flight; with a maximum age of
    // 100 ms every frame but the newest is skipped as too old, so one runs at a time, and the status must
    // not promise 6 / 0.15 s = 40 fps (an audit saw "sustainable 36-43 fps" beside 6.6 achieved).
    [Theory]
    [InlineData(100, 1)]
    [InlineData(1000, 6)]
    [InlineData(0, 6)]
    public void UsableInFlight_ServiceTimeOverTheMaximumAge_OneFrameAtATime(uint maxAgeMs, int expected)
    {
        var settings = new StreamSettings { MaxInFlight = 8, InFlightCap = 8, Latency = new LatencyContract { TargetFps = 30, MaxAgeMs = maxAgeMs } };
        var governor = new LatencyGovernor();
        for (var i = 0; i < 4; i++)
        {
            governor.Served(settings, 0.150);
        }

        Assert.Equal(6, governor.InFlight(settings, inputFps: 30));
        Assert.Equal(expected, governor.UsableInFlight(settings, inputFps: 30));
    }
}
