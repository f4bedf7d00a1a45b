using BenchmarkDotNet.Running;

namespace MaskFormer.Benchmarks;

/// <summary>
/// <c>throughput [requests]</c>, <c>stream [frames]</c> and <c>firstcall [runs] [port]</c> print side-by-side reports;
/// <c>charts CSV [DIR]</c> draws a recorded report's charts again;
/// <c>soak [--quick] [options]</c> is the load, soak and disconnect run of RELIABILITY.md; anything else goes
/// to BenchmarkDotNet's switcher (per-stage suites). Exit code 1 on failure.
/// </summary>
internal static class BenchmarkProgram
{
    public static async Task<int> Main(string[] args)
    {
        try
        {
            return args.FirstOrDefault() switch
            {
                "throughput" => await ThroughputReport.RunAsync([.. args.Skip(1)]),
                "stream" => await StreamReport.RunAsync([.. args.Skip(1)]),
                "report" => await Report.BenchmarkReport.RunAsync([.. args.Skip(1)]),
                "modelrun" => await Report.ModelRunReport.RunAsync([.. args.Skip(1)]),
                "arena" => await Report.ArenaReport.RunAsync([.. args.Skip(1)]),
                "overhead" => await Report.OverheadReport.RunAsync([.. args.Skip(1)]),
                "profile" => await Report.ProfileLoad.RunAsync([.. args.Skip(1)]),
                "hires" => await Report.HighResolutionReport.RunAsync([.. args.Skip(1)]),
                "tracking" => await TrackingReport.RunAsync([.. args.Skip(1)]),
                "postproc" => await Report.PostprocessCpuReport.RunAsync([.. args.Skip(1)]),
                "postcallers" => await Report.PostprocessCallersReport.RunAsync([.. args.Skip(1)]),
                "charts" => await RedrawChartsAsync([.. args.Skip(1)]),
                "encode" => PrintLines(EncodeReport.Run(args.Length > 1 ? int.Parse(args[1], System.Globalization.CultureInfo.InvariantCulture) : 30)),
                "firstcall" => await FirstCallReport.RunAsync([.. args.Skip(1)]),
                "soak" => await Soak.SoakReport.RunAsync([.. args.Skip(1)]),
                _ => BenchmarkSwitcher.FromAssembly(typeof(BenchmarkProgram).Assembly).Run(args).Any(summary => summary.HasCriticalValidationErrors) ? 1 : 0,
            };
        }
        catch (Exception ex) when (ex is ArgumentException or InvalidOperationException or IOException or Grpc.Core.RpcException or TimeoutException)
        {
            await Console.Error.WriteLineAsync($"benchmark failed: {ex}");
            return 1;
        }
    }

    /// <summary><c>charts CSV [DIR]</c>: draws a recorded run's charts again from its benchmark.csv (into DIR, else beside it).</summary>
    private static async Task<int> RedrawChartsAsync(string[] args)
    {
        if (args.Length is < 1 or > 2)
        {
            throw new ArgumentException("usage: charts CSV [DIR]");
        }

        var lines = await File.ReadAllLinesAsync(args[0]);
        if (lines.Length == 0 || lines[0] != Report.CellResult.CsvHeader)
        {
            throw new ArgumentException($"{args[0]} is not a benchmark.csv (its header differs)");
        }

        var results = lines.Skip(1).Where(l => l.Length > 0).Select(Report.CellResult.FromCsv).ToArray();
        var directory = args.Length == 2 ? args[1] : Path.GetDirectoryName(Path.GetFullPath(args[0]))!;
        foreach (var model in results.Select(r => r.Model).Distinct())
        {
            foreach (var chart in Report.Charts.Write(results, model, directory))
            {
                Console.WriteLine($"wrote {chart}");
            }
        }

        return 0;
    }

    private static int PrintLines(IEnumerable<string> lines)
    {
        foreach (var line in lines)
        {
            Console.WriteLine(line);
        }

        return 0;
    }
}
