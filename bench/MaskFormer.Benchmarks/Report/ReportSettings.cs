using System.Globalization;

namespace MaskFormer.Benchmarks.Report;

/// <summary>
/// <c>report [--quick] [--out DIR] [--rounds N] [--seconds S] [--realistic-seconds S] [--realistic-images N] [--rss N1,N2] [--server-arg --Key=Value]...</c>.
/// Full (default): both models, 3 rounds (a median of three ratios, each from one round), RSS after
/// 1,000 and 10,000 requests (as sampled, and after a full collection the report asks for), written to BENCHMARKS.md
/// and bench/results/ of the repository; each service cell's steady-state window lasts at least 4 s on
/// the tiny model; on the realistic-width one 6 s, and its unary and stream cells hold at least 16 images
/// (a window holds at least one answer per caller group besides its two ends, see <see cref="LoadWindow"/>;
/// with 8 images in 2 s one batch group more or less moved a 16-caller cell by a third), so the default
/// fits in about 15 minutes on a quiet 2-core machine. Quick: the tiny model, one round,
/// short cells, written to a temporary folder unless --out says otherwise.
/// </summary>
internal sealed record ReportSettings
{
    public bool Quick { get; init; }

    public required string OutputDirectory { get; init; }

    public required string ResultsDirectory { get; init; }

    public int Rounds { get; init; } = 3;

    public TimeSpan CellDuration { get; init; } = TimeSpan.FromSeconds(4);

    /// <summary>The shortest window of a realistic-width cell: at about 1 image/s the image counts decide.</summary>
    public TimeSpan RealisticCellDuration { get; init; } = TimeSpan.FromSeconds(6);

    /// <summary>The fewest images a realistic-width unary or stream cell's window holds (the size cells: one).</summary>
    public int RealisticMinImages { get; init; } = 16;

    public (int First, int Second) RssRequests { get; init; } = (1000, 10000);

    public IReadOnlyList<string> ServerArguments { get; init; } = [];

    public IReadOnlyList<int> Concurrency { get; init; } = [1, 4, 16];

    public IReadOnlyList<int> RawBatches { get; init; } = [1, 2, 4];

    public string CommandLine { get; init; } = "";

    public static ReportSettings Parse(string[] args)
    {
        var quick = args.Contains("--quick");
        string? output = null;
        int? rounds = null;
        double? seconds = null;
        double? realisticSeconds = null;
        int? realisticImages = null;
        (int, int)? rss = null;
        var serverArguments = new List<string>();
        for (var i = 0; i < args.Length; i++)
        {
            switch (args[i])
            {
                case "--quick":
                    break;
                case "--out":
                    output = Path.GetFullPath(args[++i]);
                    break;
                case "--rounds":
                    rounds = int.Parse(args[++i], CultureInfo.InvariantCulture);
                    break;
                case "--seconds":
                    seconds = double.Parse(args[++i], CultureInfo.InvariantCulture);
                    break;
                case "--realistic-seconds":
                    realisticSeconds = double.Parse(args[++i], CultureInfo.InvariantCulture);
                    break;
                case "--realistic-images":
                    realisticImages = int.Parse(args[++i], CultureInfo.InvariantCulture);
                    break;
                case "--rss":
                    var parts = args[++i].Split(',');
                    rss = (int.Parse(parts[0], CultureInfo.InvariantCulture), int.Parse(parts[1], CultureInfo.InvariantCulture));
                    break;
                case "--server-arg":
                    serverArguments.Add(args[++i]);
                    break;
                default:
                    throw new ArgumentException($"unknown argument '{args[i]}'; usage: report [--quick] [--out DIR] [--rounds N] [--seconds S] [--realistic-seconds S] [--realistic-images N] [--rss N1,N2] [--server-arg --Key=Value]...");
            }
        }

        output ??= quick ? Path.Combine(Path.GetTempPath(), $"maskformer-bench-{Environment.ProcessId}") : RepositoryPaths.Root;
        return new ReportSettings
        {
            Quick = quick,
            OutputDirectory = output,
            ResultsDirectory = output == RepositoryPaths.Root ? Path.Combine(output, "bench", "results") : Path.Combine(output, "results"),
            Rounds = rounds ?? (quick ? 1 : 3),
            CellDuration = TimeSpan.FromSeconds(seconds ?? (quick ? 0.6 : 4)),
            RealisticCellDuration = TimeSpan.FromSeconds(realisticSeconds ?? 6),
            RealisticMinImages = realisticImages ?? 16,
            RssRequests = rss ?? (quick ? (100, 300) : (1000, 10000)),
            ServerArguments = serverArguments,
            RawBatches = quick ? [1, 4] : [1, 2, 4],
            CommandLine = "report " + string.Join(' ', args),
        };
    }
}
