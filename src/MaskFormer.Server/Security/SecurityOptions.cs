namespace MaskFormer.Server.Security;

/// <summary>TLS, mutual TLS and bearer-token authentication. Bound from "MaskFormer:Security".</summary>
public sealed class SecurityOptions
{
    /// <summary>Configuration section name.</summary>
    public const string SectionName = "MaskFormer:Security";

    /// <summary>
    /// PEM certificate (chain) served on https:// endpoints; re-read when the file changes, so a renewed
    /// Kubernetes secret is served on new connections without a restart. Empty for no TLS.
    /// </summary>
    public string CertificatePath { get; set; } = "";

    /// <summary>PEM private key of <see cref="CertificatePath"/> (PKCS#8, PKCS#1 or SEC1).</summary>
    public string KeyPath { get; set; } = "";

    /// <summary>PEM CA certificate(s): when set, clients must present a certificate issued by one of them (mutual TLS).</summary>
    public string ClientCaPath { get; set; } = "";

    /// <summary>A file of bearer tokens, one per line (blank lines and lines starting with # ignored). Empty for none.</summary>
    public string TokensFile { get; set; } = "";

    /// <summary>The name of an environment variable holding bearer tokens, comma-separated. Empty for none.</summary>
    public string TokensEnvironmentVariable { get; set; } = "";

    /// <summary>grpc.health.v1: Open (no token needed, the default, so probes work) or Authenticated.</summary>
    public EndpointAccess Health { get; set; } = EndpointAccess.Open;

    /// <summary>Server reflection: Open (the default), Authenticated, or Off (not mapped: UNIMPLEMENTED).</summary>
    public EndpointAccess Reflection { get; set; } = EndpointAccess.Open;

    /// <summary>
    /// How often the server certificate and the client CAs are looked at again, so that one coming near its end or
    /// going out of date while loaded is warned of as it does (events 407, 408, 411, 412), not only at start-up or
    /// when its file changes. More than 0, at most a day.
    /// </summary>
    public TimeSpan CertificateCheckInterval { get; set; } = TimeSpan.FromHours(1);

    internal bool TlsConfigured => CertificatePath.Length > 0;

    internal bool TokensConfigured => TokensFile.Length > 0 || TokensEnvironmentVariable.Length > 0;
}

/// <summary>Who may call an auxiliary gRPC service.</summary>
public enum EndpointAccess
{
    /// <summary>Anyone who can connect.</summary>
    Open,

    /// <summary>Callers with a valid bearer token (open when no tokens are configured).</summary>
    Authenticated,

    /// <summary>Not served at all.</summary>
    Off,
}
