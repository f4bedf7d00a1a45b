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
/// protocol; after a failed handshake, only the side that refused (the server's certificate when this client's
/// check refuses it, else this client's, with an expired one's date), both only when that cannot be told. The
/// same diagnosis says whether waiting for the server (--wait-for-server) could change the answer.
/// </summary>
internal static class TlsHint
{
    /// <summary>
    /// Why an attempt to connect failed, from its error and, where that does not say, a TLS handshake of our
    /// own (<see cref="TlsProbe"/>): after a failed handshake, the certificate the server shows checked as the
    /// call checked it tells which side refused.
    /// </summary>
    public static async Task<ConnectFailure> DiagnoseAsync(Uri address, Exception? error, CancellationToken cancellationToken)
    {
        if (error is null || NothingListening(error))
        {
            return ConnectFailure.NothingListening;
        }

        if (address.Scheme != Uri.UriSchemeHttps)
        {
            // A TLS server ends a cleartext connection without a word: only a handshake of our own tells.
            return (await TlsProbe.AnswerAsync(address, null, cancellationToken)).IsTls is true ? ConnectFailure.SpeaksTls : ConnectFailure.Unexplained;
        }

        if (Find<AuthenticationException>(error) is not null)
        {
            // A cleartext server answers a ClientHello with an HTTP/2 frame: "a corrupted frame was received".
            // This client checks the server's certificate before it sends one of its own: a certificate this
            // check refuses is what failed; one it passes, this client's (with TLS 1.2 a server refuses a client
            // certificate, or the want of one, in the handshake).
            var answer = await TlsProbe.AnswerAsync(address, ServerCertificatePolicyOrNull(), cancellationToken);
            return answer switch
            {
                { IsTls: false } => ConnectFailure.SpeaksCleartext,
                { CertificateErrors: SslPolicyErrors.None } => ConnectFailure.ClientCertificateRefused,
                { CertificateErrors: not null } => ConnectFailure.ServerCertificateRefused,
                _ => ConnectFailure.HandshakeRefused,
            };
        }

        return ConnectFailure.EndedAfterHandshake;
    }

    /// <summary>
    /// Whether waiting cannot change <paramref name="failure"/>, so --wait-for-server should say it at once
    /// instead of trying again until --connect-timeout; <paramref name="endedBefore"/>: the attempt before
    /// ended after its handshake too.
    /// </summary>
    public static bool WaitingCannotHelp(ConnectFailure failure, bool endedBefore) => failure switch
    {
        // What a server still starting gives: nothing listening yet, its name not in DNS yet, no route yet.
        ConnectFailure.NothingListening => false,

        // A cleartext connection closed or reset without a TLS server behind it: a server starting or
        // stopping may do that; nothing says it will go on.
        ConnectFailure.Unexplained => false,

        // The server speaks the other protocol: its scheme is its configuration, which a restart keeps.
        ConnectFailure.SpeaksTls or ConnectFailure.SpeaksCleartext => true,

        // A certificate refused (not from the CA trusted, another host's name, out of date): a server
        // starting presents the certificate it will keep presenting, and trusts the CAs it will keep trusting.
        ConnectFailure.ServerCertificateRefused or ConnectFailure.ClientCertificateRefused or ConnectFailure.HandshakeRefused => true,

        // With TLS 1.3 a server that refuses this client's certificate (or wants one and got none) ends the
        // connection after the handshake; a server shutting down ends a connection it has just accepted
        // once too, so only the second in a row says the server refuses this client (as the CLI's health --wait).
        ConnectFailure.EndedAfterHandshake => endedBefore,
        _ => false,
    };

    /// <summary>" (...)" to add to the failure's message, or "" when nothing was listening or there is nothing to say.</summary>
    public static string For(ConnectFailure failure, Uri address)
    {
        switch (failure)
        {
            case ConnectFailure.SpeaksTls:
                return $" (the server there speaks TLS: use https://{address.Authority}, with MASKFORMER_CA_CERT for a private CA)";
            case ConnectFailure.SpeaksCleartext:
                return $" (the TLS handshake failed: the server there speaks cleartext, not TLS: use http://{address.Authority})";
            case ConnectFailure.ServerCertificateRefused:
                return $" (the TLS handshake failed: {ServerCertificateQuestion(address)})";
            case ConnectFailure.ClientCertificateRefused:
                return $" (the server's certificate passes this client's check, so the server refused the TLS handshake: {ClientCertificateQuestion()})";
            case ConnectFailure.HandshakeRefused:
                // No certificate seen (the server gone, or silent, since the call): either side may have refused.
                return $" (the TLS handshake failed: {ServerCertificateQuestion(address)} Or, {ClientCertificateQuestion()})";
            case ConnectFailure.EndedAfterHandshake when ClientCertificateExpired() is { } expired:
                return $" ({expired})";
            case ConnectFailure.EndedAfterHandshake:
                // With TLS 1.3 a server that wants a client certificate, and got none or one it does not
                // trust, ends the connection after the handshake.
                return ServerConnection.Variable("MASKFORMER_CLIENT_CERT") is { } certificate
                    ? $" (the server ended the connection after the TLS handshake: does it trust the CA that issued MASKFORMER_CLIENT_CERT {certificate}?)"
                    : " (the server ended the connection after the TLS handshake: does it want a client certificate? Set MASKFORMER_CLIENT_CERT and MASKFORMER_CLIENT_KEY)";
            default:
                return "";
        }
    }

    // MASKFORMER_CA_CERT's CAs replace the system's: the question names the one the call used.
    private static string ServerCertificateQuestion(Uri address) => ServerConnection.Variable("MASKFORMER_CA_CERT") is { } ca
        ? $"is the server's certificate for {address.IdnHost} and issued by a CA in MASKFORMER_CA_CERT {ca}?"
        : $"is the server's certificate for {address.IdnHost} and issued by a CA the system trusts? A private CA needs MASKFORMER_CA_CERT.";

    private static string ClientCertificateQuestion() =>
        ClientCertificateExpired() is { } expired ? $"{expired}."
        : ServerConnection.Variable("MASKFORMER_CLIENT_CERT") is { } certificate
        ? $"does the server trust the CA that issued MASKFORMER_CLIENT_CERT {certificate}?"
        : "does the server want a client certificate? Set MASKFORMER_CLIENT_CERT and MASKFORMER_CLIENT_KEY.";

    // As the call checked the server's certificate. A CA file that cannot be read now (changed since the call)
    // leaves the system's roots, for a hint only.
    private static X509ChainPolicy? ServerCertificatePolicyOrNull()
    {
        try
        {
            return ServerConnection.ServerCertificatePolicy();
        }
        catch (ConnectionException)
        {
            return null;
        }
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

/// <summary>Why an attempt to connect failed (<see cref="TlsHint.DiagnoseAsync"/>).</summary>
internal enum ConnectFailure
{
    /// <summary>Refused, unroutable, or the name not found: nothing to do with TLS.</summary>
    NothingListening,

    /// <summary>A cleartext address and a server that answers no TLS handshake either (a connection closed or reset).</summary>
    Unexplained,

    /// <summary>An http:// address of a server that answers a TLS handshake with its certificate.</summary>
    SpeaksTls,

    /// <summary>An https:// address of a server that answers a TLS handshake with something else.</summary>
    SpeaksCleartext,

    /// <summary>The TLS handshake failed and the server's certificate fails this client's check (another CA, another host's name, out of date).</summary>
    ServerCertificateRefused,

    /// <summary>The TLS handshake failed though the server's certificate passes this client's check: (TLS 1.2) the server refused this client's certificate, or wanted one.</summary>
    ClientCertificateRefused,

    /// <summary>The TLS handshake failed and the probe saw no certificate: either side may have refused.</summary>
    HandshakeRefused,

    /// <summary>The server ended the connection after the TLS handshake (TLS 1.3: it refused this client's certificate, or wanted one).</summary>
    EndedAfterHandshake,
}
