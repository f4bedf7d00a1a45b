using System.Security.Cryptography.X509Certificates;

namespace MaskFormer.Server.Security;

/// <summary>Where a certificate stands on its dates, as the warnings of the server certificate and the client CAs say.</summary>
internal enum CertificateValidity
{
    /// <summary>Valid now and not near its end.</summary>
    Valid,

    /// <summary>Valid now, but within <see cref="CertificateDates.NearExpiry"/> of its end.</summary>
    NearExpiry,

    /// <summary>Expired, or not yet valid.</summary>
    NotValidNow,
}

internal static class CertificateDates
{
    /// <summary>
    /// A certificate this near its end is warned of: the sooner of 14 days before it and the last fifth of its
    /// validity. Renewal (cert-manager at a third of the validity left, ACME clients at 30 days) has failed
    /// for a while by then; a short-lived certificate (hours) would otherwise be warned of on every load.
    /// </summary>
    public static TimeSpan NearExpiry(X509Certificate2 certificate)
    {
        var fifth = (certificate.NotAfter.ToUniversalTime() - certificate.NotBefore.ToUniversalTime()) / 5;
        return fifth < TimeSpan.FromDays(14) ? fifth : TimeSpan.FromDays(14);
    }

    public static CertificateValidity Validity(X509Certificate2 certificate, DateTime utcNow)
    {
        var (notBefore, notAfter) = (certificate.NotBefore.ToUniversalTime(), certificate.NotAfter.ToUniversalTime());
        return utcNow < notBefore || utcNow > notAfter ? CertificateValidity.NotValidNow
            : notAfter - utcNow < NearExpiry(certificate) ? CertificateValidity.NearExpiry
            : CertificateValidity.Valid;
    }
}
