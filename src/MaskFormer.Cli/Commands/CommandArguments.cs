using System.Globalization;

namespace MaskFormer.Cli.Commands;

/// <summary>Positional arguments, "--name value" options and "--flag" switches, the little the CLI needs.</summary>
internal sealed class CommandArguments
{
    /// <summary>The environment variable naming the server, shared with every example and test client.</summary>
    public const string AddressVariable = "MASKFORMER_ADDRESS";

    public const string DefaultAddress = "127.0.0.1:5081";

    // Switches take no value, so "--panoptic clip/" leaves clip/ positional.
    private static readonly HashSet<string> s_flags = ["panoptic", "no-pacing", "allow-downscale", "delta", "no-overlays", "help"];

    private readonly Dictionary<string, string> _options = new(StringComparer.Ordinal);

    public CommandArguments(IEnumerable<string> args)
    {
        var queue = new Queue<string>(args);
        while (queue.TryDequeue(out var arg))
        {
            if (arg == "-h")
            {
                _options["help"] = "true";
            }
            else if (arg.StartsWith("--", StringComparison.Ordinal) && arg.Length > 2)
            {
                var name = arg[2..];
                var equals = name.IndexOf('=', StringComparison.Ordinal);
                if (equals >= 0)
                {
                    _options[name[..equals]] = name[(equals + 1)..];
                }
                else if (s_flags.Contains(name))
                {
                    _options[name] = "true";
                }
                else if (queue.TryDequeue(out var value))
                {
                    _options[name] = value;
                }
                else
                {
                    throw new FormatException($"--{name} needs a value.");
                }
            }
            else
            {
                Positional.Add(arg);
            }
        }
    }

    public List<string> Positional { get; } = [];

    public bool WantsHelp => Has("help");

    /// <summary>
    /// The server as a URL: --server, else $MASKFORMER_ADDRESS, else 127.0.0.1:5081; "host:port" means http,
    /// a URL without a port its scheme's (80, 443). What <see cref="AddressProblem"/> finds is a <see cref="UsageException"/>.
    /// </summary>
    public Uri ServerAddress
    {
        get
        {
            var text = Get("server", Environment.GetEnvironmentVariable(AddressVariable) is { Length: > 0 } fromEnvironment ? fromEnvironment : DefaultAddress);
            if (AddressProblem(text) is { } problem)
            {
                throw new UsageException(problem);
            }

            var url = text.Contains("://", StringComparison.Ordinal) ? text : $"http://{text}";
            return Uri.TryCreate(url, UriKind.Absolute, out var address) && address.Scheme is "http" or "https"
                ? address
                : throw new UsageException($"'{text}' is not a server address: use host:port or http://host:port (--server or ${AddressVariable}).");
        }
    }

    // What every client here says of an address it refuses, in the same words, before anything is tried: left
    // to each client's parsing these were late connect errors, connections to another address, or another
    // message per client.
    private static string Refused(string address, string why) =>
        $"--server (or {AddressVariable}) takes host:port or http(s)://host[:port]; {address} {why}";

    // What is wrong with an address, the first thing in reading order, or null: a scheme other than http(s), a path,
    // a host without a port or scheme, no host, a URL's host with a ':' outside brackets, a port that is not one. A
    // URL without a port takes its scheme's; slashes at the end are no path.
    private static string? AddressProblem(string address)
    {
        // "://" after another '/' is in a path, not after a scheme.
        var schemeEnd = address.IndexOf("://", StringComparison.Ordinal);
        var hasScheme = schemeEnd >= 0 && address.IndexOf('/', StringComparison.Ordinal) == schemeEnd + 1;
        if (hasScheme && address[..schemeEnd] is not ("http" or "https"))
        {
            return Refused(address, $"has scheme \"{address[..schemeEnd]}\", which is not http or https");
        }

        var rest = (hasScheme ? address[(schemeEnd + 3)..] : address).TrimEnd('/');
        var pathStart = rest.IndexOf('/', StringComparison.Ordinal);
        if (pathStart >= 0)
        {
            // A gRPC call's path is its method's (/maskformer.v1.SegmentationService/Segment).
            return Refused(address, $"has path \"{rest[pathStart..]}\", which a gRPC address cannot have");
        }

        var (host, port) = SplitHostPort(rest);
        return port switch
        {
            // As http:// it would be port 80, and gRPC's own clients take 443 (even for cleartext).
            null when !hasScheme => Refused(address, "has no port (the service listens on 5081 unless told otherwise)"),
            _ when host is "" or "[]" => Refused(address, "has no host"),
            null when host.Contains(':', StringComparison.Ordinal) && !(host.StartsWith('[') && host.EndsWith(']')) => Refused(address, $"has host \"{host}\": an IPv6 host goes in brackets ([::1]:5081)"),
            { } given when !IsPortNumber(given) => Refused(address, $"has port \"{given}\", which is not a number from 1 to 65535"),
            _ => null,
        };
    }

    // The host and the text after its colon (null without one): an IPv6 address takes its port after brackets
    // ("[::1]:5081"); without them ("::1") it is a host alone.
    private static (string Host, string? Port) SplitHostPort(string hostAndPort)
    {
        if (hostAndPort.StartsWith('['))
        {
            var end = hostAndPort.IndexOf("]:", StringComparison.Ordinal);
            return end < 0 ? (hostAndPort, null) : (hostAndPort[..(end + 1)], hostAndPort[(end + 2)..]);
        }

        var colon = hostAndPort.IndexOf(':', StringComparison.Ordinal);
        return colon >= 0 && colon == hostAndPort.LastIndexOf(':')
            ? (hostAndPort[..colon], hostAndPort[(colon + 1)..])
            : (hostAndPort, null);
    }

    private static bool IsPortNumber(string port) =>
        port.Length is > 0 and <= 5 && port.All(char.IsAsciiDigit) && int.Parse(port, CultureInfo.InvariantCulture) is >= 1 and <= 65535;

    public bool Has(string name) => _options.ContainsKey(name);

    public string Get(string name, string fallback) => _options.GetValueOrDefault(name, fallback);

    public double GetDouble(string name, double fallback)
    {
        if (!_options.TryGetValue(name, out var text))
        {
            return fallback;
        }

        return double.TryParse(text, NumberStyles.Float, CultureInfo.InvariantCulture, out var value) && double.IsFinite(value)
            ? value
            : throw new UsageException($"--{name} {text}: expected a number.");
    }

    /// <summary>The options given that the command does not know, as "--name".</summary>
    public IEnumerable<string> Unknown(IEnumerable<string> known)
    {
        var allowed = new HashSet<string>([.. known, .. ClientTls.OptionNames], StringComparer.Ordinal) { "help", "server" };
        return _options.Keys.Where(name => !allowed.Contains(name)).Select(name => $"--{name}");
    }
}
