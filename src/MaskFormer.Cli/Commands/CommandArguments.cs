namespace MaskFormer.Cli.Commands;

/// <summary>Positional arguments and "--name value" options, the little the CLI needs.</summary>
internal sealed class CommandArguments
{
    private readonly Dictionary<string, string> _options = new(StringComparer.Ordinal);

    public CommandArguments(IEnumerable<string> args)
    {
        var queue = new Queue<string>(args);
        while (queue.TryDequeue(out var arg))
        {
            if (arg.StartsWith("--", StringComparison.Ordinal))
            {
                var name = arg[2..];
                var equals = name.IndexOf('=', StringComparison.Ordinal);
                if (equals >= 0)
                {
                    _options[name[..equals]] = name[(equals + 1)..];
                }
                else if (queue.TryPeek(out var next) && !next.StartsWith("--", StringComparison.Ordinal))
                {
                    _options[name] = queue.Dequeue();
                }
                else
                {
                    _options[name] = "true";
                }
            }
            else
            {
                Positional.Add(arg);
            }
        }
    }

    public List<string> Positional { get; } = [];

    public string Get(string name, string fallback) => _options.GetValueOrDefault(name, fallback);

    public double GetDouble(string name, double fallback) =>
        _options.TryGetValue(name, out var text)
            ? double.Parse(text, System.Globalization.CultureInfo.InvariantCulture)
            : fallback;

    public string ServerAddress => Get("server", Environment.GetEnvironmentVariable("MASKFORMER_SERVER") ?? "http://127.0.0.1:5081");
}
