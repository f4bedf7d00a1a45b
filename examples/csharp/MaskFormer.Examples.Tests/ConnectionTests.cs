namespace MaskFormer.Examples.Tests;

public sealed class ConnectionTests
{
    [Theory]
    [InlineData("segment")]
    [InlineData("stream")]
    public async Task Command_NothingListening_Exits2AtOnceNamingTheAddress(string command)
    {
        var address = $"127.0.0.1:{Example.FreePort()}";
        var input = command == "segment" ? Example.HeldoutImage : Example.Clip;

        var run = await Example.RunAsync([command, input, "--server", address]);

        Assert.True(run.ExitCode == 2, run.ToString());
        Assert.Contains($"error: cannot reach the MaskFormer server at {address}: ", run.Errors, StringComparison.Ordinal);
        Assert.Contains("Connection refused", run.Errors, StringComparison.Ordinal);
        Assert.True(run.Elapsed < TimeSpan.FromSeconds(3), run.ToString());
    }

    [Fact]
    public async Task Segment_HttpsToTheCleartextServer_Exits2AtOnceSayingTheHandshakeFailed()
    {
        var address = $"https://{Example.Address.Replace("http://", "", StringComparison.Ordinal)}";

        var run = await Example.RunAsync(["segment", Example.HeldoutImage, "--server", address]);

        Assert.True(run.ExitCode == 2, run.ToString());
        Assert.Contains($"error: cannot reach the MaskFormer server at {address}: ", run.Errors, StringComparison.Ordinal);
        Assert.Contains("the TLS handshake failed", run.Errors, StringComparison.Ordinal);
        Assert.True(run.Elapsed < TimeSpan.FromSeconds(3), run.ToString());
    }

    [Fact]
    public async Task Segment_AddressFromTheEnvironment_IsUsedWithoutServer()
    {
        var address = $"http://127.0.0.1:{Example.FreePort()}";

        var run = await Example.RunAsync(["segment", Example.HeldoutImage], new Dictionary<string, string> { ["MASKFORMER_ADDRESS"] = address });

        Assert.True(run.ExitCode == 2, run.ToString());
        Assert.Contains($"cannot reach the MaskFormer server at {address}: ", run.Errors, StringComparison.Ordinal);
    }

    [Fact]
    public async Task Segment_CaCertificateWithACleartextAddress_Exits2NamingIt()
    {
        var run = await Example.RunAsync(["segment", Example.HeldoutImage, "--server", "127.0.0.1:1"], new Dictionary<string, string> { ["MASKFORMER_CA_CERT"] = Example.HeldoutImage });

        Assert.True(run.ExitCode == 2, run.ToString());
        Assert.Contains("a CA or client certificate needs an https:// server address", run.Errors, StringComparison.Ordinal);
    }

    [Fact]
    public async Task Segment_UnknownOption_Exits2WithTheUsage()
    {
        var run = await Example.RunAsync(["segment", Example.HeldoutImage, "--no-such-option"]);

        Assert.True(run.ExitCode == 2, run.ToString());
        Assert.Contains("error: unknown option --no-such-option", run.Errors, StringComparison.Ordinal);
        Assert.Contains("usage: MaskFormer.Examples segment IMAGE", run.Errors, StringComparison.Ordinal);
    }

    [Fact]
    public async Task Segment_TokenServer_IsUnauthenticatedWithoutTheTokenAndAnsweredWithIt()
    {
        var server = Environment.GetEnvironmentVariable("MASKFORMER_TOKEN_SERVER");
        var token = Environment.GetEnvironmentVariable("MASKFORMER_TOKEN_SERVER_TOKEN");
        Assert.False(string.IsNullOrEmpty(server) || string.IsNullOrEmpty(token),
            "MASKFORMER_TOKEN_SERVER and MASKFORMER_TOKEN_SERVER_TOKEN are not set: start a server with --MaskFormer:Security:TokensFile=FILE and set them to its host:port and the token in FILE (tools/test-all.sh does)");
        using var folder = new TemporaryFolder();

        var without = await Example.RunAsync(["segment", Example.HeldoutImage, "--out", folder.Path, "--server", server!]);
        var with = await Example.RunAsync(["segment", Example.HeldoutImage, "--out", folder.Path, "--server", server!], new Dictionary<string, string> { ["MASKFORMER_TOKEN"] = token! });

        Assert.True(without.ExitCode == 1, without.ToString());
        Assert.Contains("error: Segment failed with UNAUTHENTICATED", without.Errors, StringComparison.Ordinal);
        Assert.True(with.ExitCode == 0, with.ToString());
    }
}

internal sealed class TemporaryFolder : IDisposable
{
    public string Path { get; } = Directory.CreateTempSubdirectory("maskformer-examples-").FullName;

    public void Dispose() => Directory.Delete(Path, recursive: true);
}
