using System.Diagnostics;
using System.Globalization;
using System.Net.Security;
using System.Security.Cryptography;
using System.Security.Cryptography.X509Certificates;
using Grpc.Core;
using Grpc.Net.Client;
using MaskFormer.Contracts.V1;

namespace MaskFormer.Examples;

/// <summary>
/// The channel to the server, as every client of this repository opens it: the address from --server, else
/// $MASKFORMER_ADDRESS, else 127.0.0.1:5081, as host:port or http(s)://host[:port]; $MASKFORMER_TOKEN as a
/// bearer token on every call; for https://, $MASKFORMER_CA_CERT (PEM CA certificates trusted instead of the
/// system's) and $MASKFORMER_CLIENT_CERT with $MASKFORMER_CLIENT_KEY (mutual TLS).
/// </summary>
internal static class ServerConnection
{
    public const string DefaultAddress = "127.0.0.1:5081";

    // How long the attempt made at --connect-timeout has to connect: a refused connection fails well within it,
    // and a server that has just come up answers.
    private static readonly TimeSpan s_lastAttemptTime = TimeSpan.FromSeconds(1);

    /// <summary>The address the command was given, as the user wrote it (error messages name it so).</summary>
    public static string Address(CommandLine line) =>
        line.Get("server", "") is { Length: > 0 } given ? given
        : Environment.GetEnvironmentVariable("MASKFORMER_ADDRESS") is { Length: > 0 } fromEnvironment ? fromEnvironment
        : DefaultAddress;

    /// <summary>
    /// Opens a channel to <paramref name="address"/> and makes sure a server answers there: the first attempt
    /// that fails (nothing listening, a failed TLS handshake) throws <see cref="ConnectionException"/> at once,
    /// unless <paramref name="waitForServer"/>, which tries again until <paramref name="timeout"/> (the last
    /// attempt at it, with a second of its own to connect), except after
    /// a failure that waiting cannot change (<see cref="TlsHint.WaitingCannotHelp"/>: a certificate refused,
    /// the other scheme), said at once as without waiting.
    /// </summary>
    public static async Task<GrpcChannel> ConnectAsync(string address, TimeSpan timeout, bool waitForServer, CancellationToken cancellationToken)
    {
        var uri = ToUri(address);
        var channel = GrpcChannel.ForAddress(uri, new GrpcChannelOptions
        {
            HttpHandler = CreateHandler(uri),
            DisposeHttpClient = true,

            // A result's size is the server's to bound: instance masks of a large image pass the default 4 MB.
            MaxReceiveMessageSize = null,

            // A server that went away is tried again at least every 4 s (the default waits up to 2 minutes),
            // so a stream reconnecting finds its replacement soon after it is up.
            InitialReconnectBackoff = TimeSpan.FromMilliseconds(250),
            MaxReconnectBackoff = TimeSpan.FromSeconds(4),
        });
        try
        {
            await ProbeAsync(channel, address, uri, timeout, waitForServer, cancellationToken);
            return channel;
        }
        catch
        {
            channel.Dispose();
            throw;
        }
    }

    // Any answer from the server, even an error status (UNAUTHENTICATED without a token), means it is there.
    // Waiting, the last attempt comes at the timeout (as the CLI's health --wait), so that "within N s" is
    // true: a server up by then is found, and no backoff too long for the time left ends the wait early.
    private static async Task ProbeAsync(GrpcChannel channel, string address, Uri uri, TimeSpan timeout, bool waitForServer, CancellationToken cancellationToken)
    {
        var client = new SegmentationService.SegmentationServiceClient(channel);
        var started = Stopwatch.GetTimestamp();
        var endedBefore = false;
        var atTheTimeout = false;
        for (var failures = 0; ; failures++)
        {
            var left = atTheTimeout ? s_lastAttemptTime : timeout - Stopwatch.GetElapsedTime(started);
            try
            {
                await client.ListModelsAsync(new ListModelsRequest(), deadline: DateTime.UtcNow.Add(left), cancellationToken: cancellationToken);
                return;
            }
            catch (RpcException ex) when (ex.StatusCode == StatusCode.DeadlineExceeded && !cancellationToken.IsCancellationRequested)
            {
                throw new ConnectionException(string.Create(CultureInfo.InvariantCulture, $"cannot reach the MaskFormer server at {address} within {timeout.TotalSeconds:0.###} s"));
            }
            catch (RpcException ex) when (RetryingCall.FromServer(ex))
            {
                return;
            }
            catch (RpcException ex) when (!cancellationToken.IsCancellationRequested)
            {
                var failure = await TlsHint.DiagnoseAsync(uri, ex.Status.DebugException, cancellationToken);
                var lasting = TlsHint.WaitingCannotHelp(failure, endedBefore);
                endedBefore = failure == ConnectFailure.EndedAfterHandshake;
                var untilTheTimeout = timeout - Stopwatch.GetElapsedTime(started);
                if (waitForServer && !lasting && !atTheTimeout && untilTheTimeout > TimeSpan.Zero)
                {
                    var delay = RetryingCall.Backoff(failures);
                    atTheTimeout = delay >= untilTheTimeout;
                    await Task.Delay(atTheTimeout ? untilTheTimeout : delay, cancellationToken);
                    continue;
                }

                var hint = TlsHint.For(failure, uri);
                throw new ConnectionException(waitForServer && !lasting
                    ? string.Create(CultureInfo.InvariantCulture, $"cannot reach the MaskFormer server at {address} within {timeout.TotalSeconds:0.###} s: {Reason(ex)}{hint}")
                    : $"cannot reach the MaskFormer server at {address}: {Reason(ex)}{hint}");
            }
        }
    }

    /// <summary>gRPC's status and the transport's innermost error ("Connection refused").</summary>
    public static string Reason(RpcException exception)
    {
        var inner = exception.Status.DebugException;
        while (inner?.InnerException is not null)
        {
            inner = inner.InnerException;
        }

        var reason = inner is null || exception.Status.Detail.Contains(inner.Message, StringComparison.Ordinal)
            ? exception.Status.Detail
            : $"{exception.Status.Detail} ({inner.Message})";

        // One line: some exceptions' messages carry a second ("Object name: ...").
        return reason.ReplaceLineEndings(" ");
    }

    // host:port is http; a URL without a port takes its scheme's (80, 443).
    private static Uri ToUri(string address)
    {
        if (AddressProblem(address) is { } problem)
        {
            throw new ConnectionException(problem);
        }

        var text = address.Contains("://", StringComparison.Ordinal) ? address : $"http://{address}";
        return Uri.TryCreate(text, UriKind.Absolute, out var uri) && uri.Scheme is "http" or "https" && uri.Port > 0
            ? uri
            : throw new ConnectionException($"{address} is not a server address: give host:port, http://host:port or https://host:port");
    }

    // What every client here says of an address it refuses, in the same words, before anything is tried: left
    // to each client's parsing these were late connect errors, connections to another address, or another
    // message per client.
    private static string Refused(string address, string why) =>
        $"--server (or MASKFORMER_ADDRESS) takes host:port or http(s)://host[:port]; {address} {why}";

    // What is wrong with an address, the first thing in reading order, or null: a scheme other than http(s), a path,
    // a host without a port or scheme, no host, a URL's host with a ':' outside brackets, a port that is not one. A
    // URL without a port takes its scheme's; slashes at the end are no path.
    private static string? AddressProblem(string address)
    {
        // "://" after another '/' is in a path, not after a scheme.
        var schemeEnd = address.IndexOf("://", StringComparison.Ordinal);
        var hasScheme = schemeEnd >= 0 && address.IndexOf('/', StringComparison.Ordinal) == schemeEnd + 1;
        if (hasScheme && address[..schemeEnd] is not ("http" or "https"))
        {
            return Refused(address, $"has scheme \"{address[..schemeEnd]}\", which is not http or https");
        }

        var rest = (hasScheme ? address[(schemeEnd + 3)..] : address).TrimEnd('/');
        var pathStart = rest.IndexOf('/', StringComparison.Ordinal);
        if (pathStart >= 0)
        {
            // A gRPC call's path is its method's (/maskformer.v1.SegmentationService/Segment).
            return Refused(address, $"has path \"{rest[pathStart..]}\", which a gRPC address cannot have");
        }

        var (host, port) = SplitHostPort(rest);
        return port switch
        {
            // As http:// it would be port 80, and gRPC's own clients take 443 (even for cleartext).
            null when !hasScheme => Refused(address, "has no port (the service listens on 5081 unless told otherwise)"),
            _ when host is "" or "[]" => Refused(address, "has no host"),
            null when host.Contains(':', StringComparison.Ordinal) && !(host.StartsWith('[') && host.EndsWith(']')) => Refused(address, $"has host \"{host}\": an IPv6 host goes in brackets ([::1]:5081)"),
            { } given when !IsPortNumber(given) => Refused(address, $"has port \"{given}\", which is not a number from 1 to 65535"),
            _ => null,
        };
    }

    // The host and the text after its colon (null without one): an IPv6 address takes its port after brackets
    // ("[::1]:5081"); without them ("::1") it is a host alone.
    private static (string Host, string? Port) SplitHostPort(string hostAndPort)
    {
        if (hostAndPort.StartsWith('['))
        {
            var end = hostAndPort.IndexOf("]:", StringComparison.Ordinal);
            return end < 0 ? (hostAndPort, null) : (hostAndPort[..(end + 1)], hostAndPort[(end + 2)..]);
        }

        var colon = hostAndPort.IndexOf(':', StringComparison.Ordinal);
        return colon >= 0 && colon == hostAndPort.LastIndexOf(':')
            ? (hostAndPort[..colon], hostAndPort[(colon + 1)..])
            : (hostAndPort, null);
    }

    private static bool IsPortNumber(string port) =>
        port.Length is > 0 and <= 5 && port.All(char.IsAsciiDigit) && int.Parse(port, CultureInfo.InvariantCulture) is >= 1 and <= 65535;

    // Kestrel can lose an answer for good when the client's flow control resumes it after its last write
    // (dotnet/aspnetcore#53736): a stream window larger than an answer avoids that. The handler is what
    // GrpcChannel would create otherwise.
    private static HttpMessageHandler CreateHandler(Uri uri)
    {
        var handler = new SocketsHttpHandler { EnableMultipleHttp2Connections = true, InitialHttp2StreamWindowSize = 16 << 20 };
        try
        {
            ConfigureTls(handler, uri);
        }
        catch
        {
            handler.Dispose();
            throw;
        }

        return Environment.GetEnvironmentVariable("MASKFORMER_TOKEN") is { Length: > 0 } token
            ? new BearerToken(token) { InnerHandler = handler }
            : handler;
    }

    private static void ConfigureTls(SocketsHttpHandler handler, Uri uri)
    {
        var ca = Variable("MASKFORMER_CA_CERT");
        var certificate = Variable("MASKFORMER_CLIENT_CERT");
        var key = Variable("MASKFORMER_CLIENT_KEY");
        if ((certificate is null) != (key is null))
        {
            throw new ConnectionException("MASKFORMER_CLIENT_CERT and MASKFORMER_CLIENT_KEY go together; only one is set");
        }

        if (ca is null && certificate is null)
        {
            return;
        }

        if (uri.Scheme != Uri.UriSchemeHttps)
        {
            throw new ConnectionException($"a CA or client certificate needs an https:// server address; {uri.Authority} is cleartext");
        }

        var ssl = new SslClientAuthenticationOptions { CertificateChainPolicy = ServerCertificatePolicy() };

        if (certificate is not null)
        {
            var chain = ReadCertificates(certificate, "MASKFORMER_CLIENT_CERT");
            try
            {
                var leaf = X509Certificate2.CreateFromPemFile(certificate, key);
                if (OperatingSystem.IsWindows())
                {
                    // Windows' TLS cannot sign with a key loaded from PEM (an ephemeral key); a PKCS#12 round
                    // trip gives it one it can, kept only for this process (nothing goes to the key store).
                    using var ephemeral = leaf;
                    leaf = X509CertificateLoader.LoadPkcs12(ephemeral.Export(X509ContentType.Pkcs12), null, X509KeyStorageFlags.EphemeralKeySet);
                }

                ssl.ClientCertificateContext = SslStreamCertificateContext.Create(leaf, new X509Certificate2Collection(chain[1..]), offline: true);
            }
            catch (Exception ex) when (ex is IOException or UnauthorizedAccessException)
            {
                // The certificate was read above: the key's file is the one missing.
                throw new ConnectionException($"cannot read MASKFORMER_CLIENT_KEY {key}: {ex.Message}");
            }
            catch (Exception ex) when (ex is CryptographicException or ArgumentException)
            {
                throw new ConnectionException($"MASKFORMER_CLIENT_KEY {key} is not the PEM private key of MASKFORMER_CLIENT_CERT {certificate} ({ex.Message})");
            }
        }

        handler.SslOptions = ssl;
    }

    /// <summary>
    /// How the server's certificate is checked (<see cref="TlsHint"/>'s probe checks it so too):
    /// MASKFORMER_CA_CERT's certificates as the only roots, no revocation lookups or downloads; null, the system's.
    /// </summary>
    public static X509ChainPolicy? ServerCertificatePolicy()
    {
        if (Variable("MASKFORMER_CA_CERT") is not { } ca)
        {
            return null;
        }

        var policy = new X509ChainPolicy { TrustMode = X509ChainTrustMode.CustomRootTrust, RevocationMode = X509RevocationMode.NoCheck, DisableCertificateDownloads = true };
        policy.CustomTrustStore.AddRange(ReadCertificates(ca, "MASKFORMER_CA_CERT"));
        return policy;
    }

    public static string? Variable(string name) => Environment.GetEnvironmentVariable(name) is { Length: > 0 } value ? value : null;

    private static X509Certificate2[] ReadCertificates(string path, string variable)
    {
        var certificates = new X509Certificate2Collection();
        try
        {
            certificates.ImportFromPemFile(path);
        }
        catch (Exception ex) when (ex is CryptographicException or IOException or UnauthorizedAccessException)
        {
            throw new ConnectionException($"cannot read {variable} {path}: {ex.Message}");
        }

        return certificates.Count > 0 ? [.. certificates] : throw new ConnectionException($"{variable} {path} holds no PEM certificate");
    }
}

/// <summary>The server cannot be reached, or the connection settings cannot be used: exit code 2.</summary>
internal sealed class ConnectionException(string message) : Exception(message);

/// <summary>Adds "authorization: Bearer &lt;token&gt;" to every call (a server with MaskFormer:Security:TokensFile wants one).</summary>
internal sealed class BearerToken(string token) : DelegatingHandler
{
    protected override Task<HttpResponseMessage> SendAsync(HttpRequestMessage request, CancellationToken cancellationToken)
    {
        request.Headers.Authorization = new("Bearer", token);
        return base.SendAsync(request, cancellationToken);
    }
}
