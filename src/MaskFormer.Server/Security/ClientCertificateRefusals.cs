using System.Net;
using System.Security.Cryptography.X509Certificates;
using MaskFormer.Server.Diagnostics;

namespace MaskFormer.Server.Security;

/// <summary>
/// Counts the client certificates mutual TLS refuses (<see cref="RpcTelemetry.ClientCertificateRefusals"/>, every one)
/// and logs them at Warning (the client only sees its connection end, so this is where the reason is found):
/// each certificate, or each address that sent none, at most once a minute and at most
/// <see cref="MaxPerWindow"/> in a minute in all, so a client retrying in a loop, or one minting
/// certificates, cannot flood the log. How many refusals went unlogged is said with the next one logged.
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

    /// <summary>Notes that <paramref name="certificate"/> was refused for <paramref name="faults"/>; logs it unless it was lately.</summary>
    public void Refused(X509Certificate2 certificate, X509ChainStatusFlags faults)
    {
        Count(ReasonTag(faults));
        if (ShouldLog(certificate.Thumbprint, out var unlogged))
        {
            var reason = faults == X509ChainStatusFlags.NoError ? "no chain to a client CA" : faults.ToString();
            LogRefused(logger, certificate.Subject, certificate.Issuer, certificate.Thumbprint, certificate.NotBefore.ToUniversalTime(), certificate.NotAfter.ToUniversalTime(), reason, unlogged);
        }
    }

    /// <summary>Notes that a client at <paramref name="peer"/> presented no certificate; logs it unless that address was lately.</summary>
    public void RefusedWithoutCertificate(EndPoint? peer)
    {
        Count(NoCertificate);

        // The address without the port, which a client retrying takes anew for each connection.
        var address = peer is IPEndPoint ip ? ip.Address.ToString() : peer?.ToString() ?? "unknown";
        if (ShouldLog($"no certificate from {address}", out var unlogged))
        {
            LogRefusedWithoutCertificate(logger, address, unlogged);
        }
    }

    /// <summary>The metric's reason: a few values, not the chain's faults, whose combinations are many.</summary>
    internal static string ReasonTag(X509ChainStatusFlags faults) =>
        (faults & (X509ChainStatusFlags.PartialChain | X509ChainStatusFlags.UntrustedRoot)) != 0 ? "untrusted"
        : (faults & X509ChainStatusFlags.NotTimeValid) != 0 ? "not_time_valid"
        : (faults & X509ChainStatusFlags.NotValidForUsage) != 0 ? "not_valid_for_usage"
        : "other";

    internal const string NoCertificate = "no_certificate";

    private static void Count(string reason) =>
        RpcTelemetry.ClientCertificateRefusals.Add(1, new KeyValuePair<string, object?>(RpcTelemetry.TlsRefusalReason, reason));

    private bool ShouldLog(string key, out int unlogged)
    {
        lock (_gate)
        {
            var now = time.GetUtcNow();
            if (now >= _windowEnds)
            {
                _logged.Clear();
                _windowEnds = now + Window;
            }

            if (_logged.Count >= MaxPerWindow || !_logged.Add(key))
            {
                _unlogged++;
                unlogged = 0;
                return false;
            }

            (unlogged, _unlogged) = (_unlogged, 0);
            return true;
        }
    }

    [LoggerMessage(EventId = 409, Level = LogLevel.Warning, Message = "Client certificate refused (mutual TLS): {Subject}, issued by {Issuer}, thumbprint {Thumbprint}, valid from {NotBefore:u} until {NotAfter:u}: {Reason}. This certificate is not logged again for a minute; {Unlogged} refusal(s) before this one went unlogged.")]
    private static partial void LogRefused(ILogger logger, string subject, string issuer, string thumbprint, DateTime notBefore, DateTime notAfter, string reason, int unlogged);

    [LoggerMessage(EventId = 410, Level = LogLevel.Warning, Message = "Client refused (mutual TLS): {Address} presented no client certificate. This address is not logged again for a minute; {Unlogged} refusal(s) before this one went unlogged.")]
    private static partial void LogRefusedWithoutCertificate(ILogger logger, string address, int unlogged);
}
