using System.Security.Cryptography;
using System.Security.Cryptography.X509Certificates;
using MaskFormer.Cli.Commands;

namespace MaskFormer.Cli.Tests.Commands;

/// <summary>
/// The hint after a handshake that a TLS 1.2 server refused (<see cref="Tls12Server"/>), run as a user runs the
/// CLI (<see cref="CliApp.RunAsync"/>): it names only what failed. Against Kestrel (TLS 1.3), which refuses a
/// client certificate after the handshake: CliTlsTests (Server.Tests).
/// </summary>
[Collection(nameof(ClientTlsVariables))]
public sealed class ClientTlsTests(Tls12Server server) : IClassFixture<Tls12Server>, IDisposable
{
    private static readonly string[] s_variables = [ClientTls.CaVariable, ClientTls.CertificateVariable, ClientTls.KeyVariable];

    private readonly string _folder = Directory.CreateTempSubdirectory("maskformer-client-tls-").FullName;

    public void Dispose() => Directory.Delete(_folder, recursive: true);

    [Theory]
    [InlineData(null)]
    [InlineData("another CA")]
    [InlineData("client-expired")]
    public async Task Models_Tls12ServerRefusingTheClientCertificateInTheHandshake_HintNamesOnlyTheClientCertificate(string? client)
    {
        // The server's certificate is from the CA given: what the server refused is this client's certificate,
        // sent by none, one from a CA it does not trust, or one out of date.
        var certificate = client switch
        {
            null => null,
            "another CA" => await ClientCertificateOfAnotherCaAsync(),
            _ => Path.Combine(server.Files, $"{client}.pem"),
        };
        var expected = certificate switch
        {
            null => $"a server that asks for a client certificate needs --client-cert and --client-key (or ${ClientTls.CertificateVariable} and ${ClientTls.KeyVariable}).",
            _ when client == "another CA" => $"a server that asks for a client certificate refuses one it does not trust: is {certificate} issued by a CA the server trusts?",
            _ => $"a server that asks for a client certificate refuses one out of date: --client-cert {certificate} expired at ",
        };

        var (exitCode, output, error) = await ModelsAsync(Path.Combine(server.Files, "ca.pem"), certificate);

        Assert.True(exitCode == 1, $"exit code {exitCode}: {output} {error}\nserver:\n{server.Output}");
        Assert.Contains($"cannot reach the server at {server.Address.GetLeftPart(UriPartial.Authority)} over TLS", error, StringComparison.Ordinal);
        Assert.Contains($"The server's certificate passes this client's check, so the server refused the handshake: {expected}", error, StringComparison.Ordinal);
        Assert.DoesNotContain("server's certificate for", error, StringComparison.Ordinal);
        Assert.DoesNotContain("--ca-cert", error, StringComparison.Ordinal);
    }

    [Theory]
    [InlineData(null)]
    [InlineData("client")]
    [InlineData("client-expired")]
    public async Task Models_CaCertOfAnotherCa_Tls12ServerWantingAClientCertificate_HintNamesOnlyTheServerCertificate(string? client)
    {
        // The server's certificate fails this client's check, which no client certificate mends: whatever
        // client certificate it holds, that is what to fix first. (On Linux .NET checks it only after a TLS 1.2
        // handshake, so an expired one is sent, and refused, first; a try after the fix says so.)
        var otherCa = Path.Combine(server.Files, "other-ca.pem");

        var (exitCode, output, error) = await ModelsAsync(otherCa, client is null ? null : Path.Combine(server.Files, $"{client}.pem"));

        Assert.True(exitCode == 1, $"exit code {exitCode}: {output} {error}\nserver:\n{server.Output}");
        Assert.EndsWith($"Is the server's certificate for this host name and issued by a CA in {otherCa}?", error.Trim(), StringComparison.Ordinal);
        Assert.DoesNotContain("client certificate", error, StringComparison.Ordinal);
        Assert.DoesNotContain("--client-cert", error, StringComparison.Ordinal);
    }

    // `models` against the server with --ca-cert CA and, given a CERTIFICATE, --client-cert CERTIFICATE and
    // --client-key (its .key beside it); the TLS variables unset, so that none stands in for an option left out.
    private async Task<(int ExitCode, string Output, string Error)> ModelsAsync(string ca, string? certificate)
    {
        string[] client = certificate is null ? [] : ["--client-cert", certificate, "--client-key", Path.ChangeExtension(certificate, ".key")];
        var saved = s_variables.Select(name => (name, Environment.GetEnvironmentVariable(name))).ToArray();
        foreach (var name in s_variables)
        {
            Environment.SetEnvironmentVariable(name, null);
        }

        try
        {
            using var output = new StringWriter();
            using var error = new StringWriter();
            using var timeout = new CancellationTokenSource(TimeSpan.FromSeconds(60));
            var exitCode = await CliApp.RunAsync(["models", "--server", server.Address.ToString(), "--ca-cert", ca, .. client], output, error, timeout.Token);
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

    // A client certificate (and its key, beside it as .key) from a CA of its own, which the server does not trust.
    private async Task<string> ClientCertificateOfAnotherCaAsync()
    {
        using var caKey = ECDsa.Create(ECCurve.NamedCurves.nistP256);
        var caRequest = new CertificateRequest("CN=Another test CA", caKey, HashAlgorithmName.SHA256);
        caRequest.CertificateExtensions.Add(new X509BasicConstraintsExtension(true, false, 0, true));
        caRequest.CertificateExtensions.Add(new X509KeyUsageExtension(X509KeyUsageFlags.KeyCertSign | X509KeyUsageFlags.CrlSign, true));
        using var ca = caRequest.CreateSelfSigned(DateTimeOffset.UtcNow.AddDays(-1), DateTimeOffset.UtcNow.AddDays(2));

        using var key = ECDsa.Create(ECCurve.NamedCurves.nistP256);
        var request = new CertificateRequest("CN=maskformer-test-client", key, HashAlgorithmName.SHA256);
        request.CertificateExtensions.Add(new X509BasicConstraintsExtension(false, false, 0, true));
        request.CertificateExtensions.Add(new X509EnhancedKeyUsageExtension([new Oid("1.3.6.1.5.5.7.3.2")], false));
        using var certificate = request.Create(ca, DateTimeOffset.UtcNow.AddHours(-1), DateTimeOffset.UtcNow.AddDays(1), [5, 6, 7, 8]);

        var path = Path.Combine(_folder, "another-ca-client.pem");
        await File.WriteAllTextAsync(path, certificate.ExportCertificatePem());
        await File.WriteAllTextAsync(Path.ChangeExtension(path, ".key"), key.ExportPkcs8PrivateKeyPem());
        return path;
    }
}

/// <summary>Tests that unset the CLI's TLS variables for a while: one at a time, and none beside another test.</summary>
[CollectionDefinition(nameof(ClientTlsVariables), DisableParallelization = true)]
public sealed class ClientTlsVariables;
