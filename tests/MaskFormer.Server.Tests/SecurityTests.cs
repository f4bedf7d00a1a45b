using System.Net;
using System.Net.Security;
using System.Security.Cryptography;
using System.Security.Cryptography.X509Certificates;
using Grpc.Core;
using Grpc.Health.V1;
using Grpc.Net.Client;
using Grpc.Reflection.V1Alpha;
using MaskFormer.Contracts.V1;
using MaskFormer.Server.Hosting;
using MaskFormer.Server.Tests.Observability;
using Microsoft.AspNetCore.Builder;
using Microsoft.AspNetCore.Hosting.Server;
using Microsoft.AspNetCore.Hosting.Server.Features;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.Logging;

namespace MaskFormer.Server.Tests;

/// <summary>
/// TLS, mutual TLS and bearer tokens over real HTTP/2: a CA, server and client certificates made here,
/// written as PEM files the server reads from MaskFormer:Security.
/// </summary>
public sealed class SecureServerFixture : IAsyncLifetime
{
    public const string Token = "s3cret-token-for-tests";
    private readonly string _dir = Directory.CreateTempSubdirectory("maskformer-tls-").FullName;
    private readonly X509Certificate2 _ca = CreateCa();
    private X509Certificate2 _client = null!;
    private Uri _metrics = null!;
    private WebApplication App { get; set; } = null!;
    internal Uri Address { get; private set; } = null!;
    internal Uri CleartextAddress { get; private set; } = null!;

    internal string ServerThumbprint { get; private set; } = "";

    internal string ServerKeyPath => Path.Combine(_dir, "server.key");

    internal string ServerCertificatePath => Path.Combine(_dir, "server.pem");

    /// <summary>The server's log entries at the level it runs with (Warning and above).</summary>
    internal CapturedLogs Logs { get; } = new();

    public async Task InitializeAsync()
    {
        WriteServerCertificate("CN=first");
        File.WriteAllText(Path.Combine(_dir, "ca.pem"), _ca.ExportCertificatePem());
        File.WriteAllText(Path.Combine(_dir, "tokens"), $"# test tokens\n{Token}\n");
        _client = Issue("CN=client", serverAuth: false);
        App = ServerApp.Build(
        [
            "--Kestrel:Endpoints:Grpc:Url=https://127.0.0.1:0",
            "--Kestrel:Endpoints:Probes:Url=http://127.0.0.1:0",
            $"--MaskFormer:Models:Path={RepositoryPaths.Models}",
            "--Logging:LogLevel:Default=Warning",
            "--MaskFormer:Inference:WarmUp=false",
            $"--MaskFormer:Security:CertificatePath={Path.Combine(_dir, "server.pem")}",
            $"--MaskFormer:Security:KeyPath={Path.Combine(_dir, "server.key")}",
            $"--MaskFormer:Security:ClientCaPath={Path.Combine(_dir, "ca.pem")}",
            $"--MaskFormer:Security:TokensFile={Path.Combine(_dir, "tokens")}",
            "--MaskFormer:Security:Reflection=Off",
            "--MaskFormer:Telemetry:PrometheusUrl=http://127.0.0.1:0",
        ], builder => builder.Logging.AddProvider(Logs));
        await App.StartAsync();
        _metrics = ServerFixture.MetricsAddress(App);
        var addresses = App.Services.GetRequiredService<IServer>().Features.Get<IServerAddressesFeature>()!.Addresses.Select(a => new Uri(a)).ToList();
        Address = addresses.Single(a => a.Scheme == "https");
        CleartextAddress = addresses.Single(a => a.Scheme == "http" && a.Port != _metrics.Port);
    }

    /// <summary>
    /// maskformer.tls.client_certificate_refusals for <paramref name="reason"/> on the server's Prometheus
    /// listener (0 before the first), once it reads <paramref name="expected"/> or 30 s have passed (the
    /// exporter answers a scrape from a cache of the last one for a moment).
    /// </summary>
    internal async Task<double> RefusalsCountedAsync(string reason, double? expected = null)
    {
        using var http = new HttpClient();
        var until = DateTime.UtcNow.AddSeconds(30);
        while (true)
        {
            var value = 0.0;
            foreach (var line in (await http.GetStringAsync(_metrics)).Split('\n'))
            {
                if (line.StartsWith("maskformer_tls_client_certificate_refusals_total{", StringComparison.Ordinal)
                    && line.Contains($"maskformer_tls_refusal_reason=\"{reason}\"", StringComparison.Ordinal))
                {
                    value = double.Parse(line[(line.LastIndexOf('}') + 1)..].Trim().Split(' ')[0], System.Globalization.CultureInfo.InvariantCulture);
                }
            }

            if (expected is null || value == expected || DateTime.UtcNow > until)
            {
                return value;
            }

            await Task.Delay(100);
        }
    }

    public async Task DisposeAsync()
    {
        await App.StopAsync();
        await App.DisposeAsync();
        Directory.Delete(_dir, recursive: true);
    }

    internal static Metadata Bearer(string token) => new() { { "authorization", $"Bearer {token}" } };

    /// <summary>The PEM file of the CA that issued the server's and the client's certificates.</summary>
    internal string CaPath => Path.Combine(_dir, "ca.pem");

    /// <summary>
    /// Writes <paramref name="certificate"/> (default: the client certificate the server accepts) and its key
    /// as PEM files named after <paramref name="name"/>; returns their paths.
    /// </summary>
    internal (string Certificate, string Key) WriteClientPem(string name, X509Certificate2? certificate = null)
    {
        certificate ??= _client;
        using var key = certificate.GetECDsaPrivateKey()!;
        var (certificatePath, keyPath) = (Path.Combine(_dir, $"{name}.pem"), Path.Combine(_dir, $"{name}.key"));
        File.WriteAllText(certificatePath, certificate.ExportCertificatePem());
        File.WriteAllText(keyPath, key.ExportPkcs8PrivateKeyPem());
        return (certificatePath, keyPath);
    }

    internal GrpcChannel Channel(bool withClientCertificate) => Channel(withClientCertificate ? _client : null);

    internal GrpcChannel Channel(X509Certificate2? clientCertificate)
    {
        var handler = new SocketsHttpHandler
        {
            SslOptions = new SslClientAuthenticationOptions
            {
                RemoteCertificateValidationCallback = (_, certificate, _, _) =>
                {
                    using var presented = new X509Certificate2(certificate!);
                    ServerThumbprint = presented.Thumbprint;
                    using var chain = new X509Chain();
                    chain.ChainPolicy.TrustMode = X509ChainTrustMode.CustomRootTrust;
                    chain.ChainPolicy.CustomTrustStore.Add(_ca);
                    chain.ChainPolicy.RevocationMode = X509RevocationMode.NoCheck;
                    return chain.Build(presented);
                },
                // Offline: the client builds its own certificate's chain to send, and must not fetch issuers either
                // (a test asserts the server never does).
                ClientCertificateContext = clientCertificate is null ? null : SslStreamCertificateContext.Create(clientCertificate, null, offline: true),
            },
        };
        return GrpcChannel.ForAddress(Address, new GrpcChannelOptions { HttpHandler = handler });
    }

    internal X509Certificate2 WriteServerCertificate(string subject, DateTimeOffset? notBefore = null, DateTimeOffset? notAfter = null)
    {
        var certificate = Issue(subject, serverAuth: true, notBefore: notBefore, notAfter: notAfter);
        using var key = certificate.GetECDsaPrivateKey()!;

        // Key first, then certificate: the server reloads on the certificate's change and must find both new.
        File.WriteAllText(Path.Combine(_dir, "server.key"), key.ExportPkcs8PrivateKeyPem());
        File.WriteAllText(Path.Combine(_dir, "server.pem"), certificate.ExportCertificatePem());
        File.SetLastWriteTimeUtc(Path.Combine(_dir, "server.pem"), DateTime.UtcNow.AddSeconds(Interlocked.Increment(ref s_tick)));
        return certificate;
    }

    private static int s_tick;

    /// <summary>
    /// A client certificate from a CA the server does not know, whose Authority Information Access names
    /// <paramref name="issuerUrl"/> as where to fetch its issuer (what a chain build would download).
    /// </summary>
    internal static X509Certificate2 IssueByStranger(string issuerUrl)
    {
        using var stranger = CreateCa("CN=Stranger CA");
        var key = ECDsa.Create(ECCurve.NamedCurves.nistP256);
        var request = new CertificateRequest("CN=stranger", key, HashAlgorithmName.SHA256);
        request.CertificateExtensions.Add(new X509EnhancedKeyUsageExtension([new Oid("1.3.6.1.5.5.7.3.2")], false));
        request.CertificateExtensions.Add(new X509AuthorityInformationAccessExtension(null, [issuerUrl]));
        using var issued = request.Create(stranger, DateTimeOffset.UtcNow.AddDays(-1), DateTimeOffset.UtcNow.AddDays(7), RandomNumberGenerator.GetBytes(16));
        return X509CertificateLoader.LoadPkcs12(issued.CopyWithPrivateKey(key).Export(X509ContentType.Pkcs12), null);
    }

    /// <summary>The CA that issued the server's and the client's certificates.</summary>
    internal X509Certificate2 Ca => _ca;

    /// <summary>A client certificate, with its key, issued by <paramref name="ca"/> (valid from yesterday for a week unless told).</summary>
    internal static X509Certificate2 IssueClient(X509Certificate2 ca, string subject, DateTimeOffset? notBefore = null, DateTimeOffset? notAfter = null)
    {
        var key = ECDsa.Create(ECCurve.NamedCurves.nistP256);
        var request = new CertificateRequest(subject, key, HashAlgorithmName.SHA256);
        request.CertificateExtensions.Add(new X509EnhancedKeyUsageExtension([new Oid("1.3.6.1.5.5.7.3.2")], false));
        using var issued = request.Create(ca, notBefore ?? DateTimeOffset.UtcNow.AddDays(-1), notAfter ?? DateTimeOffset.UtcNow.AddDays(7), RandomNumberGenerator.GetBytes(16));
        return X509CertificateLoader.LoadPkcs12(issued.CopyWithPrivateKey(key).Export(X509ContentType.Pkcs12), null);
    }

    internal static X509Certificate2 CreateCa(string subject = "CN=MaskFormer test CA", DateTimeOffset? notBefore = null, DateTimeOffset? notAfter = null)
    {
        using var key = ECDsa.Create(ECCurve.NamedCurves.nistP256);
        var request = new CertificateRequest(subject, key, HashAlgorithmName.SHA256);
        request.CertificateExtensions.Add(new X509BasicConstraintsExtension(true, false, 0, true));
        request.CertificateExtensions.Add(new X509KeyUsageExtension(X509KeyUsageFlags.KeyCertSign | X509KeyUsageFlags.CrlSign, true));
        return request.CreateSelfSigned(notBefore ?? DateTimeOffset.UtcNow.AddDays(-1), notAfter ?? DateTimeOffset.UtcNow.AddDays(30));
    }

    /// <summary>
    /// A server certificate from this fixture's CA that names only <paramref name="dnsName"/>, written with
    /// its key as PEM files in this fixture's folder; returns their paths.
    /// </summary>
    internal (string Certificate, string Key) WriteServerPemFor(string dnsName) => WriteServerPem($"server-{dnsName}", dnsName);

    /// <summary>
    /// A server certificate from this fixture's CA (for <paramref name="dnsName"/> alone, else the loopback
    /// address and localhost; valid from yesterday for a week unless told), written with its key as NAME.pem
    /// and NAME.key in this fixture's folder; returns their paths.
    /// </summary>
    internal (string Certificate, string Key) WriteServerPem(string name, string? dnsName = null, DateTimeOffset? notBefore = null, DateTimeOffset? notAfter = null)
    {
        using var certificate = Issue(dnsName is null ? "CN=127.0.0.1" : $"CN={dnsName}", serverAuth: true, dnsName, notBefore, notAfter);
        using var key = certificate.GetECDsaPrivateKey()!;
        var (certificatePath, keyPath) = (Path.Combine(_dir, $"{name}.pem"), Path.Combine(_dir, $"{name}.key"));
        File.WriteAllText(certificatePath, certificate.ExportCertificatePem());
        File.WriteAllText(keyPath, key.ExportPkcs8PrivateKeyPem());
        return (certificatePath, keyPath);
    }

    // A server certificate names the loopback address and localhost unless given the one name it holds.
    private X509Certificate2 Issue(string subject, bool serverAuth, string? onlyName = null, DateTimeOffset? notBefore = null, DateTimeOffset? notAfter = null)
    {
        var key = ECDsa.Create(ECCurve.NamedCurves.nistP256);
        var request = new CertificateRequest(subject, key, HashAlgorithmName.SHA256);
        request.CertificateExtensions.Add(new X509BasicConstraintsExtension(false, false, 0, false));
        request.CertificateExtensions.Add(new X509EnhancedKeyUsageExtension(
            [serverAuth ? new Oid("1.3.6.1.5.5.7.3.1") : new Oid("1.3.6.1.5.5.7.3.2")], false));
        if (serverAuth)
        {
            var names = new SubjectAlternativeNameBuilder();
            if (onlyName is null)
            {
                names.AddIpAddress(IPAddress.Loopback);
                names.AddDnsName("localhost");
            }
            else
            {
                names.AddDnsName(onlyName);
            }

            request.CertificateExtensions.Add(names.Build());
        }

        var serial = RandomNumberGenerator.GetBytes(16);
        using var issued = request.Create(_ca, notBefore ?? DateTimeOffset.UtcNow.AddDays(-1), notAfter ?? DateTimeOffset.UtcNow.AddDays(7), serial);
        var withKey = issued.CopyWithPrivateKey(key);

        // Windows-style ephemeral keys cannot be used by SslStream for client auth; a PKCS#12 round trip can.
        return X509CertificateLoader.LoadPkcs12(withKey.Export(X509ContentType.Pkcs12), null);
    }
}

/// <summary>TLS, mutual TLS, bearer tokens, health open, reflection off and certificate reload.</summary>
[Collection(ServerTestGroup.Name)]
public sealed class SecurityTests(SecureServerFixture fixture) : IClassFixture<SecureServerFixture>
{
    [Fact]
    public async Task ListModels_TlsWithClientCertificateAndToken_Succeeds()
    {
        using var channel = fixture.Channel(withClientCertificate: true);
        var client = new SegmentationService.SegmentationServiceClient(channel);

        var response = await client.ListModelsAsync(new ListModelsRequest(), SecureServerFixture.Bearer(SecureServerFixture.Token));

        Assert.NotEmpty(response.Models);
    }

    [Theory]
    [InlineData(null)]
    [InlineData("wrong-token")]
    [InlineData("s3cret-token-for-test")]
    public async Task ListModels_MissingOrWrongToken_Unauthenticated(string? token)
    {
        using var channel = fixture.Channel(withClientCertificate: true);
        var client = new SegmentationService.SegmentationServiceClient(channel);

        var error = await Assert.ThrowsAsync<RpcException>(async () => await client.ListModelsAsync(new ListModelsRequest(), token is null ? [] : SecureServerFixture.Bearer(token)));

        Assert.Equal(StatusCode.Unauthenticated, error.StatusCode);
        Assert.DoesNotContain(SecureServerFixture.Token, error.Status.Detail, StringComparison.Ordinal);
    }

    [Fact]
    public async Task HealthCheck_NoToken_OpenWhileMethodsAreClosed()
    {
        using var channel = fixture.Channel(withClientCertificate: true);

        var response = await new Grpc.Health.V1.Health.HealthClient(channel).CheckAsync(new HealthCheckRequest { Service = "liveness" });

        Assert.Equal(HealthCheckResponse.Types.ServingStatus.Serving, response.Status);
    }

    [Fact]
    public async Task Reflection_Off_Unimplemented()
    {
        using var channel = fixture.Channel(withClientCertificate: true);
        using var call = new ServerReflection.ServerReflectionClient(channel).ServerReflectionInfo(
            SecureServerFixture.Bearer(SecureServerFixture.Token), deadline: DateTime.UtcNow.AddSeconds(30));

        // The server answers an unknown method at once, without reading a request: a request written
        // first could meet the stream already reset and fail as Cancelled (seen once in CI). Where
        // reflection is on, the call waits for a request and ends at its deadline instead.
        var error = await Assert.ThrowsAsync<RpcException>(async () => await call.ResponseStream.MoveNext(CancellationToken.None));

        Assert.Equal(StatusCode.Unimplemented, error.StatusCode);
    }

    [Fact]
    public async Task Call_ClientCertificateOfAnUnknownCaNamingItsIssuerUrl_RejectedWithoutFetchingIt()
    {
        // Before any authentication, a handshake must not make the server fetch a URL the client chose.
        using var listener = new System.Net.Sockets.TcpListener(IPAddress.Loopback, 0);
        listener.Start();
        var issuerUrl = $"http://127.0.0.1:{((IPEndPoint)listener.LocalEndpoint).Port}/issuer.crt";
        using var stranger = SecureServerFixture.IssueByStranger(issuerUrl);
        using var channel = fixture.Channel(stranger);
        var client = new SegmentationService.SegmentationServiceClient(channel);

        var error = await Assert.ThrowsAsync<RpcException>(async () => await client.ListModelsAsync(new ListModelsRequest(), SecureServerFixture.Bearer(SecureServerFixture.Token)));

        // Refused by the TLS layer: the client's own transport error, Unavailable or Internal by when the
        // refusal reaches it (as Call_WithoutClientCertificate_Rejected explains; CI saw both).
        Assert.Contains(error.StatusCode, new[] { StatusCode.Unavailable, StatusCode.Internal });
        Assert.NotNull(error.Status.DebugException);
        Assert.False(listener.Pending(), $"the server connected to {issuerUrl} while validating the client's certificate");
    }

    [Fact]
    public async Task Call_WithoutClientCertificate_Rejected()
    {
        using var channel = fixture.Channel(withClientCertificate: false);
        var client = new SegmentationService.SegmentationServiceClient(channel);

        var error = await Assert.ThrowsAsync<RpcException>(async () => await client.ListModelsAsync(new ListModelsRequest(), SecureServerFixture.Bearer(SecureServerFixture.Token)));

        // The TLS layer refuses the connection, so no gRPC status ever comes from the server: the client
        // reports its own transport error, Unavailable when the refusal reaches it while sending and
        // Internal when (TLS 1.3: the client's handshake is already done) it arrives while reading the answer.
        Assert.Contains(error.StatusCode, new[] { StatusCode.Unavailable, StatusCode.Internal });
        Assert.NotNull(error.Status.DebugException);
    }

    [Fact]
    public async Task Call_Cleartext_OnTlsEndpoint_Refused()
    {
        using var channel = GrpcChannel.ForAddress(new UriBuilder(fixture.Address) { Scheme = "http" }.Uri);
        var client = new SegmentationService.SegmentationServiceClient(channel);

        var error = await Assert.ThrowsAsync<RpcException>(async () => await client.ListModelsAsync(new ListModelsRequest(), SecureServerFixture.Bearer(SecureServerFixture.Token), deadline: DateTime.UtcNow.AddSeconds(30)));

        Assert.NotEqual(StatusCode.OK, error.StatusCode);
        Assert.NotEqual(StatusCode.Unauthenticated, error.StatusCode);
    }

    [Fact]
    public async Task CleartextEndpoint_WithTlsConfigured_ServesHealthOnly()
    {
        using var channel = GrpcChannel.ForAddress(fixture.CleartextAddress);
        var client = new SegmentationService.SegmentationServiceClient(channel);

        var health = await new Grpc.Health.V1.Health.HealthClient(channel).CheckAsync(new HealthCheckRequest { Service = "liveness" });
        var error = await Assert.ThrowsAsync<RpcException>(async () => await client.ListModelsAsync(new ListModelsRequest(), SecureServerFixture.Bearer(SecureServerFixture.Token)));

        Assert.Equal(HealthCheckResponse.Types.ServingStatus.Serving, health.Status);
        Assert.Equal(StatusCode.PermissionDenied, error.StatusCode);
    }

    [Fact]
    public async Task Handshake_AfterCertificateFilesChange_ServesTheNewCertificate()
    {
        using (var before = fixture.Channel(withClientCertificate: true))
        {
            await new Grpc.Health.V1.Health.HealthClient(before).CheckAsync(new HealthCheckRequest());
        }

        var first = fixture.ServerThumbprint;
        var renewed = fixture.WriteServerCertificate("CN=renewed");
        using var after = fixture.Channel(withClientCertificate: true);

        await new Grpc.Health.V1.Health.HealthClient(after).CheckAsync(new HealthCheckRequest());

        Assert.NotEqual(first, renewed.Thumbprint);
        Assert.Equal(renewed.Thumbprint, fixture.ServerThumbprint);
    }

    [Fact]
    public async Task Handshake_ClientCaFileChanges_TrustsItsCasWithoutRestart()
    {
        using var second = SecureServerFixture.CreateCa("CN=Second test CA");
        using var secondClient = SecureServerFixture.IssueClient(second, "CN=second-client");
        Assert.NotEqual(StatusCode.OK, await ListModelsAsync(secondClient));

        // The renewed secret's ca.crt names a second CA beside the first: its clients are let in at the next
        // handshake (the file used to be read once, at start); the first CA's clients still are.
        var original = await File.ReadAllTextAsync(fixture.CaPath);
        await File.WriteAllTextAsync(fixture.CaPath, original + "\n" + second.ExportCertificatePem());
        try
        {
            Assert.Equal(StatusCode.OK, await ListModelsAsync(secondClient));
            Assert.Equal(StatusCode.OK, await ListModelsAsync(null));
        }
        finally
        {
            await File.WriteAllTextAsync(fixture.CaPath, original);
        }

        Assert.NotEqual(StatusCode.OK, await ListModelsAsync(secondClient));
    }

    // ListModels with the token, over a new connection with this client certificate (null: the fixture's).
    private async Task<StatusCode> ListModelsAsync(X509Certificate2? clientCertificate)
    {
        using var channel = clientCertificate is null ? fixture.Channel(withClientCertificate: true) : fixture.Channel(clientCertificate);
        try
        {
            await new SegmentationService.SegmentationServiceClient(channel).ListModelsAsync(new ListModelsRequest(), SecureServerFixture.Bearer(SecureServerFixture.Token), deadline: DateTime.UtcNow.AddSeconds(30));
            return StatusCode.OK;
        }
        catch (RpcException ex)
        {
            return ex.StatusCode;
        }
    }

    [Fact]
    public async Task Handshake_KeyFileGone_ServesTheCertificateLoadedLast()
    {
        using (var before = fixture.Channel(withClientCertificate: true))
        {
            await new Grpc.Health.V1.Health.HealthClient(before).CheckAsync(new HealthCheckRequest());
        }

        // A key moved away (a secret being replaced): every new handshake used to fail, silently.
        var key = fixture.ServerKeyPath;
        File.Move(key, key + ".away");
        try
        {
            using var during = fixture.Channel(withClientCertificate: true);
            var answer = await new Grpc.Health.V1.Health.HealthClient(during).CheckAsync(new HealthCheckRequest());
            Assert.Equal(HealthCheckResponse.Types.ServingStatus.Serving, answer.Status);
        }
        finally
        {
            File.Move(key + ".away", key);
        }
    }
}
