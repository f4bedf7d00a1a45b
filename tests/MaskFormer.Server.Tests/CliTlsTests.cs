using System.Net.Security;
using System.Security.Cryptography.X509Certificates;
using Grpc.Net.Client;
using MaskFormer.Cli;
using MaskFormer.Cli.Commands;
using MaskFormer.Contracts.V1;
using MaskFormer.Server.Hosting;
using Microsoft.AspNetCore.Builder;
using Microsoft.AspNetCore.Hosting.Server;
using Microsoft.AspNetCore.Hosting.Server.Features;
using Microsoft.Extensions.DependencyInjection;

namespace MaskFormer.Server.Tests;

/// <summary>
/// The CLI against a server with TLS, mutual TLS and bearer tokens (<see cref="SecureServerFixture"/>), run
/// as a user runs it (<see cref="CliApp.RunAsync"/>: exit code, output and the one-line error).
/// </summary>
[Collection(ServerTestGroup.Name)]
public sealed class CliTlsTests(SecureServerFixture fixture) : IClassFixture<SecureServerFixture>
{
    private static readonly TimeSpan s_atOnce = TimeSpan.FromSeconds(20);

    private static readonly string[] s_variables =
        [ClientTls.CaVariable, ClientTls.CertificateVariable, ClientTls.KeyVariable, ServerChannel.TokenVariable, CommandArguments.AddressVariable];

    [Fact]
    public async Task Models_CaAndClientCertificateOptions_Answered()
    {
        var (certificate, key) = fixture.WriteClientPem("cli-client");

        var (exitCode, output, error) = await RunAsync(
            ["models", "--server", fixture.Address.ToString(), "--ca-cert", fixture.CaPath, "--client-cert", certificate, "--client-key", key],
            (ServerChannel.TokenVariable, SecureServerFixture.Token));

        Assert.True(exitCode == 0, error);
        Assert.Contains("tiny-shapes", output, StringComparison.Ordinal);
    }

    [Fact]
    public async Task Health_TlsFromEnvironmentVariables_Serving()
    {
        var (certificate, key) = fixture.WriteClientPem("cli-client-env");

        var (exitCode, output, error) = await RunAsync(
            ["health"],
            (CommandArguments.AddressVariable, fixture.Address.ToString()),
            (ClientTls.CaVariable, fixture.CaPath),
            (ClientTls.CertificateVariable, certificate),
            (ClientTls.KeyVariable, key));

        Assert.True(exitCode == 0, $"{output} {error}");
        Assert.Equal("SERVING", output.Trim());
    }

    [Fact]
    public async Task Models_ServerCertificateFromAPrivateCa_WithoutCaCert_RefusedWithAHint()
    {
        var (certificate, key) = fixture.WriteClientPem("cli-client-no-ca");

        var (exitCode, _, error) = await RunAsync(
            ["models", "--server", fixture.Address.ToString(), "--client-cert", certificate, "--client-key", key],
            (ServerChannel.TokenVariable, SecureServerFixture.Token));

        Assert.True(exitCode == 1, $"exit code {exitCode}: {error}");
        Assert.Contains("over TLS", error, StringComparison.Ordinal);
        Assert.Contains("needs --ca-cert", error, StringComparison.Ordinal);
    }

    [Fact]
    public async Task Models_CaCertOfAnotherCa_ServerRefusedNamingTheFile()
    {
        // The client's own check: a server whose certificate does not chain to the given CA is refused.
        var (otherCa, certificate, key) = await OtherCaAndClientPemAsync("other-ca");

        var (exitCode, output, error) = await RunAsync(
            ["models", "--server", fixture.Address.ToString(), "--ca-cert", otherCa, "--client-cert", certificate, "--client-key", key],
            (ServerChannel.TokenVariable, SecureServerFixture.Token));

        Assert.True(exitCode == 1, $"exit code {exitCode}: {output} {error}");
        Assert.DoesNotContain("tiny-shapes", output, StringComparison.Ordinal);
        Assert.Contains($"issued by a CA in {otherCa}", error, StringComparison.Ordinal);
        Assert.DoesNotContain("client certificate", error, StringComparison.Ordinal);
    }

    [Fact]
    public async Task Models_CaCertOfAnotherCa_WithoutClientCertificate_HintNamesOnlyTheServerCertificate()
    {
        // This client refused the server's certificate before it could send one of its own: the server never
        // got to want a client certificate, so the hint does not say it needs one.
        var (otherCa, _, _) = await OtherCaAndClientPemAsync("other-ca-no-client");

        var (exitCode, output, error) = await RunAsync(
            ["models", "--server", fixture.Address.ToString(), "--ca-cert", otherCa],
            (ServerChannel.TokenVariable, SecureServerFixture.Token));

        Assert.True(exitCode == 1, $"exit code {exitCode}: {output} {error}");
        Assert.EndsWith($"Is the server's certificate for this host name and issued by a CA in {otherCa}?", error.Trim(), StringComparison.Ordinal);
        Assert.DoesNotContain("client certificate", error, StringComparison.Ordinal);
        Assert.DoesNotContain("--client-cert", error, StringComparison.Ordinal);
    }

    [Fact]
    public async Task Models_NoClientCertificate_Refused()
    {
        var (exitCode, output, error) = await RunAsync(
            ["models", "--server", fixture.Address.ToString(), "--ca-cert", fixture.CaPath],
            (ServerChannel.TokenVariable, SecureServerFixture.Token));

        Assert.True(exitCode == 1, $"exit code {exitCode}: {output} {error}");
        Assert.DoesNotContain("tiny-shapes", output, StringComparison.Ordinal);
        Assert.Contains("--client-cert and --client-key", error, StringComparison.Ordinal);
    }

    [Fact]
    public async Task Models_ServerCertificateForAnotherHostName_Refused()
    {
        // A server whose certificate chains to the given CA but names another host: the platform's host-name
        // check must refuse it (no validation callback may stand in for it).
        await using var app = await StartServerWithCertificateForAsync("wrong.example");
        var address = HttpsAddress(app);

        // The server answers a client that forgives the name and nothing else: only the name is wrong.
        var nameMismatch = false;
        using (var forgiving = GrpcChannel.ForAddress(address, new GrpcChannelOptions
        {
            HttpHandler = new SocketsHttpHandler
            {
                SslOptions = new SslClientAuthenticationOptions
                {
                    RemoteCertificateValidationCallback = (_, certificate, _, errors) =>
                    {
                        nameMismatch |= errors.HasFlag(SslPolicyErrors.RemoteCertificateNameMismatch);
                        using var ca = X509Certificate2.CreateFromPem(File.ReadAllText(fixture.CaPath));
                        using var presented = new X509Certificate2(certificate!);
                        using var chain = new X509Chain();
                        chain.ChainPolicy.TrustMode = X509ChainTrustMode.CustomRootTrust;
                        chain.ChainPolicy.CustomTrustStore.Add(ca);
                        chain.ChainPolicy.RevocationMode = X509RevocationMode.NoCheck;
                        return (errors & ~(SslPolicyErrors.RemoteCertificateChainErrors | SslPolicyErrors.RemoteCertificateNameMismatch)) == 0 && chain.Build(presented);
                    },
                },
            },
        }))
        {
            var models = await new SegmentationService.SegmentationServiceClient(forgiving).ListModelsAsync(new ListModelsRequest());
            Assert.NotEmpty(models.Models);
            Assert.True(nameMismatch, "the forgiving client saw no name mismatch");
        }

        var (exitCode, output, error) = await RunAsync(["models", "--server", address.ToString(), "--ca-cert", fixture.CaPath]);

        Assert.True(exitCode == 1, $"exit code {exitCode}: {output} {error}");
        Assert.DoesNotContain("tiny-shapes", output, StringComparison.Ordinal);
        Assert.Contains("for this host name", error, StringComparison.Ordinal);
        await app.StopAsync();
    }

    [Fact]
    public async Task Models_NoServerListening_UnreachableNotTls()
    {
        var port = LoopbackPorts.Free();

        var (exitCode, _, error) = await RunAsync(["models", "--server", $"https://127.0.0.1:{port}", "--ca-cert", fixture.CaPath]);

        Assert.Equal(1, exitCode);
        Assert.Contains("cannot reach the server", error, StringComparison.Ordinal);
        Assert.DoesNotContain("client certificate", error, StringComparison.Ordinal);
    }

    [Fact]
    public async Task Models_CleartextAddressOfTheTlsPort_SaysItSpeaksTlsNotToStartIt()
    {
        // The server is running: telling the user to start it sends them the wrong way.
        var cleartext = new UriBuilder(fixture.Address) { Scheme = "http" }.Uri.GetLeftPart(UriPartial.Authority);

        var (exitCode, output, error) = await RunAsync(["models", "--server", cleartext], (ServerChannel.TokenVariable, SecureServerFixture.Token));

        Assert.True(exitCode == 1, $"exit code {exitCode}: {output} {error}");
        Assert.Contains("seems to speak TLS", error, StringComparison.Ordinal);
        Assert.Contains($"use {fixture.Address.GetLeftPart(UriPartial.Authority)}", error, StringComparison.Ordinal);
        Assert.DoesNotContain("Start it", error, StringComparison.Ordinal);
    }

    [Fact]
    public async Task Health_TlsAddressOfTheCleartextPort_SaysItSpeaksCleartext()
    {
        var tls = new UriBuilder(fixture.CleartextAddress) { Scheme = "https" }.Uri.GetLeftPart(UriPartial.Authority);

        var (exitCode, output, error) = await RunAsync(["health", "--server", tls, "--ca-cert", fixture.CaPath]);

        Assert.True(exitCode == 1 && output.StartsWith("UNREACHABLE", StringComparison.Ordinal), $"exit code {exitCode}: {output} {error}");
        Assert.Contains("seems to speak cleartext", output, StringComparison.Ordinal);
        Assert.Contains($"use {fixture.CleartextAddress.GetLeftPart(UriPartial.Authority)}", output, StringComparison.Ordinal);
        Assert.DoesNotContain("issued by a CA", output, StringComparison.Ordinal);
    }

    [Fact]
    public async Task Health_NoClientCertificate_UnreachableSayingWhatToSet()
    {
        var (exitCode, output, error) = await RunAsync(["health", "--server", fixture.Address.ToString(), "--ca-cert", fixture.CaPath]);

        Assert.True(exitCode == 1 && output.StartsWith("UNREACHABLE", StringComparison.Ordinal), $"exit code {exitCode}: {output} {error}");
        Assert.Contains("--client-cert and --client-key", output, StringComparison.Ordinal);
    }

    [Fact]
    public async Task HealthWait_NoClientCertificate_UnreachableWithoutWaitingItOut()
    {
        // The server ends every connection without a client certificate; waiting does not change that. Without
        // the early end the wait (120 s) outlasts this test's own minute and the command is cancelled (130).
        var (exitCode, output, error) = await RunAsync(["health", "--server", fixture.Address.ToString(), "--ca-cert", fixture.CaPath, "--wait", "120"]);

        Assert.True(exitCode == 1 && output.StartsWith("UNREACHABLE", StringComparison.Ordinal), $"exit code {exitCode}: {output} {error}");
        Assert.Contains("--client-cert and --client-key", output, StringComparison.Ordinal);

        // The reason given is the connection's, not .NET's SslStream disposed under the refused handshake.
        Assert.DoesNotContain("disposed object", output, StringComparison.Ordinal);
    }

    [Fact]
    public async Task HealthWait_CaCertOfAnotherCa_UnreachableWithoutWaitingItOut()
    {
        // This client refuses the server's certificate: no wait changes that either.
        var (otherCa, certificate, key) = await OtherCaAndClientPemAsync("other-ca-health");

        var (exitCode, output, error) = await RunAsync(["health", "--server", fixture.Address.ToString(), "--ca-cert", otherCa, "--client-cert", certificate, "--client-key", key, "--wait", "120"]);

        Assert.True(exitCode == 1 && output.StartsWith("UNREACHABLE", StringComparison.Ordinal), $"exit code {exitCode}: {output} {error}");
        Assert.Contains($"issued by a CA in {otherCa}", output, StringComparison.Ordinal);
    }

    [Theory]
    [InlineData("http", false)]
    [InlineData("https", true)]
    public async Task HealthWait_SchemeOtherThanTheServers_UnreachableWithoutWaitingItOut(string scheme, bool cleartextServer)
    {
        // The protocol a server speaks is its configuration, which a restart keeps: waiting cannot help.
        var server = cleartextServer ? fixture.CleartextAddress : fixture.Address;
        var address = new UriBuilder(server) { Scheme = scheme, Port = server.Port }.Uri.GetLeftPart(UriPartial.Authority);
        string[] tls = cleartextServer ? ["--ca-cert", fixture.CaPath] : [];

        var (exitCode, output, error, elapsed) = await RunTimedAsync(["health", "--server", address, .. tls, "--wait", "60"]);

        Assert.True(exitCode == 1 && output.StartsWith("UNREACHABLE", StringComparison.Ordinal), $"exit code {exitCode} after {elapsed}: {output} {error}");
        Assert.Contains(cleartextServer ? "seems to speak cleartext" : "seems to speak TLS", output, StringComparison.Ordinal);
        Assert.True(elapsed < s_atOnce, $"{elapsed}: {output}");
    }

    [Theory]
    [InlineData("expired")]
    [InlineData("stranger")]
    public async Task HealthWait_ClientCertificateRefused_UnreachableWithoutWaitingItOut(string kind)
    {
        // The server ends every connection with this certificate after the handshake (TLS 1.3): seen on the
        // second try in a row, not at the end of the wait.
        using var refused = kind == "expired"
            ? SecureServerFixture.IssueClient(fixture.Ca, "CN=cli-wait-expired", DateTimeOffset.UtcNow.AddHours(-13), DateTimeOffset.UtcNow.AddHours(-1))
            : SecureServerFixture.IssueByStranger("http://127.0.0.1:9/ca.crt");
        var (certificate, key) = fixture.WriteClientPem($"cli-wait-{kind}", refused);

        var (exitCode, output, error, elapsed) = await RunTimedAsync(["health", "--server", fixture.Address.ToString(), "--ca-cert", fixture.CaPath, "--client-cert", certificate, "--client-key", key, "--wait", "60"]);

        Assert.True(exitCode == 1 && output.StartsWith("UNREACHABLE", StringComparison.Ordinal), $"exit code {exitCode} after {elapsed}: {output} {error}");
        Assert.Contains(kind == "expired" ? $"--client-cert {certificate} expired at " : $"is {certificate} issued by a CA the server trusts", output, StringComparison.Ordinal);
        Assert.True(elapsed < s_atOnce, $"{elapsed}: {output}");
    }

    [Fact]
    public async Task HealthWait_ServerCertificateForAnotherHostName_UnreachableWithoutWaitingItOut()
    {
        // A server presents the certificate it started with: waiting cannot change the name in it.
        await using var app = await StartServerWithCertificateForAsync("wrong-wait.example");
        var address = HttpsAddress(app);

        var (exitCode, output, error, elapsed) = await RunTimedAsync(["health", "--server", address.ToString(), "--ca-cert", fixture.CaPath, "--wait", "60"]);

        Assert.True(exitCode == 1 && output.StartsWith("UNREACHABLE", StringComparison.Ordinal), $"exit code {exitCode} after {elapsed}: {output} {error}");
        Assert.Contains("for this host name", output, StringComparison.Ordinal);
        Assert.True(elapsed < s_atOnce, $"{elapsed}: {output}");
        await app.StopAsync();
    }

    [Fact]
    public async Task HealthWait_NothingListeningUntilAServerStarts_Serving()
    {
        // A refused connection is what a server still starting gives: asked again until it answers.
        var port = LoopbackPorts.Free();

        var health = RunTimedAsync(["health", "--server", $"127.0.0.1:{port}", "--wait", "60"]);
        await Task.Delay(TimeSpan.FromSeconds(2));
        Assert.False(health.IsCompleted, $"health did not wait: {(health.IsCompleted ? (await health).Output : string.Empty)}");
        await using var app = ServerApp.Build(
        [
            $"--Kestrel:Endpoints:Grpc:Url=http://127.0.0.1:{port}",
            "--Kestrel:Endpoints:Probes:Url=http://127.0.0.1:0",
            $"--MaskFormer:Models:Path={RepositoryPaths.Models}",
            "--Logging:LogLevel:Default=Warning",
            "--MaskFormer:Inference:WarmUp=false",
        ]);
        await app.StartAsync();

        var (exitCode, output, error, elapsed) = await health;

        Assert.True(exitCode == 0, $"exit code {exitCode} after {elapsed}: {output} {error}");
        Assert.Equal("SERVING", output.Trim());
        await app.StopAsync();
    }

    [Fact]
    public async Task HealthWait_NothingListening_UnreachableWhenTheWaitRunsOut()
    {
        var port = LoopbackPorts.Free();

        var (exitCode, output, error, elapsed) = await RunTimedAsync(["health", "--server", $"127.0.0.1:{port}", "--wait", "3"]);

        Assert.True(exitCode == 1 && output.StartsWith("UNREACHABLE", StringComparison.Ordinal), $"exit code {exitCode} after {elapsed}: {output} {error}");
        Assert.True(elapsed >= TimeSpan.FromSeconds(3), $"{elapsed}: {output}");
    }

    [Fact]
    public async Task Models_ClientCertificateFromAnotherCa_Refused()
    {
        using var stranger = SecureServerFixture.IssueByStranger("http://127.0.0.1:9/ca.crt");
        var (certificate, key) = fixture.WriteClientPem("cli-stranger", stranger);

        var (exitCode, output, error) = await RunAsync(
            ["models", "--server", fixture.Address.ToString(), "--ca-cert", fixture.CaPath, "--client-cert", certificate, "--client-key", key],
            (ServerChannel.TokenVariable, SecureServerFixture.Token));

        Assert.True(exitCode == 1, $"exit code {exitCode}: {output} {error}");
        Assert.DoesNotContain("tiny-shapes", output, StringComparison.Ordinal);
        Assert.Contains($"is {certificate} issued by a CA the server trusts", error, StringComparison.Ordinal);
    }

    [Fact]
    public async Task Models_ExpiredClientCertificate_SaysWhenItExpired()
    {
        // Issued by the CA the server trusts: asking whether it is would send the user the wrong way.
        var now = DateTimeOffset.UtcNow;
        var expiredAt = new DateTimeOffset(now.Year, now.Month, now.Day, now.Hour, now.Minute, now.Second, TimeSpan.Zero).AddHours(-1);
        using var expired = SecureServerFixture.IssueClient(fixture.Ca, "CN=cli-expired", expiredAt.AddHours(-12), expiredAt);
        var (certificate, key) = fixture.WriteClientPem("cli-expired", expired);

        var (exitCode, output, error) = await RunAsync(
            ["models", "--server", fixture.Address.ToString(), "--ca-cert", fixture.CaPath, "--client-cert", certificate, "--client-key", key],
            (ServerChannel.TokenVariable, SecureServerFixture.Token));

        Assert.True(exitCode == 1, $"exit code {exitCode}: {output} {error}");
        Assert.Contains($"--client-cert {certificate} expired at {expiredAt.UtcDateTime:u}", error, StringComparison.Ordinal);
        Assert.DoesNotContain("issued by a CA the server trusts", error, StringComparison.Ordinal);
    }

    [Fact]
    public async Task Health_ClientCertificateNotYetValidFromAVariable_SaysFromWhen()
    {
        var now = DateTimeOffset.UtcNow;
        var validFrom = new DateTimeOffset(now.Year, now.Month, now.Day, now.Hour, now.Minute, now.Second, TimeSpan.Zero).AddDays(2);
        using var early = SecureServerFixture.IssueClient(fixture.Ca, "CN=cli-early", validFrom, validFrom.AddDays(7));
        var (certificate, key) = fixture.WriteClientPem("cli-early", early);

        var (exitCode, output, error) = await RunAsync(
            ["health", "--server", fixture.Address.ToString(), "--ca-cert", fixture.CaPath],
            (ClientTls.CertificateVariable, certificate),
            (ClientTls.KeyVariable, key));

        Assert.True(exitCode == 1 && output.StartsWith("UNREACHABLE", StringComparison.Ordinal), $"exit code {exitCode}: {output} {error}");
        Assert.Contains($"${ClientTls.CertificateVariable} {certificate} (the default of --client-cert) is not valid before {validFrom.UtcDateTime:u}", output, StringComparison.Ordinal);
    }

    [Fact]
    public async Task Models_ClientCertificateWithoutKey_UsageError()
    {
        var (certificate, _) = fixture.WriteClientPem("cli-no-key");

        var (exitCode, _, error) = await RunAsync(["models", "--server", fixture.Address.ToString(), "--ca-cert", fixture.CaPath, "--client-cert", certificate]);

        Assert.Equal(2, exitCode);
        Assert.Contains("--client-cert and --client-key go together", error, StringComparison.Ordinal);
    }

    [Fact]
    public async Task Models_CaCertWithACleartextAddress_UsageError()
    {
        var (exitCode, _, error) = await RunAsync(["models", "--server", fixture.CleartextAddress.ToString(), "--ca-cert", fixture.CaPath]);

        Assert.Equal(2, exitCode);
        Assert.Contains("needs an https:// server address", error, StringComparison.Ordinal);
    }

    [Fact]
    public async Task Models_MissingCaFile_Named()
    {
        var missing = Path.Combine(Path.GetTempPath(), $"maskformer-no-such-ca-{Guid.NewGuid():N}.pem");

        var (exitCode, _, error) = await RunAsync(["models", "--server", fixture.Address.ToString(), "--ca-cert", missing]);

        Assert.Equal(1, exitCode);
        Assert.Contains(missing, error, StringComparison.Ordinal);
    }

    [Theory]
    [InlineData(ClientTls.CaVariable, "--ca-cert")]
    [InlineData(ClientTls.CertificateVariable, "--client-cert")]
    [InlineData(ClientTls.KeyVariable, "--client-key")]
    public async Task Models_MissingFileFromAVariable_NamesTheVariableAndTheOption(string variable, string option)
    {
        // A variable set long ago in a profile is easily forgotten: the path alone does not say where it came from.
        var (certificate, key) = fixture.WriteClientPem($"cli-env-{option.TrimStart('-')}");
        var missing = Path.Combine(Path.GetTempPath(), $"maskformer-no-such-file-{Guid.NewGuid():N}.pem");
        var files = new Dictionary<string, string>
        {
            [ClientTls.CaVariable] = fixture.CaPath,
            [ClientTls.CertificateVariable] = certificate,
            [ClientTls.KeyVariable] = key,
        };
        files[variable] = missing;

        var (exitCode, _, error) = await RunAsync(
            ["models", "--server", fixture.Address.ToString()],
            [.. files.Select(f => (f.Key, f.Value)), (ServerChannel.TokenVariable, SecureServerFixture.Token)]);

        Assert.True(exitCode == 1, $"exit code {exitCode}: {error}");
        Assert.Contains($"${variable} {missing}", error, StringComparison.Ordinal);
        Assert.Contains(option, error, StringComparison.Ordinal);
    }

    [Fact]
    public async Task Models_KeyOfAnotherCertificate_Named()
    {
        var (certificate, _) = fixture.WriteClientPem("cli-mismatch");
        using var stranger = SecureServerFixture.IssueByStranger("http://127.0.0.1:9/ca.crt");
        var (_, otherKey) = fixture.WriteClientPem("cli-other", stranger);

        var (exitCode, _, error) = await RunAsync(["models", "--server", fixture.Address.ToString(), "--ca-cert", fixture.CaPath, "--client-cert", certificate, "--client-key", otherKey]);

        Assert.Equal(1, exitCode);
        Assert.Contains("is not the PEM private key of --client-cert", error, StringComparison.Ordinal);
    }

    [Fact]
    public async Task Models_CaFileWithoutCertificates_Named()
    {
        var (_, key) = fixture.WriteClientPem("cli-key-as-ca");

        var (exitCode, _, error) = await RunAsync(["models", "--server", fixture.Address.ToString(), "--ca-cert", key]);

        Assert.Equal(1, exitCode);
        Assert.Contains("holds no PEM certificate", error, StringComparison.Ordinal);
    }

    // A CA the server's certificate does not chain to (its PEM file, NAME.pem) and a client certificate and key
    // the server accepts.
    private async Task<(string OtherCa, string Certificate, string Key)> OtherCaAndClientPemAsync(string name)
    {
        using var other = SecureServerFixture.CreateCa("CN=Another CA");
        var otherCa = Path.Combine(Path.GetDirectoryName(fixture.CaPath)!, $"{name}.pem");
        await File.WriteAllTextAsync(otherCa, other.ExportCertificatePem());
        var (certificate, key) = fixture.WriteClientPem($"cli-client-{name}");
        return (otherCa, certificate, key);
    }

    // RunAsync, timed: a wait that cannot help must end well before the wait given (60 s), which a loaded
    // machine's slow handshakes and hint probes still leave far from.
    /// <summary>A TLS server (no client certificates asked) whose certificate chains to the fixture's CA but names <paramref name="hostName"/>.</summary>
    private async Task<WebApplication> StartServerWithCertificateForAsync(string hostName)
    {
        var (serverCertificate, serverKey) = fixture.WriteServerPemFor(hostName);
        var app = ServerApp.Build(
        [
            "--Kestrel:Endpoints:Grpc:Url=https://127.0.0.1:0",
            "--Kestrel:Endpoints:Probes:Url=http://127.0.0.1:0",
            $"--MaskFormer:Models:Path={RepositoryPaths.Models}",
            "--Logging:LogLevel:Default=Warning",
            "--MaskFormer:Inference:WarmUp=false",
            $"--MaskFormer:Security:CertificatePath={serverCertificate}",
            $"--MaskFormer:Security:KeyPath={serverKey}",
        ]);
        await app.StartAsync();
        return app;
    }

    private static Uri HttpsAddress(WebApplication app) =>
        app.Services.GetRequiredService<IServer>().Features.Get<IServerAddressesFeature>()!.Addresses.Select(a => new Uri(a)).Single(a => a.Scheme == "https");

    private static async Task<(int ExitCode, string Output, string Error, TimeSpan Elapsed)> RunTimedAsync(string[] args)
    {
        var started = System.Diagnostics.Stopwatch.GetTimestamp();
        var (exitCode, output, error) = await RunAsync(args);
        return (exitCode, output, error, System.Diagnostics.Stopwatch.GetElapsedTime(started));
    }

    // The CLI as a user runs it, with only the given variables of its own set (this collection runs one test
    // at a time, and only the CLI reads them).
    private static async Task<(int ExitCode, string Output, string Error)> RunAsync(string[] args, params (string Name, string Value)[] variables)
    {
        var saved = s_variables.Select(name => (name, Environment.GetEnvironmentVariable(name))).ToArray();
        foreach (var name in s_variables)
        {
            Environment.SetEnvironmentVariable(name, null);
        }

        foreach (var (name, value) in variables)
        {
            Environment.SetEnvironmentVariable(name, value);
        }

        try
        {
            using var output = new StringWriter();
            using var error = new StringWriter();
            using var timeout = new CancellationTokenSource(TimeSpan.FromSeconds(60));
            var exitCode = await CliApp.RunAsync(args, output, error, timeout.Token);
            return (exitCode, output.ToString(), error.ToString());
        }
        finally
        {
            foreach (var (name, value) in saved)
            {
                Environment.SetEnvironmentVariable(name, value);
            }
        }
    }
}
