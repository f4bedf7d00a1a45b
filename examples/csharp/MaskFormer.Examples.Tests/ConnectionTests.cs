using System.Security.Cryptography;
using System.Security.Cryptography.X509Certificates;

namespace MaskFormer.Examples.Tests;

public sealed class ConnectionTests
{
    // What every refused address's message starts with, in all five clients.
    private const string AddressRule = "--server (or MASKFORMER_ADDRESS) takes host:port or http(s)://host[:port]; ";

    [Theory]
    [InlineData("segment")]
    [InlineData("stream")]
    public async Task Command_NothingListening_Exits2AtOnceNamingTheAddress(string command)
    {
        var address = $"127.0.0.1:{Example.FreePort()}";
        var input = command == "segment" ? Example.HeldoutImage : Example.Clip;

        var run = await Example.RunAtOnceAsync([command, input, "--server", address]);

        Assert.True(run.ExitCode == 2, run.ToString());
        Assert.Contains($"error: cannot reach the MaskFormer server at {address}: ", run.Errors, StringComparison.Ordinal);
        Assert.Contains("Connection refused", run.Errors, StringComparison.Ordinal);
        Assert.True(run.Elapsed < Example.AtOnce, run.ToString());
    }

    [Fact]
    public async Task Segment_HttpsToTheCleartextServer_Exits2AtOnceSayingTheHandshakeFailed()
    {
        var address = $"https://{Example.Address.Replace("http://", "", StringComparison.Ordinal)}";

        var run = await Example.RunAtOnceAsync(["segment", Example.HeldoutImage, "--server", address]);

        Assert.True(run.ExitCode == 2, run.ToString());
        Assert.Contains($"error: cannot reach the MaskFormer server at {address}: ", run.Errors, StringComparison.Ordinal);
        Assert.Contains($"the TLS handshake failed: the server there speaks cleartext, not TLS: use http://{new Uri(address).Authority})", run.Errors, StringComparison.Ordinal);
        Assert.True(run.Elapsed < Example.AtOnce, run.ToString());
    }

    [Fact]
    public async Task Segment_HttpToTheTlsServer_Exits2SayingItSpeaksTls()
    {
        var (server, _) = TlsServer();
        var address = $"http://{new Uri(server).Authority}";

        var run = await Example.RunAtOnceAsync(["segment", Example.HeldoutImage, "--server", address]);

        Assert.True(run.ExitCode == 2, run.ToString());
        Assert.Contains($"error: cannot reach the MaskFormer server at {address}: ", run.Errors, StringComparison.Ordinal);
        Assert.Contains($"(the server there speaks TLS: use https://{new Uri(server).Authority}, with MASKFORMER_CA_CERT for a private CA)", run.Errors, StringComparison.Ordinal);
        Assert.True(run.Elapsed < Example.AtOnce, run.ToString());
    }

    [Fact]
    public async Task Segment_TlsServerWantingAClientCertificate_IsAnsweredWithItAndNamesItWithout()
    {
        var (server, files) = TlsServer();
        using var folder = new TemporaryFolder();
        var ca = new Dictionary<string, string> { ["MASKFORMER_CA_CERT"] = Path.Combine(files, "ca.pem") };

        var without = await Example.RunAsync(["segment", Example.HeldoutImage, "--out", folder.Path, "--server", server], ca);
        var with = await Example.RunAsync(["segment", Example.HeldoutImage, "--out", folder.Path, "--server", server], new Dictionary<string, string>(ca)
        {
            ["MASKFORMER_CLIENT_CERT"] = Path.Combine(files, "client.pem"),
            ["MASKFORMER_CLIENT_KEY"] = Path.Combine(files, "client.key"),
        });

        Assert.True(without.ExitCode == 2, without.ToString());
        Assert.Contains("does it want a client certificate? Set MASKFORMER_CLIENT_CERT and MASKFORMER_CLIENT_KEY)", without.Errors, StringComparison.Ordinal);
        Assert.True(with.ExitCode == 0, with.ToString());
    }

    [Fact]
    public async Task Segment_ExpiredClientCertificate_Exits2SayingWhenItExpired()
    {
        var (server, files) = TlsServer();
        using var folder = new TemporaryFolder();
        using var key = ECDsa.Create(ECCurve.NamedCurves.nistP256);
        var request = new CertificateRequest("CN=expired-client", key, HashAlgorithmName.SHA256);
        using var expired = request.CreateSelfSigned(new DateTimeOffset(2025, 1, 1, 0, 0, 0, TimeSpan.Zero), new DateTimeOffset(2025, 1, 2, 0, 0, 0, TimeSpan.Zero));
        var certificate = Path.Combine(folder.Path, "expired.pem");
        await File.WriteAllTextAsync(certificate, expired.ExportCertificatePem());
        await File.WriteAllTextAsync(Path.Combine(folder.Path, "expired.key"), key.ExportPkcs8PrivateKeyPem());

        var run = await Example.RunAsync(["segment", Example.HeldoutImage, "--server", server], new Dictionary<string, string>
        {
            ["MASKFORMER_CA_CERT"] = Path.Combine(files, "ca.pem"),
            ["MASKFORMER_CLIENT_CERT"] = certificate,
            ["MASKFORMER_CLIENT_KEY"] = Path.Combine(folder.Path, "expired.key"),
        });

        Assert.True(run.ExitCode == 2, run.ToString());
        Assert.Contains($"(MASKFORMER_CLIENT_CERT {certificate} expired at 2025-01-02 00:00:00Z; renew it)", run.Errors, StringComparison.Ordinal);
    }

    [Fact]
    public async Task SegmentWaitingForServer_HttpsToTheCleartextServer_Exits2AtOnceAsWithoutWaiting()
    {
        // The server speaks cleartext: no wait changes that, so --wait-for-server says it as soon as without it.
        var address = $"https://{Example.Address.Replace("http://", "", StringComparison.Ordinal)}";

        var run = await Example.RunAtOnceAsync(["segment", Example.HeldoutImage, "--server", address, "--wait-for-server"]);

        Assert.True(run.ExitCode == 2, run.ToString());
        Assert.Contains($"error: cannot reach the MaskFormer server at {address}: ", run.Errors, StringComparison.Ordinal);
        Assert.Contains($"the server there speaks cleartext, not TLS: use http://{new Uri(address).Authority})", run.Errors, StringComparison.Ordinal);
        Assert.True(run.Elapsed < Example.AtOnce, run.ToString());
    }

    [Fact]
    public async Task SegmentWaitingForServer_HttpToTheTlsServer_Exits2AtOnceAsWithoutWaiting()
    {
        var (server, _) = TlsServer();
        var address = $"http://{new Uri(server).Authority}";

        var run = await Example.RunAtOnceAsync(["segment", Example.HeldoutImage, "--server", address, "--wait-for-server"]);

        Assert.True(run.ExitCode == 2, run.ToString());
        Assert.Contains($"error: cannot reach the MaskFormer server at {address}: ", run.Errors, StringComparison.Ordinal);
        Assert.Contains($"(the server there speaks TLS: use https://{new Uri(server).Authority}, with MASKFORMER_CA_CERT for a private CA)", run.Errors, StringComparison.Ordinal);
        Assert.True(run.Elapsed < Example.AtOnce, run.ToString());
    }

    [Theory]
    [InlineData("other-ca.pem", null, "(the TLS handshake failed: is the server's certificate for 127.0.0.1 and issued by a CA in MASKFORMER_CA_CERT ")]
    [InlineData("ca.pem", null, "does it want a client certificate? Set MASKFORMER_CLIENT_CERT and MASKFORMER_CLIENT_KEY)")]
    [InlineData("ca.pem", "client-expired", "expired at ")]
    public async Task SegmentWaitingForServer_TlsServerRefusingACertificate_Exits2AtOnceAsWithoutWaiting(string ca, string? client, string hint)
    {
        // The server's certificate not from the CA trusted (this client refuses it); no client certificate, or
        // an expired one (the server refuses the client, after a TLS 1.3 handshake): a server restarting keeps
        // its certificate and its CA, so waiting cannot help.
        var (server, files) = TlsServer();
        var environment = new Dictionary<string, string> { ["MASKFORMER_CA_CERT"] = Path.Combine(files, ca) };
        if (client is not null)
        {
            environment["MASKFORMER_CLIENT_CERT"] = Path.Combine(files, $"{client}.pem");
            environment["MASKFORMER_CLIENT_KEY"] = Path.Combine(files, $"{client}.key");
        }

        var run = await Example.RunAtOnceAsync(["segment", Example.HeldoutImage, "--server", server, "--wait-for-server"], environment);

        Assert.True(run.ExitCode == 2, run.ToString());
        Assert.Contains($"error: cannot reach the MaskFormer server at {server}: ", run.Errors, StringComparison.Ordinal);
        Assert.Contains(hint, run.Errors, StringComparison.Ordinal);
        Assert.True(run.Elapsed < Example.AtOnce, run.ToString());
    }

    [Fact]
    public async Task SegmentWaitingForServer_NothingListeningUntilAServerStarts_IsAnswered()
    {
        // Refused connections are what a server still starting gives: tried again until one is up.
        var port = Example.FreePort();
        using var folder = new TemporaryFolder();
        using var example = Example.Start(["segment", Example.HeldoutImage, "--out", folder.Path, "--server", $"127.0.0.1:{port}", "--wait-for-server", "--connect-timeout", "120"]);
        using var ending = new Ending(example);
        var output = example.StandardOutput.ReadToEndAsync();
        var errors = example.StandardError.ReadToEndAsync();
        await Task.Delay(TimeSpan.FromSeconds(2));
        if (example.HasExited)
        {
            Assert.Fail($"the example did not wait for the server: exit {example.ExitCode}\n{await errors}");
        }

        using var server = ServerProcess.Start(port);
        using var timeout = new CancellationTokenSource(TimeSpan.FromMinutes(3));
        try
        {
            await example.WaitForExitAsync(timeout.Token);
        }
        catch (OperationCanceledException)
        {
            Assert.Fail($"the example did not end within 3 minutes of the server's start:\n{await errors}\n{server.Output}");
        }

        Assert.True(example.ExitCode == 0, $"exit {example.ExitCode}\n{await output}\n{await errors}\n{server.Output}");
    }

    [Fact]
    public async Task SegmentWaitingForServer_NothingListening_Exits2WhenTheTimeoutRunsOut()
    {
        // "within 3 s": the failure of the last try, made at the timeout, not of the first. A lower bound only:
        // a loaded machine may take longer.
        var address = $"127.0.0.1:{Example.FreePort()}";

        var run = await Example.RunAsync(["segment", Example.HeldoutImage, "--server", address, "--wait-for-server", "--connect-timeout", "3"]);

        Assert.True(run.ExitCode == 2, run.ToString());
        Assert.Contains($"error: cannot reach the MaskFormer server at {address} within 3 s: ", run.Errors, StringComparison.Ordinal);
        Assert.Contains("Connection refused", run.Errors, StringComparison.Ordinal);
        Assert.True(run.Elapsed >= TimeSpan.FromSeconds(3), run.ToString());
    }

    [Theory]
    [InlineData("segment", "127.0.0.1")]
    [InlineData("stream", "127.0.0.1")]
    [InlineData("segment", "[::1]")]
    [InlineData("segment", "localhost")]
    public async Task Command_HostWithoutAPort_Exits2AtOnceSayingSo(string command, string address) =>
        await AssertRefusedAtOnceAsync(command, address, "has no port (the service listens on 5081 unless told otherwise)");

    [Theory]
    [InlineData("segment", "127.0.0.1:", "")]
    [InlineData("segment", "127.0.0.1:abc", "abc")]
    [InlineData("segment", "127.0.0.1:0", "0")]
    [InlineData("segment", "127.0.0.1:70000", "70000")]
    [InlineData("segment", "http://127.0.0.1:abc", "abc")]
    [InlineData("segment", "https://[::1]:0", "0")]
    [InlineData("stream", "http://127.0.0.1:", "")]
    public async Task Command_PortNotFrom1To65535_Exits2AtOnceSayingSo(string command, string address, string port) =>
        await AssertRefusedAtOnceAsync(command, address, $"has port \"{port}\", which is not a number from 1 to 65535");

    [Theory]
    [InlineData("http://127.0.0.1:5081/api", "has path \"/api\", which a gRPC address cannot have")]
    [InlineData("127.0.0.1:5081/x", "has path \"/x\", which a gRPC address cannot have")]
    [InlineData("https://[::1]:5081/a/b/", "has path \"/a/b\", which a gRPC address cannot have")]
    [InlineData("http://segment.example/api", "has path \"/api\", which a gRPC address cannot have")]
    [InlineData("ftp://127.0.0.1:5081", "has scheme \"ftp\", which is not http or https")]
    [InlineData("grpc://127.0.0.1:5081", "has scheme \"grpc\", which is not http or https")]
    [InlineData("unix:///tmp/maskformer.sock", "has scheme \"unix\", which is not http or https")]
    [InlineData("HTTP://127.0.0.1:5081", "has scheme \"HTTP\", which is not http or https")]
    [InlineData(":5081", "has no host")]
    [InlineData("http://:5081", "has no host")]
    [InlineData("[]:5081", "has no host")]
    [InlineData("http://", "has no host")]
    [InlineData("http://::1:5081", "has host \"::1:5081\": an IPv6 host goes in brackets ([::1]:5081)")]
    [InlineData("https://::1", "has host \"::1\": an IPv6 host goes in brackets ([::1]:5081)")]
    [InlineData("http://fe80::1/", "has host \"fe80::1\": an IPv6 host goes in brackets ([::1]:5081)")]
    [InlineData("http://[::1", "has host \"[::1\": an IPv6 host goes in brackets ([::1]:5081)")]
    public async Task ConnectAsync_PathSchemeOrNoHost_ThrowsAtOnceSayingSo(string address, string problem)
    {
        // Refused before anything is tried: waiting for a server would take the minute.
        var error = await Assert.ThrowsAsync<ConnectionException>(
            () => ServerConnection.ConnectAsync(address, TimeSpan.FromSeconds(60), waitForServer: true, CancellationToken.None));

        Assert.Equal($"{AddressRule}{address} {problem}", error.Message);
    }

    [Theory]
    [InlineData("segment", "http://127.0.0.1:5081/api", "has path \"/api\", which a gRPC address cannot have")]
    [InlineData("stream", "grpc://127.0.0.1:5081", "has scheme \"grpc\", which is not http or https")]
    [InlineData("segment", ":5081", "has no host")]
    public async Task Command_PathSchemeOrNoHost_Exits2AtOnceSayingSo(string command, string address, string problem) =>
        await AssertRefusedAtOnceAsync(command, address, problem);

    // Runs COMMAND with --server ADDRESS, waiting for a server (RunAtOnceAsync: 60 s; an example that tried
    // the address would take that long), and checks it is refused at once (exit 2) in the shared words.
    private static async Task AssertRefusedAtOnceAsync(string command, string address, string problem)
    {
        var input = command == "segment" ? Example.HeldoutImage : Example.Clip;

        var run = await Example.RunAtOnceAsync([command, input, "--server", address, "--wait-for-server"]);

        Assert.True(run.ExitCode == 2, run.ToString());
        Assert.Equal($"error: {AddressRule}{address} {problem}", run.Errors.Trim());
        Assert.True(run.Elapsed < Example.AtOnce, run.ToString());
    }

    [Fact]
    public async Task Segment_Ipv6AddressInBrackets_IsTried()
    {
        // Nothing listens there: the refusal shows that [::1]:PORT was taken as the address and tried.
        var address = $"[::1]:{Example.FreePort()}";

        var run = await Example.RunAtOnceAsync(["segment", Example.HeldoutImage, "--server", address]);

        Assert.True(run.ExitCode == 2, run.ToString());
        Assert.Contains($"error: cannot reach the MaskFormer server at {address}: ", run.Errors, StringComparison.Ordinal);
        Assert.Contains("Connection refused", run.Errors, StringComparison.Ordinal);
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
    public async Task Segment_ClientKeyThatCannotBeRead_Exits2NamingItBeforeConnecting()
    {
        using var folder = new TemporaryFolder();
        using var key = ECDsa.Create(ECCurve.NamedCurves.nistP256);
        using var certificate = new CertificateRequest("CN=client", key, HashAlgorithmName.SHA256).CreateSelfSigned(DateTimeOffset.UtcNow.AddDays(-1), DateTimeOffset.UtcNow.AddDays(1));
        var pem = Path.Combine(folder.Path, "client.pem");
        await File.WriteAllTextAsync(pem, certificate.ExportCertificatePem());
        var missing = Path.Combine(folder.Path, "missing.key");

        var run = await Example.RunAsync(["segment", Example.HeldoutImage, "--server", "https://127.0.0.1:1"], new Dictionary<string, string>
        {
            ["MASKFORMER_CLIENT_CERT"] = pem,
            ["MASKFORMER_CLIENT_KEY"] = missing,
        });

        Assert.True(run.ExitCode == 2, run.ToString());
        Assert.StartsWith($"error: cannot read MASKFORMER_CLIENT_KEY {missing}: ", run.Errors, StringComparison.Ordinal);
    }

    [Fact]
    public async Task Segment_UnknownOption_Exits2WithTheUsage()
    {
        var run = await Example.RunAsync(["segment", Example.HeldoutImage, "--no-such-option"]);

        Assert.True(run.ExitCode == 2, run.ToString());
        Assert.Contains("error: unknown option --no-such-option", run.Errors, StringComparison.Ordinal);
        Assert.Contains("usage: MaskFormer.Examples segment IMAGE", run.Errors, StringComparison.Ordinal);
    }

    [Theory]
    [InlineData("segment")]
    [InlineData("stream")]
    public async Task Command_Help_PrintsTheUsageAndExits0(string command)
    {
        var run = await Example.RunAsync([command, "--help"]);

        Assert.True(run.ExitCode == 0, run.ToString());
        Assert.Contains($"usage: MaskFormer.Examples {command} ", run.Output, StringComparison.Ordinal);
        Assert.Empty(run.Errors);
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

    // The TLS server wanting a client certificate that tools/test-all.sh starts, and the folder of its certificates.
    internal static (string Address, string Files) TlsServer()
    {
        var server = Environment.GetEnvironmentVariable("MASKFORMER_TLS_SERVER");
        var files = Environment.GetEnvironmentVariable("MASKFORMER_TLS_FILES");
        Assert.False(string.IsNullOrEmpty(server) || string.IsNullOrEmpty(files),
            "MASKFORMER_TLS_SERVER and MASKFORMER_TLS_FILES are not set: make certificates with tools/make-test-certs.sh DIR, start a server with them wanting a client certificate (MaskFormer:Security:ClientCaPath=DIR/ca.pem) and set them to its https://host:port and DIR (tools/test-all.sh does)");
        return (server!, files!);
    }
}

internal sealed class TemporaryFolder : IDisposable
{
    public string Path { get; } = Directory.CreateTempSubdirectory("maskformer-examples-").FullName;

    public void Dispose() => Directory.Delete(Path, recursive: true);
}
