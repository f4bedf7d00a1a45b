using MaskFormer.Engine.Sessions;
using MaskFormer.Server.Security;
using Microsoft.AspNetCore.Server.Kestrel.Core;

namespace MaskFormer.Server.Hosting;

/// <summary>
/// Settings the host reads without checking them first: Kestrel's endpoints (read only when it starts,
/// where a bad one ends the process with a stack trace) and list elements the configuration binder
/// cannot convert (it leaves them out without a word).
/// </summary>
internal static class HostSettingsCheck
{
    private const string Endpoints = "Kestrel:Endpoints";

    /// <summary>What is wrong with the first endpoint that cannot work, naming its setting; null when none.</summary>
    public static string? EndpointProblem(IConfiguration configuration)
    {
        var tls = configuration.GetSection(SecurityOptions.SectionName).Get<SecurityOptions>()?.TlsConfigured ?? false;
        foreach (var endpoint in configuration.GetSection(Endpoints).GetChildren())
        {
            var setting = $"{Endpoints}:{endpoint.Key}";
            var url = endpoint["Url"];
            if (string.IsNullOrWhiteSpace(url))
            {
                return $"{setting}:Url is not set: every endpoint needs one (http://HOST:PORT, or https://HOST:PORT with TLS).";
            }

            BindingAddress address;
            try
            {
                address = BindingAddress.Parse(url);
            }
            catch (FormatException)
            {
                return $"{setting}:Url '{url}' is not a URL: give http://HOST:PORT, or https://HOST:PORT with TLS.";
            }

            if (address.Scheme is not ("http" or "https") || address.IsUnixPipe || address.IsNamedPipe)
            {
                return $"{setting}:Url '{url}' must start with http:// or https://.";
            }

            if (address.Port is < 0 or > 65535)
            {
                return $"{setting}:Url '{url}' has port {address.Port}: ports are 0 (any free one) to 65535.";
            }

            if (address.Scheme == "https" && !tls && !endpoint.GetSection("Certificate").Exists() && !configuration.GetSection("Kestrel:Certificates:Default").Exists())
            {
                return $"{setting}:Url '{url}' is https:// but no certificate is set: set {SecurityOptions.SectionName}:CertificatePath (and KeyPath), or serve http://.";
            }

            if (endpoint["Protocols"] is { Length: > 0 } protocols && !Enum.TryParse<HttpProtocols>(protocols, ignoreCase: true, out _))
            {
                return $"{setting}:Protocols '{protocols}' must be Http1, Http2, Http1AndHttp2 or Http1AndHttp2AndHttp3 (gRPC needs Http2).";
            }
        }

        return null;
    }

    /// <summary>
    /// The setting whose address <paramref name="message"/> (Kestrel's "Failed to bind to address ...")
    /// names: an endpoint's URL or the Prometheus listener's.
    /// </summary>
    public static string SettingOfAddress(IConfiguration configuration, string message)
    {
        var candidates = configuration.GetSection(Endpoints).GetChildren()
            .Select(endpoint => (Setting: $"{Endpoints}:{endpoint.Key}:Url", Url: endpoint["Url"]))
            .Append(("MaskFormer:Telemetry:PrometheusUrl", configuration["MaskFormer:Telemetry:PrometheusUrl"]));
        foreach (var (setting, url) in candidates)
        {
            if (url is { Length: > 0 } && Uri.TryCreate(url, UriKind.Absolute, out var uri) && uri.Port > 0
                && message.Contains($":{uri.Port}", StringComparison.Ordinal))
            {
                return setting;
            }
        }

        return $"{Endpoints}:Grpc:Url";
    }

    /// <summary>
    /// Binds each element of the lists the server reads on its own, so that a value the binder cannot
    /// convert is an error naming it (InvalidOperationException over FormatException), as it is outside a
    /// list. In a list the binder drops the element: "Devices:0:Required=yes" would drop the device and
    /// its Required guard, and serve on the CPU.
    /// </summary>
    public static void BindListElements(IConfiguration configuration)
    {
        foreach (var device in configuration.GetSection(InferenceOptions.SectionName + ":Devices").GetChildren())
        {
            device.Get<DeviceOptions>();
        }

        foreach (var model in configuration.GetSection("MaskFormer:Models:Overrides").GetChildren())
        {
            foreach (var id in model.GetSection("ThingIds").GetChildren())
            {
                id.Get<int>();
            }
        }
    }
}
