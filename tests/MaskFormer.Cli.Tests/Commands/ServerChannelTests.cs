using MaskFormer.Cli.Commands;

namespace MaskFormer.Cli.Tests.Commands;

public sealed class ServerChannelTests
{
    [Fact]
    public void CreateHandler_StreamWindow_HoldsALargeAnswerWhole()
    {
        // A 1920x1080 answer with 100 instance masks is about 3.2 MB: with a window at least that large the
        // client sends no stream WINDOW_UPDATE mid-answer, the race that loses Kestrel responses.
        using var handler = ServerChannel.CreateHandler();

        Assert.Equal(16 << 20, handler.InitialHttp2StreamWindowSize);
        Assert.True(handler.EnableMultipleHttp2Connections);
    }

    [Fact]
    public void CreateOptions_ReceiveLimit_NoneOfTheClientsOwn()
    {
        // The .NET client's default refuses answers over 4 MB and blames the server; the server bounds them.
        var options = ServerChannel.CreateOptions();

        Assert.Null(options.MaxReceiveMessageSize);
        options.HttpHandler!.Dispose();
    }

    [Fact]
    public void Open_Address_ChannelForThatAddress()
    {
        using var channel = ServerChannel.Open(new CommandArguments(["--server", "http://127.0.0.1:5099"]));

        Assert.Equal("127.0.0.1:5099", channel.Target);
    }

    [Fact]
    public void CreateOptions_CaFile_ServerCheckedAgainstItsRootsWithTheHostName()
    {
        // The CA replaces the system's roots through the chain policy; no validation callback, so the
        // platform still checks the host name against the certificate.
        var directory = Directory.CreateTempSubdirectory("maskformer-ca-").FullName;
        try
        {
            using var key = System.Security.Cryptography.ECDsa.Create();
            var request = new System.Security.Cryptography.X509Certificates.CertificateRequest("CN=test CA", key, System.Security.Cryptography.HashAlgorithmName.SHA256);
            using var ca = request.CreateSelfSigned(DateTimeOffset.UtcNow.AddDays(-1), DateTimeOffset.UtcNow.AddDays(1));
            var path = Path.Combine(directory, "ca.pem");
            File.WriteAllText(path, ca.ExportCertificatePem());
            var arguments = new CommandArguments(["--server", "https://127.0.0.1:5099", "--ca-cert", path]);

            var options = ServerChannel.CreateOptions(ClientTls.From(arguments, arguments.ServerAddress).Apply);

            using var handler = Assert.IsType<SocketsHttpHandler>(options.HttpHandler);
            var policy = handler.SslOptions.CertificateChainPolicy!;
            Assert.Null(handler.SslOptions.RemoteCertificateValidationCallback);
            Assert.Equal(System.Security.Cryptography.X509Certificates.X509ChainTrustMode.CustomRootTrust, policy.TrustMode);
            Assert.Equal(ca.Thumbprint, Assert.Single(policy.CustomTrustStore).Thumbprint);
            Assert.True(policy.DisableCertificateDownloads);
        }
        finally
        {
            Directory.Delete(directory, recursive: true);
        }
    }
}
