using MaskFormer.Cli;
using MaskFormer.Cli.Commands;

namespace MaskFormer.Cli.Tests.Commands;

public sealed class LatencyArgumentsTests
{
    [Fact]
    public void ToConfig_TargetFpsAndMaxAge_SentAsTheLatencyContractWithStatus()
    {
        var config = StreamCommand.ToConfig(new CommandArguments(["clip", "--target-fps", "30", "--max-age", "100ms", "--policy", "latest-only"]));

        Assert.NotNull(config.Latency);
        Assert.Equal(30f, config.Latency.TargetFps);
        Assert.Equal(100u, config.Latency.MaxAgeMs);
        Assert.False(config.Latency.AllowDownscale);
        Assert.True(config.HasStatusIntervalMs);
        Assert.InRange(config.StatusIntervalMs, 1u, 60_000u);
        Assert.Equal(Contracts.V1.OverloadPolicy.LatestOnly, config.OverloadPolicy);
    }

    [Fact]
    public void ToConfig_AllowDownscaleIsASwitch_TheInputStaysPositional()
    {
        var args = new CommandArguments(["--allow-downscale", "clip", "--max-age=0.25s"]);

        var config = StreamCommand.ToConfig(args);

        Assert.Equal(["clip"], args.Positional);
        Assert.True(config.Latency.AllowDownscale);
        Assert.Equal(250u, config.Latency.MaxAgeMs);
        Assert.Equal(0f, config.Latency.TargetFps);
    }

    [Fact]
    public void Arguments_NoOverlaysIsASwitch_TheInputStaysPositional()
    {
        var args = new CommandArguments(["--no-overlays", "clip", "--target-fps", "15"]);

        Assert.True(args.Has("no-overlays"));
        Assert.Equal(["clip"], args.Positional);
        Assert.Empty(args.Unknown(StreamCommand.Info.Options));
    }

    [Fact]
    public void ToConfig_NoContractOptions_NoContractButStatusAsked()
    {
        var config = StreamCommand.ToConfig(new CommandArguments(["clip"]));

        Assert.Null(config.Latency);
        Assert.True(config.HasStatusIntervalMs);
    }

    [Theory]
    [InlineData("100ms", 100u)]
    [InlineData("0.2s", 200u)]
    [InlineData("250", 250u)]
    [InlineData("60s", 60_000u)]
    public void ParseMilliseconds_MillisecondsSecondsOrANumber(string text, uint expected)
    {
        Assert.Equal(expected, LatencyArguments.ParseMilliseconds(text));
    }

    [Theory]
    [InlineData("--max-age", "soon")]
    [InlineData("--max-age", "61s")]
    [InlineData("--max-age", "-5ms")]
    [InlineData("--target-fps", "-1")]
    [InlineData("--target-fps", "5000")]
    public void ToConfig_BadContract_UsageErrorNamingTheOption(string option, string value)
    {
        var error = Assert.Throws<UsageException>(() => StreamCommand.ToConfig(new CommandArguments(["clip", option, value])));

        Assert.StartsWith(option, error.Message, StringComparison.Ordinal);
    }

    [Fact]
    public async Task RunAsync_StreamWithBadMaxAge_ExitsTwoNamingTheOption()
    {
        using var output = new StringWriter();
        using var error = new StringWriter();

        var code = await CliApp.RunAsync(["stream", "clip", "--max-age", "soon"], output, error, CancellationToken.None);

        Assert.Equal(2, code);
        Assert.Contains("--max-age soon", error.ToString(), StringComparison.Ordinal);
    }
}
