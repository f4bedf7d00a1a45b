using MaskFormer.Cli;
using MaskFormer.Cli.Commands;

namespace MaskFormer.Server.Tests;

/// <summary>
/// The CLI against a server with TLS, mutual TLS and bearer tokens (<see cref="SecureServerFixture"/>), run
/// as a user runs it (<see cref="CliApp.RunAsync"/>: exit code, output and the one-line error).
/// </summary>
[Collection(ServerTestGroup.Name)]
public sealed class CliTlsTests(SecureServerFixture fixture) : IClassFixture<SecureServerFixture>
{
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
        using var other = SecureServerFixture.CreateCa("CN=Another CA");
        var otherCa = Path.Combine(Path.GetDirectoryName(fixture.CaPath)!, "other-ca.pem");
        await File.WriteAllTextAsync(otherCa, other.ExportCertificatePem());
        var (certificate, key) = fixture.WriteClientPem("cli-client-other-ca");

        var (exitCode, output, error) = await RunAsync(
            ["models", "--server", fixture.Address.ToString(), "--ca-cert", otherCa, "--client-cert", certificate, "--client-key", key],
            (ServerChannel.TokenVariable, SecureServerFixture.Token));

        Assert.True(exitCode == 1, $"exit code {exitCode}: {output} {error}");
        Assert.DoesNotContain("tiny-shapes", output, StringComparison.Ordinal);
        Assert.Contains($"issued by a CA in {otherCa}", error, StringComparison.Ordinal);
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
    public async Task Models_NoServerListening_UnreachableNotTls()
    {
        using var listener = new System.Net.Sockets.TcpListener(System.Net.IPAddress.Loopback, 0);
        listener.Start();
        var port = ((System.Net.IPEndPoint)listener.LocalEndpoint).Port;
        listener.Stop();

        var (exitCode, _, error) = await RunAsync(["models", "--server", $"https://127.0.0.1:{port}", "--ca-cert", fixture.CaPath]);

        Assert.Equal(1, exitCode);
        Assert.Contains("cannot reach the server", error, StringComparison.Ordinal);
        Assert.DoesNotContain("client certificate", error, StringComparison.Ordinal);
    }

    [Fact]
    public async Task Health_NoClientCertificate_UnreachableSayingWhatToSet()
    {
        var (exitCode, output, error) = await RunAsync(["health", "--server", fixture.Address.ToString(), "--ca-cert", fixture.CaPath]);

        Assert.True(exitCode == 1 && output.StartsWith("UNREACHABLE", StringComparison.Ordinal), $"exit code {exitCode}: {output} {error}");
        Assert.Contains("--client-cert and --client-key", output, StringComparison.Ordinal);
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
