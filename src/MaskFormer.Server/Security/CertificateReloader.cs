using System.Security.Cryptography.X509Certificates;
using Microsoft.Extensions.Options;

namespace MaskFormer.Server.Security;

/// <summary>
/// Serves the PEM certificate of <see cref="SecurityOptions"/> and re-reads it when its files change.
/// The check runs on each TLS handshake and costs two stat calls: no file watcher, because a Kubernetes
/// secret update swaps a symlink (..data), which watchers report unreliably, while the resolved target's
/// path and time change for certain.
/// </summary>
internal sealed partial class CertificateReloader(IOptions<SecurityOptions> options, ILogger<CertificateReloader> logger)
{
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
                        LogLoaded(logger, loaded.Subject, loaded.Thumbprint, loaded.NotAfter);
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

    [LoggerMessage(EventId = 401, Level = LogLevel.Information, Message = "TLS certificate loaded: {Subject}, thumbprint {Thumbprint}, valid until {NotAfter:u}.")]
    private static partial void LogLoaded(ILogger logger, string subject, string thumbprint, DateTime notAfter);

    [LoggerMessage(EventId = 402, Level = LogLevel.Warning, Message = "TLS certificate files changed but could not be read ({Error}); serving the previous certificate.")]
    private static partial void LogReloadFailed(ILogger logger, string error);
}
