using System.Net;
using System.Security.Cryptography;
using System.Security.Cryptography.X509Certificates;
using Grpc.AspNetCore.Server;
using Microsoft.AspNetCore.Server.Kestrel.Core;
using Microsoft.Extensions.DependencyInjection.Extensions;
using Microsoft.Extensions.Options;

namespace MaskFormer.Server.Security;

/// <summary>TLS from PEM files (reloaded), optional mutual TLS, and bearer-token authentication.</summary>
internal static class SecurityServiceCollectionExtensions
{
    public static IServiceCollection AddMaskFormerSecurity(this IServiceCollection services)
    {
        const string Section = SecurityOptions.SectionName;
        services.AddOptions<SecurityOptions>().BindConfiguration(Section)
            .Validate(o => o.KeyPath.Length == 0 || o.TlsConfigured, $"{Section}:KeyPath needs {Section}:CertificatePath.")
            .Validate(o => o.ClientCaPath.Length == 0 || o.TlsConfigured, $"{Section}:ClientCaPath (mutual TLS) needs {Section}:CertificatePath.")
            .Validate(o => !o.TlsConfigured || File.Exists(o.CertificatePath), $"{Section}:CertificatePath names no file.")
            .Validate(o => o.KeyPath.Length == 0 || File.Exists(o.KeyPath), $"{Section}:KeyPath names no file.")
            .Validate(o => o.ClientCaPath.Length == 0 || File.Exists(o.ClientCaPath), $"{Section}:ClientCaPath names no file.")
            .Validate(o => o.TokensFile.Length == 0 || File.Exists(o.TokensFile), $"{Section}:TokensFile names no file.")
            .Validate(o => o.CertificateCheckInterval > TimeSpan.Zero && o.CertificateCheckInterval <= TimeSpan.FromDays(1), $"{Section}:CertificateCheckInterval must be more than 0 and at most 1.00:00:00 (a day).")
            .Validate(o => o.Health != EndpointAccess.Off, $"{Section}:Health may be Open or Authenticated, not Off (probes need it).")
            .Validate(o => !o.TokensConfigured || (o.TokensFile.Length > 0 && !File.Exists(o.TokensFile)) || new TokenAuthenticator(Options.Create(o)).Count > 0, $"{Section}:TokensFile / TokensEnvironmentVariable are set but hold no token.")
            .ValidateOnStart();
        services.AddSingleton<IValidateOptions<SecurityOptions>, PemFilesValidator>();

        services.TryAddSingleton(TimeProvider.System);
        services.AddSingleton<CertificateReloader>();
        services.AddSingleton<ClientCaReloader>();
        services.AddSingleton<ClientCertificateRefusals>();
        services.AddSingleton<TokenAuthenticator>();
        services.AddHostedService<CertificateValidityWatch>();
        services.AddOptions<KestrelServerOptions>().Configure<IOptions<SecurityOptions>, CertificateReloader, ClientCaReloader, ClientCertificateRefusals>((kestrel, security, reloader, clientCas, refusals) =>
        {
            var o = security.Value;
            if (!o.TlsConfigured)
            {
                return;
            }

            // Loaded now, so that a certificate out of date or near its end is warned of at start-up rather
            // than at the first handshake. A file that cannot be read is left to PemFilesValidator, which
            // names the setting.
            try
            {
                _ = reloader.Current;
            }
            catch (Exception ex) when (ex is IOException or UnauthorizedAccessException or CryptographicException or ArgumentException)
            {
            }

            // Applies to every https:// endpoint of Kestrel:Endpoints; http:// endpoints stay cleartext.
            kestrel.ConfigureHttpsDefaults(https =>
            {
                https.ServerCertificateSelector = (_, _) => reloader.Current;
                if (o.ClientCaPath.Length > 0)
                {
                    // The certificate is asked for and checked here rather than with ClientCertificateMode.RequireCertificate,
                    // whose check (passed to SslStream's constructor, so it cannot be wrapped) refuses a client that sends
                    // none before ClientCertificateValidation is called: that refusal could not be logged or counted. The
                    // mode stays NoCertificate, so this callback is SslStream's only one, and the client is refused in the
                    // same place, the handshake, with or without a certificate.
                    https.OnAuthenticate = (connection, ssl) =>
                    {
                        var authorities = clientCas.Current;
                        ssl.ClientCertificateRequired = true;
                        ssl.RemoteCertificateValidationCallback = (_, certificate, _, _) => IsAcceptable(certificate, connection.RemoteEndPoint, authorities, refusals);

                        // SslStream builds a chain of its own before that check: with this policy, not the default one,
                        // which would download missing issuers from URLs the client's certificate names.
                        ssl.CertificateChainPolicy = ChainPolicy(authorities);
                    };
                }
            });
        });
        return services;
    }

    // The PEM files read once at start: a certificate, key or CA file that cannot be read would otherwise
    // pass every check above, the cleartext health probe would report the pod ready, and every TLS
    // handshake would fail. Files that are missing are left to the checks that name them.
    private sealed class PemFilesValidator : IValidateOptions<SecurityOptions>
    {
        public ValidateOptionsResult Validate(string? name, SecurityOptions options)
        {
            const string Section = SecurityOptions.SectionName;
            var failures = new List<string>();
            if (options.TlsConfigured && File.Exists(options.CertificatePath) && (options.KeyPath.Length == 0 || File.Exists(options.KeyPath)))
            {
                try
                {
                    using var certificate = CertificateReloader.Load(options.CertificatePath, options.KeyPath);
                }
                catch (Exception ex) when (ex is CryptographicException or ArgumentException or IOException)
                {
                    failures.Add($"{Section}:CertificatePath and {Section}:KeyPath must be a PEM certificate and its private key (KeyPath may be left out when the certificate file holds both): {ex.Message.TrimEnd('.')}.");
                }
            }

            if (options.TlsConfigured && options.ClientCaPath.Length > 0 && File.Exists(options.ClientCaPath))
            {
                if (ClientCaReloader.Read(options.ClientCaPath).Count == 0)
                {
                    failures.Add($"{Section}:ClientCaPath must hold at least one PEM certificate (-----BEGIN CERTIFICATE-----).");
                }
            }

            return failures.Count == 0 ? ValidateOptionsResult.Success : ValidateOptionsResult.Fail(failures);
        }
    }

    private static bool IsAcceptable(X509Certificate? certificate, EndPoint? peer, X509Certificate2Collection authorities, ClientCertificateRefusals refusals)
    {
        switch (certificate)
        {
            case null:
                refusals.RefusedWithoutCertificate(peer);
                return false;
            case X509Certificate2 certificate2:
                return IsIssuedBy(certificate2, authorities, refusals);
            default:
                using (var copy = X509CertificateLoader.LoadCertificate(certificate.GetRawCertData()))
                {
                    return IsIssuedBy(copy, authorities, refusals);
                }
        }
    }

    private static bool IsIssuedBy(X509Certificate2 certificate, X509Certificate2Collection authorities, ClientCertificateRefusals refusals)
    {
        using var chain = new X509Chain { ChainPolicy = ChainPolicy(authorities) };
        if (chain.Build(certificate))
        {
            return true;
        }

        refusals.Refused(certificate, Faults(chain));
        return false;
    }

    // The chain's faults: NotTimeValid (expired or not yet valid), PartialChain or UntrustedRoot (not issued by
    // a CA of ClientCaPath), NotValidForUsage (not for client authentication).
    private static X509ChainStatusFlags Faults(X509Chain chain) =>
        chain.ChainStatus.Aggregate(X509ChainStatusFlags.NoError, (faults, status) => faults | status.Status);

    // Chains built from the configured CAs alone, no revocation lookups, and no downloads: by default a
    // build fetches missing issuers from URLs the presented certificate names, which lets anyone who can
    // reach the port make the server fetch addresses of their choosing, holding a thread for seconds,
    // before authentication. A client certificate must be meant for client authentication (when it says).
    private static X509ChainPolicy ChainPolicy(X509Certificate2Collection authorities)
    {
        var policy = new X509ChainPolicy
        {
            TrustMode = X509ChainTrustMode.CustomRootTrust,
            RevocationMode = X509RevocationMode.NoCheck,
            DisableCertificateDownloads = true,
        };
        policy.CustomTrustStore.AddRange(authorities);
        policy.ApplicationPolicy.Add(new Oid("1.3.6.1.5.5.7.3.2"));
        return policy;
    }
}
