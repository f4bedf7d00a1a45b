using System.Globalization;

namespace MaskFormer.Benchmarks.Soak;

/// <summary>
/// The load of a soak run: paced streams of a fixed number of frames, closed-loop unary callers for the
/// whole duration, then streams that disconnect mid-stream. Every part ends by itself; the whole run is
/// cut after <see cref="HardLimit"/>.
/// </summary>
internal sealed record SoakSettings
{
    public int Streams { get; init; } = 32;

    public int FramesPerStream { get; init; } = 300;

    public int UnaryCallers { get; init; } = 16;

    /// <summary>How long the unary callers run; the streams pace their frames over it.</summary>
    public TimeSpan Duration { get; init; } = TimeSpan.FromMinutes(2);

    /// <summary>Streams that send frames and disconnect without waiting for their answers, after the load.</summary>
    public int Disconnects { get; init; } = 32;

    /// <summary>Most resident-memory growth allowed from a quarter of the way through the load to its end.</summary>
    public int MaxGrowthMiB { get; init; } = 64;

    /// <summary>Frames of one stream in the engine at once.</summary>
    public int MaxInFlight { get; init; } = 4;

    /// <summary>After this the run is cancelled and fails: three times the duration plus two minutes.</summary>
    public TimeSpan HardLimit => (Duration * 3) + TimeSpan.FromMinutes(2);

    /// <summary>The CI variant: 4 streams x 30 frames and 2 unary callers for 15 s, 8 disconnects.</summary>
    public static SoakSettings Quick { get; } = new() { Streams = 4, FramesPerStream = 30, UnaryCallers = 2, Duration = TimeSpan.FromSeconds(15), Disconnects = 8 };

    /// <summary>
    /// <c>[--quick] [--streams N] [--frames N] [--unary N] [--duration SECONDS] [--disconnects N] [--max-growth-mib N]</c>.
    /// </summary>
    public static SoakSettings Parse(IReadOnlyList<string> args)
    {
        var settings = args.Contains("--quick") ? Quick : new SoakSettings();
        for (var i = 0; i < args.Count; i++)
        {
            if (args[i] == "--quick")
            {
                continue;
            }

            if (i + 1 >= args.Count || !int.TryParse(args[i + 1], NumberStyles.Integer, CultureInfo.InvariantCulture, out var value) || value < 0)
            {
                throw new ArgumentException($"soak: '{args[i]}' needs a whole number after it; usage: soak [--quick] [--streams N] [--frames N] [--unary N] [--duration SECONDS] [--disconnects N] [--max-growth-mib N]");
            }

            settings = args[i++] switch
            {
                "--streams" => settings with { Streams = value },
                "--frames" => settings with { FramesPerStream = Math.Max(1, value) },
                "--unary" => settings with { UnaryCallers = value },
                "--duration" => settings with { Duration = TimeSpan.FromSeconds(Math.Max(1, value)) },
                "--disconnects" => settings with { Disconnects = value },
                "--max-growth-mib" => settings with { MaxGrowthMiB = value },
                var unknown => throw new ArgumentException($"soak: unknown option '{unknown}'"),
            };
        }

        return settings;
    }
}
