using System.Security.Cryptography.X509Certificates;
using Microsoft.Extensions.Options;

namespace MaskFormer.Server.Security;

/// <summary>
/// Serves the PEM certificate of <see cref="SecurityOptions"/> and re-reads it when its files change.
/// The check runs on each TLS handshake and costs two stat calls: no file watcher, because a Kubernetes
/// secret update swaps a symlink (..data), which watchers report unreliably, while the resolved target's
/// path and time change for certain.
/// Each certificate loaded outside its validity, or near its end, is a warning: clients refuse it, or
/// soon will, and its renewal is what to look at.
/// </summary>
internal sealed partial class CertificateReloader(IOptions<SecurityOptions> options, TimeProvider time, ILogger<CertificateReloader> logger)
{
    /// <summary>
    /// A certificate this near its end is warned of: the sooner of 14 days before it and the last fifth of its
    /// validity. Renewal (cert-manager at a third of the validity left, ACME clients at 30 days) has failed
    /// for a while by then; a short-lived certificate (hours) would otherwise be warned of on every load.
    /// </summary>
    internal static TimeSpan NearExpiry(X509Certificate2 certificate)
    {
        var fifth = (certificate.NotAfter.ToUniversalTime() - certificate.NotBefore.ToUniversalTime()) / 5;
        return fifth < TimeSpan.FromDays(14) ? fifth : TimeSpan.FromDays(14);
    }

    private readonly SecurityOptions _options = options.Value;
    private readonly Lock _gate = new();
    private (string Certificate, string Key) _stamp;
    private X509Certificate2? _current;

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

    private void LogValidity(X509Certificate2 loaded)
    {
        var now = time.GetUtcNow().UtcDateTime;
        var (notBefore, notAfter) = (loaded.NotBefore.ToUniversalTime(), loaded.NotAfter.ToUniversalTime());
        if (now < notBefore || now > notAfter)
        {
            LogNotValidNow(logger, _options.CertificatePath, loaded.Subject, loaded.Thumbprint, notBefore, notAfter);
        }
        else if (notAfter - now < NearExpiry(loaded))
        {
            LogNearExpiry(logger, _options.CertificatePath, loaded.Subject, loaded.Thumbprint, notAfter, (notAfter - now).TotalDays);
        }
        else
        {
            LogLoaded(logger, loaded.Subject, loaded.Thumbprint, notAfter);
        }
    }

    [LoggerMessage(EventId = 401, Level = LogLevel.Information, Message = "TLS certificate loaded: {Subject}, thumbprint {Thumbprint}, valid until {NotAfter:u}.")]
    private static partial void LogLoaded(ILogger logger, string subject, string thumbprint, DateTime notAfter);

    [LoggerMessage(EventId = 407, Level = LogLevel.Warning, Message = "TLS certificate {Path} ({Subject}, thumbprint {Thumbprint}) loaded but not valid now: valid from {NotBefore:u} until {NotAfter:u}. Clients refuse it; it is served until the file changes.")]
    private static partial void LogNotValidNow(ILogger logger, string path, string subject, string thumbprint, DateTime notBefore, DateTime notAfter);

    [LoggerMessage(EventId = 408, Level = LogLevel.Warning, Message = "TLS certificate {Path} ({Subject}, thumbprint {Thumbprint}) loaded, but it expires at {NotAfter:u}, in {DaysLeft:0.#} day(s): is its renewal failing? A renewed file is read on the next handshake.")]
    private static partial void LogNearExpiry(ILogger logger, string path, string subject, string thumbprint, DateTime notAfter, double daysLeft);

    [LoggerMessage(EventId = 402, Level = LogLevel.Warning, Message = "TLS certificate files changed but could not be read ({Error}); serving the previous certificate.")]
    private static partial void LogReloadFailed(ILogger logger, string error);
}
