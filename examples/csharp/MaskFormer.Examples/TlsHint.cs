using System.Globalization;
using System.Net.Security;
using System.Net.Sockets;
using System.Security.Authentication;
using System.Security.Cryptography;
using System.Security.Cryptography.X509Certificates;

namespace MaskFormer.Examples;

/// <summary>
/// What to change when the first call failed at or just after connecting, as the CLI says it
/// (src/MaskFormer.Cli/Commands/ClientTls.cs, trimmed): the other scheme when the server speaks the other
/// protocol, an expired client certificate with its date, else the CA and client certificate to check.
/// </summary>
internal static class TlsHint
{
    private static readonly TimeSpan s_probeTimeout = TimeSpan.FromSeconds(2);

    /// <summary>" (...)" to add to the failure's message, or "" when nothing was listening or there is nothing to say.</summary>
    public static async Task<string> ForAsync(Uri address, Exception? error, CancellationToken cancellationToken)
    {
        if (error is null || NothingListening(error))
        {
            return "";
        }

        if (address.Scheme != Uri.UriSchemeHttps)
        {
            // A TLS server ends a cleartext connection without a word: only a handshake of our own tells.
            return await ShowsACertificateAsync(address, cancellationToken)
                ? $" (the server there speaks TLS: use https://{address.Authority}, with MASKFORMER_CA_CERT for a private CA)"
                : "";
        }

        if (ClientCertificateExpired() is { } expired)
        {
            return $" ({expired})";
        }

        if (Find<AuthenticationException>(error) is not null)
        {
            // A cleartext server answers a ClientHello with an HTTP/2 frame: "a corrupted frame was received".
            return await ShowsACertificateAsync(address, cancellationToken)
                ? " (the TLS handshake failed: is the server's certificate issued by a CA in MASKFORMER_CA_CERT, or the system's?)"
                : $" (the TLS handshake failed: the server there speaks cleartext, not TLS: use http://{address.Authority})";
        }

        // With TLS 1.3 a server that wants a client certificate, and got none or one it does not trust, ends
        // the connection after the handshake.
        return ServerConnection.Variable("MASKFORMER_CLIENT_CERT") is { } certificate
            ? $" (the server ended the connection after the TLS handshake: does it trust the CA that issued MASKFORMER_CLIENT_CERT {certificate}?)"
            : " (the server ended the connection after the TLS handshake: does it want a client certificate? Set MASKFORMER_CLIENT_CERT and MASKFORMER_CLIENT_KEY)";
    }

    // Whether a TLS handshake with the address gets as far as the server's certificate (then refused: the
    // probe sends nothing else).
    private static async Task<bool> ShowsACertificateAsync(Uri address, CancellationToken cancellationToken)
    {
        using var timeout = CancellationTokenSource.CreateLinkedTokenSource(cancellationToken);
        timeout.CancelAfter(s_probeTimeout);
        var shown = false;
        try
        {
            using var tcp = new TcpClient();
            await tcp.ConnectAsync(address.IdnHost, address.Port, timeout.Token);
            await using var tls = new SslStream(tcp.GetStream());
            var options = new SslClientAuthenticationOptions
            {
                TargetHost = address.IdnHost,
                RemoteCertificateValidationCallback = (_, certificate, _, _) =>
                {
                    shown = certificate is not null;
                    return false;
                },
            };
            await tls.AuthenticateAsClientAsync(options, timeout.Token);
        }
        catch (Exception ex) when (ex is IOException or SocketException or AuthenticationException or OperationCanceledException)
        {
            // Refused, as meant, or no TLS there.
        }

        return shown;
    }

    // A server checks a client certificate's dates too, and an expired one is the likelier fault: checked
    // only after a failure, since a server that asks for no client certificate answers a client holding one.
    private static string? ClientCertificateExpired()
    {
        if (ServerConnection.Variable("MASKFORMER_CLIENT_CERT") is not { } path)
        {
            return null;
        }

        var certificates = new X509Certificate2Collection();
        try
        {
            certificates.ImportFromPemFile(path);
            var notAfter = certificates.Count > 0 ? certificates[0].NotAfter.ToUniversalTime() : DateTime.MaxValue;
            return DateTime.UtcNow > notAfter
                ? string.Create(CultureInfo.InvariantCulture, $"MASKFORMER_CLIENT_CERT {path} expired at {notAfter:u}; renew it")
                : null;
        }
        catch (Exception ex) when (ex is IOException or UnauthorizedAccessException or CryptographicException)
        {
            return null;
        }
        finally
        {
            foreach (var certificate in certificates)
            {
                certificate.Dispose();
            }
        }
    }

    // Refused or unroutable: nothing to do with TLS. (Not a reset: a server refusing a client certificate
    // after a TLS 1.3 handshake may reset the connection.)
    private static bool NothingListening(Exception error) => Find<SocketException>(error) is
    {
        SocketErrorCode: SocketError.ConnectionRefused or SocketError.HostNotFound or SocketError.TimedOut or SocketError.NetworkUnreachable
            or SocketError.HostUnreachable or SocketError.TryAgain or SocketError.NoData or SocketError.AddressNotAvailable,
    };

    private static T? Find<T>(Exception? exception)
        where T : Exception
    {
        for (; exception is not null; exception = exception.InnerException)
        {
            if (exception is T found)
            {
                return found;
            }
        }

        return null;
    }
}
