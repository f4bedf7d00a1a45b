using System.Security.Cryptography.X509Certificates;
using Microsoft.Extensions.Options;

namespace MaskFormer.Server.Security;

/// <summary>
/// The client CAs of <see cref="SecurityOptions.ClientCaPath"/> for mutual TLS, re-read when the file
/// changes, as <see cref="CertificateReloader"/> does for the server's certificate: a renewed secret
/// (ca.crt beside tls.crt) takes effect at the next handshake, without a restart. A file that cannot be
/// read, or holds no certificate, keeps the CAs loaded last.
/// </summary>
internal sealed partial class ClientCaReloader(IOptions<SecurityOptions> options, ILogger<ClientCaReloader> logger)
{
    private readonly string _path = options.Value.ClientCaPath;
    private readonly Lock _gate = new();
    private string? _stamp;
    private X509Certificate2Collection _current = [];

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
                return _current;
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

    [LoggerMessage(EventId = 406, Level = LogLevel.Warning, Message = "Client CA file {Path} changed but holds no readable certificate; trusting the CAs loaded before.")]
    private static partial void LogReloadFailed(ILogger logger, string path);
}
