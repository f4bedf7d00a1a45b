using System.Security.Cryptography;
using Microsoft.Extensions.Options;

namespace MaskFormer.Server.Security;

/// <summary>
/// Looks at the server certificate and the client CAs every <see cref="SecurityOptions.CertificateCheckInterval"/>:
/// the files are read only at start-up and when they change, so without this a certificate that comes near its
/// end or goes out of date while loaded would be warned of only at the next restart or renewal. Each is warned
/// of once as it crosses (events 408 and 407, 412 and 411), not at every look.
/// </summary>
internal sealed class CertificateValidityWatch(IOptions<SecurityOptions> options, CertificateReloader certificate, ClientCaReloader clientCas, TimeProvider time)
    : IHostedService, IDisposable
{
    private ITimer? _timer;

    public Task StartAsync(CancellationToken cancellationToken)
    {
        var o = options.Value;
        if (o.TlsConfigured)
        {
            _timer = time.CreateTimer(_ => Check(o), null, o.CertificateCheckInterval, o.CertificateCheckInterval);
        }

        return Task.CompletedTask;
    }

    public Task StopAsync(CancellationToken cancellationToken)
    {
        Dispose();
        return Task.CompletedTask;
    }

    public void Dispose() => _timer?.Dispose();

    private void Check(SecurityOptions o)
    {
        try
        {
            certificate.WarnOfValidityChange();
            if (o.ClientCaPath.Length > 0)
            {
                clientCas.WarnOfValidityChange();
            }
        }
        catch (Exception ex) when (ex is IOException or UnauthorizedAccessException or CryptographicException or ArgumentException)
        {
            // Only a certificate never loaded can throw here, and start-up does not get that far without one.
        }
    }
}
