using System.Security.Cryptography.X509Certificates;
using Microsoft.Extensions.Options;

namespace MaskFormer.Server.Security;

/// <summary>
/// The client CAs of <see cref="SecurityOptions.ClientCaPath"/> for mutual TLS, re-read when the file
/// changes, as <see cref="CertificateReloader"/> does for the server's certificate: a renewed secret
/// (ca.crt beside tls.crt) takes effect at the next handshake, without a restart. A file that cannot be
/// read, or holds no certificate, keeps the CAs loaded last. A CA out of date, or near its end, is a warning
/// when loaded and, through <see cref="CertificateValidityWatch"/>, when it gets there while loaded: every
/// client certificate it issued is refused once it has expired.
/// </summary>
internal sealed partial class ClientCaReloader(IOptions<SecurityOptions> options, TimeProvider time, ILogger<ClientCaReloader> logger)
{
    private readonly string _path = options.Value.ClientCaPath;
    private readonly Lock _gate = new();
    private string? _stamp;
    private X509Certificate2Collection _current = [];
    private CertificateValidity[] _validity = [];

    /// <summary>The client CAs to trust now, reloaded first if their file changed.</summary>
    public X509Certificate2Collection Current
    {
        get
        {
            var stamp = FileStamp.Of(_path);
            lock (_gate)
            {
                if (stamp == _stamp)
                {
                    return _current;
                }

                _stamp = stamp;
                var loaded = Read(_path);
                if (loaded.Count == 0)
                {
                    LogReloadFailed(logger, _path);
                    return _current;
                }

                _current = loaded;
                LogLoaded(logger, _path, loaded.Count);
                _validity = new CertificateValidity[loaded.Count];
                WarnOfValidity(loaded);
                return _current;
            }
        }
    }

    /// <summary>
    /// Warns of each client CA (the file re-read first if it changed) that has come near its end or gone out of
    /// date since it was loaded or last looked at; once, as it crosses.
    /// </summary>
    public void WarnOfValidityChange()
    {
        var authorities = Current;
        lock (_gate)
        {
            if (ReferenceEquals(authorities, _current))
            {
                WarnOfValidity(authorities);
            }
        }
    }

    // Under _gate; _validity holds what each CA was last warned of (Valid: nothing).
    private void WarnOfValidity(X509Certificate2Collection authorities)
    {
        var now = time.GetUtcNow().UtcDateTime;
        for (var i = 0; i < authorities.Count; i++)
        {
            var authority = authorities[i];
            var validity = CertificateDates.Validity(authority, now);
            if (validity == _validity[i])
            {
                continue;
            }

            _validity[i] = validity;
            var (notBefore, notAfter) = (authority.NotBefore.ToUniversalTime(), authority.NotAfter.ToUniversalTime());
            if (validity == CertificateValidity.NotValidNow)
            {
                LogNotValidNow(logger, _path, authority.Subject, authority.Thumbprint, notBefore, notAfter);
            }
            else if (validity == CertificateValidity.NearExpiry)
            {
                LogNearExpiry(logger, _path, authority.Subject, authority.Thumbprint, notAfter, (notAfter - now).TotalDays);
            }
        }
    }

    /// <summary>The certificates of a PEM file; none when it cannot be read or holds none.</summary>
    internal static X509Certificate2Collection Read(string path)
    {
        var authorities = new X509Certificate2Collection();
        try
        {
            authorities.ImportFromPemFile(path);
        }
        catch (Exception ex) when (ex is IOException or UnauthorizedAccessException or System.Security.Cryptography.CryptographicException or ArgumentException)
        {
            authorities.Clear();
        }

        return authorities;
    }

    [LoggerMessage(EventId = 405, Level = LogLevel.Information, Message = "Client CA file {Path} loaded: {Count} certificate(s).")]
    private static partial void LogLoaded(ILogger logger, string path, int count);

    [LoggerMessage(EventId = 411, Level = LogLevel.Warning, Message = "Client CA {Subject} (thumbprint {Thumbprint}) of {Path} is not valid now: valid from {NotBefore:u} until {NotAfter:u}. Client certificates it issued are refused (NotTimeValid) until the file holds a valid one.")]
    private static partial void LogNotValidNow(ILogger logger, string path, string subject, string thumbprint, DateTime notBefore, DateTime notAfter);

    [LoggerMessage(EventId = 412, Level = LogLevel.Warning, Message = "Client CA {Subject} (thumbprint {Thumbprint}) of {Path} expires at {NotAfter:u}, in {DaysLeft:0.#} day(s); client certificates it issued are refused after that. A renewed file is read on the next handshake.")]
    private static partial void LogNearExpiry(ILogger logger, string path, string subject, string thumbprint, DateTime notAfter, double daysLeft);

    [LoggerMessage(EventId = 406, Level = LogLevel.Warning, Message = "Client CA file {Path} changed but holds no readable certificate; trusting the CAs loaded before.")]
    private static partial void LogReloadFailed(ILogger logger, string path);
}
