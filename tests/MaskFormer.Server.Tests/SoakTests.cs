using MaskFormer.Benchmarks.Soak;

namespace MaskFormer.Server.Tests;

/// <summary>
/// The soak run (bench soak) scaled down: the real server process on the committed model, 4 streams x 30
/// frames and 2 unary callers for 15 s, then 8 streams that vanish mid-stream.
/// </summary>
public sealed class SoakTests
{
    [Fact]
    public async Task Soak_ScaledDown_EveryFrameAnsweredOnceOnlyDocumentedOutcomesMemoryFlatNothingLeftBehind()
    {
        var settings = SoakSettings.Quick;

        var result = await SoakRun.RunAsync(settings, CancellationToken.None);

        var report = string.Join('\n', result.Report());
        Assert.True(result.Violations.Count == 0, report);
        Assert.Equal(settings.Streams * settings.FramesPerStream, result.FramesSent);
        Assert.Equal(result.FramesSent, result.FramesAnswered);
        Assert.True(result.FrameResults > 0, report);
        Assert.True(result.UnaryOk > 0, report);
        Assert.Equal(settings.Disconnects * 16, result.DisconnectedFramesSent);
        Assert.Equal(0, result.ActiveStreamsAfter);
        Assert.Equal(0, result.QueueAfter);
        Assert.InRange(result.EndRss - result.StartRss, long.MinValue, settings.MaxGrowthMiB * 1048576L);
    }
}
