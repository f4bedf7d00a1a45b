using System.Security.Cryptography.X509Certificates;
using Microsoft.Extensions.Options;

namespace MaskFormer.Server.Security;

/// <summary>
/// Serves the PEM certificate of <see cref="SecurityOptions"/> and re-reads it when its files change.
/// The check runs on each TLS handshake and costs two stat calls: no file watcher, because a Kubernetes
/// secret update swaps a symlink (..data), which watchers report unreliably, while the resolved target's
/// path and time change for certain.
/// Each certificate loaded outside its validity, or near its end, is a warning: clients refuse it, or
/// soon will, and its renewal is what to look at. <see cref="CertificateValidityWatch"/> has the one loaded
/// looked at again as time passes.
/// </summary>
internal sealed partial class CertificateReloader(IOptions<SecurityOptions> options, TimeProvider time, ILogger<CertificateReloader> logger)
{
    private readonly SecurityOptions _options = options.Value;
    private readonly Lock _gate = new();
    private (string Certificate, string Key) _stamp;
    private X509Certificate2? _current;
    private CertificateValidity _validity;

    /// <summary>The certificate to serve now, reloaded first if its files changed.</summary>
    public X509Certificate2 Current
    {
        get
        {
            var stamp = (FileStamp.Of(_options.CertificatePath), FileStamp.Of(_options.KeyPath));
            lock (_gate)
            {
                if (_current is null || stamp != _stamp)
                {
                    try
                    {
                        var loaded = Load(_options.CertificatePath, _options.KeyPath);
                        _current = loaded;
                        _stamp = stamp;
                        LogValidity(loaded);
                    }
                    catch (Exception ex) when (_current is not null && ex is IOException or System.Security.Cryptography.CryptographicException or ArgumentException)
                    {
                        // Half-written files during an update: keep serving the previous certificate and
                        // try again on the next handshake.
                        LogReloadFailed(logger, ex.GetType().Name);
                    }
                }

                return _current;
            }
        }
    }

    internal static X509Certificate2 Load(string certificatePath, string keyPath)
    {
        using var pem = X509Certificate2.CreateFromPemFile(certificatePath, keyPath.Length > 0 ? keyPath : null);

        // SslStream on Linux needs the key in a form it can export to OpenSSL; PKCS#12 round-trip gives that.
        return X509CertificateLoader.LoadPkcs12(pem.Export(X509ContentType.Pkcs12), null);
    }

    /// <summary>
    /// Warns of the certificate served now (re-read first if its files changed) if it has come near its end or
    /// gone out of date since it was loaded or last looked at; once, as it crosses.
    /// </summary>
    public void WarnOfValidityChange()
    {
        var certificate = Current;
        lock (_gate)
        {
            var validity = CertificateDates.Validity(certificate, time.GetUtcNow().UtcDateTime);
            if (ReferenceEquals(certificate, _current) && validity != _validity)
            {
                _validity = validity;
                Warn(certificate, validity);
            }
        }
    }

    private void LogValidity(X509Certificate2 loaded)
    {
        _validity = CertificateDates.Validity(loaded, time.GetUtcNow().UtcDateTime);
        var notAfter = loaded.NotAfter.ToUniversalTime();
        if (!Warn(loaded, _validity))
        {
            LogLoaded(logger, loaded.Subject, loaded.Thumbprint, notAfter);
        }
    }

    private bool Warn(X509Certificate2 certificate, CertificateValidity validity)
    {
        var (notBefore, notAfter) = (certificate.NotBefore.ToUniversalTime(), certificate.NotAfter.ToUniversalTime());
        switch (validity)
        {
            case CertificateValidity.NotValidNow:
                LogNotValidNow(logger, _options.CertificatePath, certificate.Subject, certificate.Thumbprint, notBefore, notAfter);
                return true;
            case CertificateValidity.NearExpiry:
                LogNearExpiry(logger, _options.CertificatePath, certificate.Subject, certificate.Thumbprint, notAfter, (notAfter - time.GetUtcNow().UtcDateTime).TotalDays);
                return true;
            default:
                return false;
        }
    }

    [LoggerMessage(EventId = 401, Level = LogLevel.Information, Message = "TLS certificate loaded: {Subject}, thumbprint {Thumbprint}, valid until {NotAfter:u}.")]
    private static partial void LogLoaded(ILogger logger, string subject, string thumbprint, DateTime notAfter);

    [LoggerMessage(EventId = 407, Level = LogLevel.Warning, Message = "TLS certificate {Path} ({Subject}, thumbprint {Thumbprint}) is not valid now: valid from {NotBefore:u} until {NotAfter:u}. Clients refuse it; it is served until the file changes.")]
    private static partial void LogNotValidNow(ILogger logger, string path, string subject, string thumbprint, DateTime notBefore, DateTime notAfter);

    [LoggerMessage(EventId = 408, Level = LogLevel.Warning, Message = "TLS certificate {Path} ({Subject}, thumbprint {Thumbprint}) expires at {NotAfter:u}, in {DaysLeft:0.#} day(s): is its renewal failing? A renewed file is read on the next handshake.")]
    private static partial void LogNearExpiry(ILogger logger, string path, string subject, string thumbprint, DateTime notAfter, double daysLeft);

    [LoggerMessage(EventId = 402, Level = LogLevel.Warning, Message = "TLS certificate files changed but could not be read ({Error}); serving the previous certificate.")]
    private static partial void LogReloadFailed(ILogger logger, string error);
}
