using System.Net.Security;
using System.Net.Sockets;
using System.Security.Cryptography;
using System.Security.Cryptography.X509Certificates;

namespace MaskFormer.Cli.Commands;

/// <summary>
/// How the CLI checks an https:// server and what it presents to one that asks for a client certificate:
/// --ca-cert (else $MASKFORMER_CA_CERT), PEM CA certificates trusted instead of the system's (a private CA
/// or the server's own self-signed certificate); --client-cert and --client-key (else $MASKFORMER_CLIENT_CERT
/// and $MASKFORMER_CLIENT_KEY), a PEM certificate (with any intermediates after it) and its key for mutual TLS.
/// The Python, Node and Go examples read the same three variables.
/// </summary>
internal sealed class ClientTls
{
    public const string CaVariable = "MASKFORMER_CA_CERT";
    public const string CertificateVariable = "MASKFORMER_CLIENT_CERT";
    public const string KeyVariable = "MASKFORMER_CLIENT_KEY";

    /// <summary>The options every command takes besides --server.</summary>
    public static readonly string[] OptionNames = ["ca-cert", "client-cert", "client-key"];

    public const string Help = $"""
          --ca-cert FILE         PEM CA certificate(s) an https:// server's certificate must chain to, instead of the system's (default ${CaVariable})
          --client-cert FILE     PEM client certificate (intermediates after it) for a server that wants one (default ${CertificateVariable})
          --client-key FILE      its PEM private key (default ${KeyVariable})
        """;

    private readonly Setting? _ca;
    private readonly Setting? _certificate;
    private readonly Setting? _key;

    private ClientTls(Setting? ca, Setting? certificate, Setting? key)
    {
        (_ca, _certificate, _key) = (ca, certificate, key);
    }

    public string? CaPath => _ca?.Path;

    public string? CertificatePath => _certificate?.Path;

    public string? KeyPath => _key?.Path;

    /// <summary>Whether anything differs from the system's trust and no client certificate.</summary>
    public bool IsSet => CaPath is not null || CertificatePath is not null;

    /// <summary>The settings a command was given (options over variables), checked against its address: a mistake is a <see cref="UsageException"/>.</summary>
    public static ClientTls From(CommandArguments args, Uri address)
    {
        var tls = new ClientTls(Read(args, "ca-cert", CaVariable), Read(args, "client-cert", CertificateVariable), Read(args, "client-key", KeyVariable));
        if ((tls.CertificatePath is null) != (tls.KeyPath is null))
        {
            throw new UsageException($"--client-cert and --client-key go together (or ${CertificateVariable} and ${KeyVariable}); only {(tls.KeyPath is null ? "the certificate" : "the key")} was given.");
        }

        if (tls.IsSet && address.Scheme != Uri.UriSchemeHttps)
        {
            throw new UsageException($"a CA or client certificate needs an https:// server address; {address.ToString().TrimEnd('/')} is cleartext.");
        }

        return tls;
    }

    /// <summary>
    /// Sets <paramref name="handler"/>'s TLS options: the CA file replaces the system's roots for the server's
    /// chain (host name still checked, no revocation lookups or issuer downloads); the client certificate is
    /// sent with its intermediates.
    /// </summary>
    public void Apply(SocketsHttpHandler handler)
    {
        if (!IsSet)
        {
            return;
        }

        var ssl = new SslClientAuthenticationOptions { CertificateChainPolicy = ServerCertificatePolicy() };

        if (_certificate is not null && _key is not null)
        {
            var chain = ReadCertificates(_certificate);
            chain[0].Dispose();
            X509Certificate2 leaf;
            try
            {
                leaf = X509Certificate2.CreateFromPemFile(_certificate.Path, _key.Path);
                if (OperatingSystem.IsWindows())
                {
                    // Windows' TLS cannot sign with an ephemeral key; a PKCS#12 round trip gives it one it can
                    // (kept only for this process: EphemeralKeySet writes nothing to the user's key store).
                    using var ephemeral = leaf;
                    leaf = X509CertificateLoader.LoadPkcs12(ephemeral.Export(X509ContentType.Pkcs12), null, X509KeyStorageFlags.EphemeralKeySet);
                }
            }
            catch (Exception ex) when (ex is IOException or UnauthorizedAccessException)
            {
                throw _key.Unreadable(ex);
            }
            catch (Exception ex) when (ex is CryptographicException or ArgumentException)
            {
                throw new InvalidDataException($"{_key} is not the PEM private key of {_certificate} ({ex.Message}).", ex);
            }

            ssl.ClientCertificateContext = SslStreamCertificateContext.Create(leaf, new X509Certificate2Collection(chain[1..]), offline: true);
        }

        handler.SslOptions = ssl;
    }

    /// <summary>
    /// What to check when a call to <paramref name="address"/> failed with <paramref name="error"/> at or just
    /// after connecting: the other scheme, when the server answers a TLS handshake differently from what the
    /// address says (<see cref="TlsProbe"/>); else, for an https:// address, what to check from what was set.
    /// Null when nothing was listening, or for a cleartext address whose server does not speak TLS.
    /// </summary>
    public async Task<string?> HintAsync(Uri address, Exception? error, CancellationToken cancellationToken)
    {
        if (error is null || NothingListening(error))
        {
            return null;
        }

        if (address.Scheme != Uri.UriSchemeHttps)
        {
            return await TlsProbe.SpeaksTlsAsync(address, cancellationToken).ConfigureAwait(false) is true
                ? $"The server there seems to speak TLS (it answered a TLS handshake): use {WithScheme(address, Uri.UriSchemeHttps)}, with --ca-cert (or ${CaVariable}) for a private CA."
                : null;
        }

        if (IsHandshakeRefused(error))
        {
            // A cleartext server answers a ClientHello with something that is not TLS, which .NET reports as a
            // failed handshake; a TLS server shows its certificate, which the probe checks as this client does.
            var answer = await TlsProbe.AnswerAsync(address, ServerCertificatePolicyOrNull(), cancellationToken).ConfigureAwait(false);
            return answer.IsTls is false
                ? $"The server there seems to speak cleartext (it answered a TLS handshake with something else): use {WithScheme(address, Uri.UriSchemeHttp)}."
                : HandshakeRefusedHint(answer.CertificateErrors);
        }

        // With TLS 1.3 a server that refuses the client's certificate (or wants one and got none) ends the
        // connection after the handshake.
        var outOfDate = OutOfDate(DateTime.UtcNow);
        return CertificatePath is null
            ? $"A server that asks for a client certificate ends the connection without one: --client-cert and --client-key (or ${CertificateVariable} and ${KeyVariable})."
            : outOfDate is not null
            ? $"A server that asks for a client certificate ends the connection when it refuses the one given: {outOfDate}"
            : $"A server that asks for a client certificate ends the connection when it refuses the one given: is {CertificatePath} issued by a CA the server trusts?";
    }

    /// <summary>
    /// What to check after a failed handshake, from how the server's certificate fared in this client's own
    /// check: refused, only the server's certificate, which no client certificate mends (this client may have
    /// sent its own first: on Linux .NET checks the server's only once a TLS 1.2 handshake is done; if the
    /// server refused that too, the next try says so); passed, only this client's certificate (with TLS 1.2 a
    /// server refuses it in the handshake); not known, both.
    /// </summary>
    private string HandshakeRefusedHint(SslPolicyErrors? serverCertificateErrors)
    {
        var serverCertificate = CaPath is null
            ? $"A server certificate from a private CA needs --ca-cert (or ${CaVariable})."
            : $"Is the server's certificate for this host name and issued by a CA in {CaPath}?";
        var outOfDate = OutOfDate(DateTime.UtcNow);
        var clientCertificate = CertificatePath is null
            ? $"a server that asks for a client certificate needs --client-cert and --client-key (or ${CertificateVariable} and ${KeyVariable})."
            : outOfDate is not null
            ? $"a server that asks for a client certificate refuses one out of date: {outOfDate}"
            : $"a server that asks for a client certificate refuses one it does not trust: is {CertificatePath} issued by a CA the server trusts?";
        return serverCertificateErrors switch
        {
            null => $"{serverCertificate} Or, {clientCertificate}",
            SslPolicyErrors.None => $"The server's certificate passes this client's check, so the server refused the handshake: {clientCertificate}",
            _ => serverCertificate,
        };
    }

    // How Apply has the server's certificate checked: the CA file's certificates as the only roots; null,
    // the system's.
    private X509ChainPolicy? ServerCertificatePolicy()
    {
        if (_ca is null)
        {
            return null;
        }

        var policy = new X509ChainPolicy
        {
            TrustMode = X509ChainTrustMode.CustomRootTrust,
            RevocationMode = X509RevocationMode.NoCheck,
            DisableCertificateDownloads = true,
        };
        policy.CustomTrustStore.AddRange(ReadCertificates(_ca));
        return policy;
    }

    // For a hint: a CA file that can no longer be read (changed since the call) checks against the system's roots.
    private X509ChainPolicy? ServerCertificatePolicyOrNull()
    {
        try
        {
            return ServerCertificatePolicy();
        }
        catch (Exception ex) when (ex is IOException or UnauthorizedAccessException or InvalidDataException)
        {
            return null;
        }
    }

    // Said instead of the question about its issuer, since a server checks the dates too: an expired
    // certificate is the likelier fault, and one the client can see for itself. Not checked before
    // connecting: a server that asks for no client certificate answers a client holding an expired one.
    private string? OutOfDate(DateTime now)
    {
        if (CertificatePath is null)
        {
            return null;
        }

        var certificates = new X509Certificate2Collection();
        try
        {
            certificates.ImportFromPemFile(CertificatePath);
            var (notBefore, notAfter) = certificates.Count > 0 ? (certificates[0].NotBefore.ToUniversalTime(), certificates[0].NotAfter.ToUniversalTime()) : (DateTime.MinValue, DateTime.MaxValue);
            return now > notAfter ? $"{_certificate} expired at {notAfter:u}; renew it."
                : now < notBefore ? $"{_certificate} is not valid before {notBefore:u}; is this machine's clock right?"
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

    /// <summary>
    /// Whether the TLS handshake failed (<see cref="System.Security.Authentication.AuthenticationException"/>):
    /// this client refused the server's certificate, or (TLS 1.2) the server refused this client's.
    /// </summary>
    public static bool IsHandshakeRefused(Exception? error) => ExceptionChain.Any(error, e => e is System.Security.Authentication.AuthenticationException);

    // A refused or unroutable connection: nothing to do with TLS. (A reset is not here: a server that
    // refuses a client certificate after a TLS 1.3 handshake may reset the connection.)
    private static bool NothingListening(Exception error) => ExceptionChain.Any(error, e => e is SocketException
    {
        SocketErrorCode: SocketError.ConnectionRefused or SocketError.HostNotFound or SocketError.TimedOut or SocketError.NetworkUnreachable
            or SocketError.HostUnreachable or SocketError.TryAgain or SocketError.NoData or SocketError.AddressNotAvailable,
    });

    // The port stays as given (or as the scheme implied): the server is the same, only the protocol changes.
    private static string WithScheme(Uri address, string scheme) =>
        new UriBuilder(address) { Scheme = scheme, Port = address.Port }.Uri.GetLeftPart(UriPartial.Authority);

    private static Setting? Read(CommandArguments args, string option, string variable) =>
        args.Has(option) ? args.Get(option, string.Empty) is { Length: > 0 } given ? new Setting(given, option, null) : throw new UsageException($"--{option} needs a file.")
        : Environment.GetEnvironmentVariable(variable) is { Length: > 0 } fromEnvironment ? new Setting(fromEnvironment, option, variable) : null;

    private static X509Certificate2[] ReadCertificates(Setting file)
    {
        var certificates = new X509Certificate2Collection();
        try
        {
            certificates.ImportFromPemFile(file.Path);
        }
        catch (Exception ex) when (ex is IOException or UnauthorizedAccessException)
        {
            throw file.Unreadable(ex);
        }
        catch (CryptographicException ex)
        {
            throw new InvalidDataException($"{file} could not be read as PEM certificates ({ex.Message}).", ex);
        }

        return certificates.Count > 0
            ? [.. certificates]
            : throw new InvalidDataException($"{file} holds no PEM certificate (-----BEGIN CERTIFICATE-----).");
    }

    /// <summary>
    /// A file named by an option or, without it, by an environment variable: messages say which, since a
    /// variable set long ago in a profile is easily forgotten.
    /// </summary>
    private sealed record Setting(string Path, string Option, string? Variable)
    {
        public IOException Unreadable(Exception ex) =>
            new($"{this} could not be read ({ex.Message.TrimEnd('.')}){(Variable is null ? "." : $"; give --{Option}, or correct or unset ${Variable}.")}", ex);

        public override string ToString() => Variable is null ? $"--{Option} {Path}" : $"${Variable} {Path} (the default of --{Option})";
    }
}
