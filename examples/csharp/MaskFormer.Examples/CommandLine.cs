using System.Globalization;

namespace MaskFormer.Examples;

/// <summary>A command line's words: positional arguments, <c>--name value</c> options and <c>--flag</c> switches.</summary>
internal sealed class CommandLine
{
    private readonly Dictionary<string, string?> _options = [];

    private CommandLine(List<string> positional) => Positional = positional;

    public IReadOnlyList<string> Positional { get; }

    /// <summary>Splits <paramref name="args"/>; an option not in <paramref name="options"/> or <paramref name="flags"/> is a <see cref="UsageException"/>.</summary>
    public static CommandLine Parse(IEnumerable<string> args, IReadOnlyCollection<string> options, IReadOnlyCollection<string> flags)
    {
        var positional = new List<string>();
        var line = new CommandLine(positional);
        using var words = args.GetEnumerator();
        while (words.MoveNext())
        {
            var word = words.Current;
            if (!word.StartsWith("--", StringComparison.Ordinal) || word == "--")
            {
                positional.Add(word);
                continue;
            }

            var name = word[2..];
            var equals = name.IndexOf('=', StringComparison.Ordinal);
            string? value = null;
            if (equals >= 0)
            {
                (name, value) = (name[..equals], name[(equals + 1)..]);
            }

            if (flags.Contains(name) && value is null)
            {
                line._options[name] = null;
            }
            else if (options.Contains(name))
            {
                line._options[name] = value ?? (words.MoveNext() ? words.Current : throw new UsageException($"--{name} needs a value"));
            }
            else
            {
                throw new UsageException($"unknown option --{name}");
            }
        }

        return line;
    }

    public bool Has(string name) => _options.ContainsKey(name);

    public string Get(string name, string fallback) => _options.TryGetValue(name, out var value) && value is not null ? value : fallback;

    /// <summary>A number of seconds above 0 (or 0 and more with <paramref name="zeroAllowed"/>).</summary>
    public double Seconds(string name, double fallback, bool zeroAllowed = false) =>
        !Has(name) ? fallback
        : double.TryParse(Get(name, ""), NumberStyles.Float, CultureInfo.InvariantCulture, out var seconds) && (seconds > 0 || (zeroAllowed && seconds == 0)) && double.IsFinite(seconds) ? seconds
        : throw new UsageException($"--{name} takes a number of seconds {(zeroAllowed ? "of 0 or more" : "above 0")}");

    public int Count(string name, int fallback) =>
        !Has(name) ? fallback
        : int.TryParse(Get(name, ""), NumberStyles.None, CultureInfo.InvariantCulture, out var count) ? count
        : throw new UsageException($"--{name} must be 0 or more");
}

/// <summary>A mistake on the command line: printed with the usage, exit code 2.</summary>
internal sealed class UsageException(string message) : Exception(message);
