using System.Security.Cryptography.X509Certificates;

namespace MaskFormer.Server.Security;

/// <summary>
/// Logs the client certificates mutual TLS refuses, at Warning (the client only sees its connection end,
/// so this is where the reason is found), each certificate at most once a minute and at most
/// <see cref="MaxPerWindow"/> in a minute in all: a client retrying in a loop, or one minting certificates,
/// cannot flood the log. How many refusals went unlogged is said with the next one logged.
/// </summary>
internal sealed partial class ClientCertificateRefusals(TimeProvider time, ILogger<ClientCertificateRefusals> logger)
{
    /// <summary>How long a logged certificate is not logged again.</summary>
    public static readonly TimeSpan Window = TimeSpan.FromMinutes(1);

    /// <summary>The most refusals logged in one window.</summary>
    public const int MaxPerWindow = 20;

    private readonly Lock _gate = new();
    private readonly HashSet<string> _logged = new(StringComparer.Ordinal);
    private DateTimeOffset _windowEnds = DateTimeOffset.MinValue;
    private int _unlogged;

    /// <summary>Notes that <paramref name="certificate"/> was refused for <paramref name="reason"/>; logs it unless it was lately.</summary>
    public void Refused(X509Certificate2 certificate, string reason)
    {
        int unlogged;
        lock (_gate)
        {
            var now = time.GetUtcNow();
            if (now >= _windowEnds)
            {
                _logged.Clear();
                _windowEnds = now + Window;
            }

            if (_logged.Count >= MaxPerWindow || !_logged.Add(certificate.Thumbprint))
            {
                _unlogged++;
                return;
            }

            (unlogged, _unlogged) = (_unlogged, 0);
        }

        LogRefused(logger, certificate.Subject, certificate.Issuer, certificate.Thumbprint, certificate.NotBefore.ToUniversalTime(), certificate.NotAfter.ToUniversalTime(), reason, unlogged);
    }

    [LoggerMessage(EventId = 409, Level = LogLevel.Warning, Message = "Client certificate refused (mutual TLS): {Subject}, issued by {Issuer}, thumbprint {Thumbprint}, valid from {NotBefore:u} until {NotAfter:u}: {Reason}. This certificate is not logged again for a minute; {Unlogged} refusal(s) before this one went unlogged.")]
    private static partial void LogRefused(ILogger logger, string subject, string issuer, string thumbprint, DateTime notBefore, DateTime notAfter, string reason, int unlogged);
}
