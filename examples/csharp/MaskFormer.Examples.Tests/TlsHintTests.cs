using System.Security.Cryptography;
using System.Security.Cryptography.X509Certificates;

namespace MaskFormer.Examples.Tests;

/// <summary>
/// A refused TLS handshake's hint names only the side that refused: this client refusing the server's
/// certificate (against the TLS server of tools/test-all.sh), or a TLS 1.2 server refusing this client's
/// certificate in the handshake (<see cref="Tls12Server"/>).
/// </summary>
public sealed class TlsHintTests : IDisposable
{
    private readonly TemporaryFolder _folder = new();

    [Theory]
    [InlineData(null, "does the server want a client certificate? Set MASKFORMER_CLIENT_CERT and MASKFORMER_CLIENT_KEY.)")]
    [InlineData("another CA", "does the server trust the CA that issued MASKFORMER_CLIENT_CERT {0}?)")]
    [InlineData("client-expired", "(the server's certificate passes this client's check, so the server refused the TLS handshake: MASKFORMER_CLIENT_CERT {0} expired at ")]
    public async Task Segment_Tls12ServerRefusingTheClientCertificateInTheHandshake_Exits2AtOnceNamingOnlyTheClientCertificate(string? client, string hint)
    {
        // The server's certificate is from the CA given: what the server refused is this client's certificate,
        // sent by none, one from a CA it does not trust, or one out of date. Waiting cannot change that.
        var (_, files) = ConnectionTests.TlsServer();
        using var server = await Tls12Server.StartAsync(files);
        var environment = new Dictionary<string, string> { ["MASKFORMER_CA_CERT"] = Path.Combine(files, "ca.pem") };
        var certificate = client switch
        {
            null => null,
            "another CA" => await ClientCertificateOfAnotherCaAsync(),
            _ => Path.Combine(files, $"{client}.pem"),
        };
        if (certificate is not null)
        {
            environment["MASKFORMER_CLIENT_CERT"] = certificate;
            environment["MASKFORMER_CLIENT_KEY"] = Path.ChangeExtension(certificate, ".key");
        }

        var run = await Example.RunAtOnceAsync(["segment", Example.HeldoutImage, "--server", server.Address, "--wait-for-server"], environment);

        Assert.True(run.ExitCode == 2, $"{run}\nserver:\n{server.Output}");
        Assert.Contains($"error: cannot reach the MaskFormer server at {server.Address}: ", run.Errors, StringComparison.Ordinal);
        Assert.Contains(string.Format(System.Globalization.CultureInfo.InvariantCulture, hint, certificate), run.Errors, StringComparison.Ordinal);
        Assert.Contains("(the server's certificate passes this client's check, so the server refused the TLS handshake: ", run.Errors, StringComparison.Ordinal);
        Assert.DoesNotContain("server's certificate for", run.Errors, StringComparison.Ordinal);
        Assert.True(run.Elapsed < Example.AtOnce, run.ToString());
    }

    [Theory]
    [InlineData(null)]
    [InlineData("client")]
    [InlineData("client-expired")]
    public async Task Segment_CaFileOfAnotherCa_Exits2NamingOnlyTheServerCertificateAndTheFile(string? client)
    {
        // This client checks the server's certificate before it sends one of its own: whatever client
        // certificate it holds (an expired one too), the server's certificate is what failed.
        var (server, files) = ConnectionTests.TlsServer();
        var ca = Path.Combine(files, "other-ca.pem");
        var environment = new Dictionary<string, string> { ["MASKFORMER_CA_CERT"] = ca };
        if (client is not null)
        {
            environment["MASKFORMER_CLIENT_CERT"] = Path.Combine(files, $"{client}.pem");
            environment["MASKFORMER_CLIENT_KEY"] = Path.Combine(files, $"{client}.key");
        }

        var run = await Example.RunAtOnceAsync(["segment", Example.HeldoutImage, "--server", server], environment);

        Assert.True(run.ExitCode == 2, run.ToString());
        Assert.Contains($"error: cannot reach the MaskFormer server at {server}: ", run.Errors, StringComparison.Ordinal);
        Assert.Contains($"(the TLS handshake failed: is the server's certificate for {new Uri(server).IdnHost} and issued by a CA in MASKFORMER_CA_CERT {ca}?)", run.Errors, StringComparison.Ordinal);
        Assert.DoesNotContain("MASKFORMER_CLIENT_CERT", run.Errors, StringComparison.Ordinal);
        Assert.True(run.Elapsed < Example.AtOnce, run.ToString());
    }

    public void Dispose() => _folder.Dispose();

    // A client certificate (and its key, beside it as .key) from a CA of its own, which no server here trusts.
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

        var path = Path.Combine(_folder.Path, "another-ca-client.pem");
        await File.WriteAllTextAsync(path, certificate.ExportCertificatePem());
        await File.WriteAllTextAsync(Path.ChangeExtension(path, ".key"), key.ExportPkcs8PrivateKeyPem());
        return path;
    }
}
