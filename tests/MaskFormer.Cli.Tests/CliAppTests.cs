using System.Diagnostics;
using System.Net;
using System.Net.Sockets;

namespace MaskFormer.Cli.Tests;

public sealed class CliAppTests
{
    [Theory]
    [InlineData("--help")]
    [InlineData("-h")]
    [InlineData("help")]
    public async Task RunAsync_Help_PrintsEveryCommandAndExitsZero(string flag)
    {
        var (code, output, error) = await RunAsync(flag);

        Assert.Equal(0, code);
        Assert.Empty(error);
        foreach (var command in new[] { "segment", "stream", "models", "health" })
        {
            Assert.Contains(command, output, StringComparison.Ordinal);
        }

        Assert.Contains("MASKFORMER_ADDRESS", output, StringComparison.Ordinal);
    }

    [Theory]
    [InlineData("segment", "--task")]
    [InlineData("stream", "--no-pacing")]
    [InlineData("models", "--server")]
    [InlineData("health", "--wait")]
    public async Task RunAsync_CommandHelp_PrintsItsOptionsAndExitsZero(string command, string option)
    {
        foreach (var args in new[] { new[] { command, "--help" }, [command, "-h"], ["help", command] })
        {
            var (code, output, _) = await RunAsync(args);

            Assert.Equal(0, code);
            Assert.Contains($"usage: maskformer {command}", output, StringComparison.Ordinal);
            Assert.Contains(option, output, StringComparison.Ordinal);
        }
    }

    [Theory]
    [InlineData("frobnicate")]
    [InlineData("segment")]
    [InlineData("segment", "a.png", "--ot", "dir")]
    [InlineData("segment", "a.png", "--task", "depth")]
    [InlineData("segment", "a.png", "--alpha", "abc")]
    [InlineData("health", "--wait", "soon")]
    [InlineData("health", "--server", "ftp://x:1")]
    [InlineData("models", "--server", "::bad")]
    public async Task RunAsync_Misuse_ExitsTwoWithAMessage(params string[] args)
    {
        var (code, _, error) = await RunAsync(args);

        Assert.Equal(2, code);
        Assert.StartsWith("maskformer", error, StringComparison.Ordinal);
    }

    [Theory]
    [InlineData("models")]
    [InlineData("segment")]
    [InlineData("stream")]
    [InlineData("health")]
    public async Task RunAsync_ServerWithoutAPort_ExitsTwoAtOnceSayingSo(string command) =>
        await AssertRefusedAtOnceAsync(command, "127.0.0.1", "127.0.0.1 has no port (the service listens on 5081 unless told otherwise)");

    [Theory]
    [InlineData("segment", "127.0.0.1:0", "0")]
    [InlineData("stream", "http://127.0.0.1:abc", "abc")]
    [InlineData("health", "127.0.0.1:", "")]
    public async Task RunAsync_ServerPortNotFrom1To65535_ExitsTwoAtOnceSayingSo(string command, string server, string port) =>
        await AssertRefusedAtOnceAsync(command, server, $"{server} has port \"{port}\", which is not a number from 1 to 65535");

    [Theory]
    [InlineData("segment", "http://127.0.0.1:5401/api", "has path \"/api\", which a gRPC address cannot have")]
    [InlineData("stream", "grpc://127.0.0.1:5401", "has scheme \"grpc\", which is not http or https")]
    [InlineData("health", ":5401", "has no host")]
    public async Task RunAsync_ServerWithAPathAnotherSchemeOrNoHost_ExitsTwoAtOnceSayingSo(string command, string server, string problem) =>
        await AssertRefusedAtOnceAsync(command, server, $"{server} {problem}");

    // Runs COMMAND with --server SERVER and checks it is refused as a usage error (exit 2) with the shared
    // words ending in WHY, at once: health --wait 60 would try for a minute, so a bound of 20 s tells "at
    // once" from that.
    private static async Task AssertRefusedAtOnceAsync(string command, string server, string why)
    {
        string[] args = command switch
        {
            "segment" => [command, Path.Combine(RepositoryPaths.HeldOut, "0000.png"), "--out", Path.GetTempPath(), "--server", server],
            "stream" => [command, Path.Combine(RepositoryPaths.TinyShapes, "clip"), "--server", server],
            "health" => [command, "--wait", "60", "--server", server],
            _ => [command, "--server", server],
        };
        var started = Stopwatch.GetTimestamp();

        var (code, output, error) = await RunAsync(args);

        Assert.True(code == 2, $"exit code {code}: {output} {error}");
        Assert.Equal($"maskformer {command}: --server (or MASKFORMER_ADDRESS) takes host:port or http(s)://host[:port]; {why}", error.Trim());
        Assert.True(Stopwatch.GetElapsedTime(started) < TimeSpan.FromSeconds(20), $"took {Stopwatch.GetElapsedTime(started)}");
    }

    [Fact]
    public async Task RunAsync_CommandHelp_StatesTheWholeServerAddressRule()
    {
        var (code, output, _) = await RunAsync("models", "--help");

        Assert.Equal(0, code);
        Assert.Contains("--server ADDRESS       the server, host:port or http(s)://host[:port]", output, StringComparison.Ordinal);
        Assert.Contains("a URL without a port takes its scheme's (80, 443)", output, StringComparison.Ordinal);
        Assert.Contains("a host alone, no host, a port not from 1 to 65535, a path", output, StringComparison.Ordinal);
        Assert.Contains("or a scheme other than http(s) is refused (exit 2)", output, StringComparison.Ordinal);
        Assert.DoesNotContain("host:port]", output, StringComparison.Ordinal);
    }

    [Fact]
    public async Task RunAsync_NoArguments_PrintsUsageAndExitsTwo()
    {
        var (code, _, error) = await RunAsync();

        Assert.Equal(2, code);
        Assert.Contains("usage: maskformer COMMAND", error, StringComparison.Ordinal);
    }

    [Theory]
    [InlineData("models")]
    [InlineData("segment")]
    [InlineData("stream")]
    public async Task RunAsync_ServerUnreachable_SaysWhereInOneLineAndExitsOne(string command)
    {
        var port = ClosedPort();
        var input = Path.Combine(RepositoryPaths.HeldOut, "0000.png");
        string[] args = command switch
        {
            "segment" => [command, input, "--out", Path.GetTempPath(), "--server", $"127.0.0.1:{port}"],
            "stream" => [command, Path.Combine(RepositoryPaths.TinyShapes, "clip"), "--server", $"127.0.0.1:{port}"],
            _ => [command, "--server", $"127.0.0.1:{port}"],
        };

        var (code, _, error) = await RunAsync(args);

        Assert.Equal(1, code);
        Assert.Contains($"cannot reach the server at http://127.0.0.1:{port}", error, StringComparison.Ordinal);
        Assert.Single(error.Trim().Split('\n'));
    }

    [Fact]
    public async Task RunAsync_HealthWithServerUnreachable_PrintsUnreachableWithTheAddress()
    {
        var port = ClosedPort();

        var (code, output, _) = await RunAsync("health", "--server", $"127.0.0.1:{port}");

        Assert.Equal(1, code);
        Assert.StartsWith($"UNREACHABLE: no answer from http://127.0.0.1:{port}", output, StringComparison.Ordinal);
    }

    [Fact]
    public async Task RunAsync_Cancelled_SaysSoAndExits130()
    {
        using var output = new StringWriter();
        using var error = new StringWriter();

        var code = await CliApp.RunAsync(["models", "--server", $"127.0.0.1:{ClosedPort()}"], output, error, new CancellationToken(canceled: true));

        Assert.Equal(130, code);
        Assert.Equal("maskformer models: cancelled.", error.ToString().Trim());
    }

    private static async Task<(int Code, string Output, string Error)> RunAsync(params string[] args)
    {
        using var output = new StringWriter();
        using var error = new StringWriter();
        var code = await CliApp.RunAsync(args, output, error, CancellationToken.None);
        return (code, output.ToString(), error.ToString());
    }

    // A port nothing listens on: bound by the system, then released.
    private static int ClosedPort()
    {
        using var listener = new TcpListener(IPAddress.Loopback, 0);
        listener.Start();
        var port = ((IPEndPoint)listener.LocalEndpoint).Port;
        listener.Stop();
        return port;
    }
}
