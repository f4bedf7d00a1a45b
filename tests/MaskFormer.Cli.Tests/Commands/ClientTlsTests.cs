using System.Net;
using System.Net.Security;
using System.Net.Sockets;
using System.Security.Authentication;
using System.Security.Cryptography;
using System.Security.Cryptography.X509Certificates;
using MaskFormer.Cli.Commands;

namespace MaskFormer.Cli.Tests.Commands;

// The hint for a refused certificate against Kestrel (TLS 1.3): CliTlsTests (Server.Tests).
public sealed class ClientTlsTests : IDisposable
{
    private readonly string _folder = Directory.CreateTempSubdirectory("maskformer-client-tls-").FullName;

    public void Dispose() => Directory.Delete(_folder, recursive: true);

    [Fact]
    public async Task Hint_Tls12ServerRefusingTheHandshakeForWantOfAClientCertificate_NamesOnlyTheClientCertificate()
    {
        // With TLS 1.2 a server refuses a client's certificate (or its want of one) in the handshake, as this
        // client refuses a server's: the server's certificate, from the CA given, is not what failed. .NET's own
        // TLS 1.2 server checks a client certificate only after its handshake, so the failed handshake is the
        // one fault made here (an AuthenticationException, as the call gets); the server the probe checks is real.
        using var caKey = ECDsa.Create(ECCurve.NamedCurves.nistP256);
        using var ca = CreateCa(caKey);
        var caPath = Path.Combine(_folder, "ca.pem");
        await File.WriteAllTextAsync(caPath, ca.ExportCertificatePem());
        using var serverCertificate = CreateServerCertificate(ca, caKey);
        using var listener = new TcpListener(IPAddress.Loopback, 0);
        listener.Start();
        var address = new Uri($"https://127.0.0.1:{((IPEndPoint)listener.LocalEndpoint).Port}");
        using var stop = new CancellationTokenSource();
        var server = ServeAsync(listener, serverCertificate, stop.Token);
        var arguments = new CommandArguments(["--server", address.ToString(), "--ca-cert", caPath]);
        var tls = ClientTls.From(arguments, address);

        var error = new HttpRequestException("The SSL connection could not be established.", new AuthenticationException("handshake failed"));
        var hint = await tls.HintAsync(address, error, CancellationToken.None);

        await stop.CancelAsync();
        listener.Stop();
        await server;
        Assert.Equal(
            $"The server's certificate passes this client's check, so the server refused the handshake: a server that asks for a client certificate needs --client-cert and --client-key (or ${ClientTls.CertificateVariable} and ${ClientTls.KeyVariable}).",
            hint);
    }

    // A TLS 1.2 server that wants a client certificate, for every connection until stopped.
    private static async Task ServeAsync(TcpListener listener, X509Certificate2 certificate, CancellationToken stop)
    {
        while (!stop.IsCancellationRequested)
        {
            TcpClient client;
            try
            {
                client = await listener.AcceptTcpClientAsync(stop);
            }
            catch (Exception ex) when (ex is OperationCanceledException or SocketException or ObjectDisposedException)
            {
                return;
            }

            using (client)
            {
                await using var ssl = new SslStream(client.GetStream());
                try
                {
                    await ssl.AuthenticateAsServerAsync(new SslServerAuthenticationOptions
                    {
                        ServerCertificate = certificate,
                        ClientCertificateRequired = true,
                        EnabledSslProtocols = SslProtocols.Tls12,
                        RemoteCertificateValidationCallback = static (_, presented, _, _) => presented is not null,
                    }, stop);
                }
                catch (Exception ex) when (ex is AuthenticationException or IOException or OperationCanceledException)
                {
                }
            }
        }
    }

    private static X509Certificate2 CreateCa(ECDsa key)
    {
        var request = new CertificateRequest("CN=Client TLS test CA", key, HashAlgorithmName.SHA256);
        request.CertificateExtensions.Add(new X509BasicConstraintsExtension(true, false, 0, true));
        request.CertificateExtensions.Add(new X509KeyUsageExtension(X509KeyUsageFlags.KeyCertSign | X509KeyUsageFlags.CrlSign, true));
        return request.CreateSelfSigned(DateTimeOffset.UtcNow.AddDays(-1), DateTimeOffset.UtcNow.AddDays(1));
    }

    private static X509Certificate2 CreateServerCertificate(X509Certificate2 ca, ECDsa caKey)
    {
        using var key = ECDsa.Create(ECCurve.NamedCurves.nistP256);
        var request = new CertificateRequest("CN=127.0.0.1", key, HashAlgorithmName.SHA256);
        var names = new SubjectAlternativeNameBuilder();
        names.AddIpAddress(IPAddress.Loopback);
        request.CertificateExtensions.Add(names.Build());
        request.CertificateExtensions.Add(new X509EnhancedKeyUsageExtension([new Oid("1.3.6.1.5.5.7.3.1")], false));
        using var signed = request.Create(ca.SubjectName, X509SignatureGenerator.CreateForECDsa(caKey), DateTimeOffset.UtcNow.AddHours(-1), DateTimeOffset.UtcNow.AddHours(12), [1, 2, 3, 4]);
        using var withKey = signed.CopyWithPrivateKey(key);
        return X509CertificateLoader.LoadPkcs12(withKey.Export(X509ContentType.Pkcs12), null);
    }
}
