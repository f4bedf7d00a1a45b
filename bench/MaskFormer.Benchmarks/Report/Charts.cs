using ScottPlot;

namespace MaskFormer.Benchmarks.Report;

/// <summary>Throughput and latency against concurrency, one chart each per model (ScottPlot).</summary>
internal static class Charts
{
    /// <summary>The font every chart is drawn in, shipped beside the program (Fonts/, DejaVu Sans, Bitstream Vera licence).</summary>
    public const string FontName = "DejaVu Sans";

    private static readonly Lazy<bool> s_fontRegistered = new(RegisterFont);

    public static IReadOnlyList<string> Write(IReadOnlyList<CellResult> results, string model, string directory)
    {
        _ = s_fontRegistered.Value;
        var levels = results.Where(r => r.Model == model && r.Scenario == "unary").Select(r => r.Concurrency).Distinct().Order().ToArray();
        if (levels.Length == 0)
        {
            return [];
        }

        var positions = levels.Select(c => Math.Log2(c)).ToArray();
        var labels = levels.Select(c => c.ToString(System.Globalization.CultureInfo.InvariantCulture)).ToArray();
        var throughput = Plot(model, "images per second (median of rounds)", positions, labels);
        var latency = Plot(model, "latency p50, ms (median of rounds)", positions, labels);
        foreach (var (tasks, name) in new[] { ("all", "service, all three tasks"), ("semantic", "service, semantic only") })
        {
            var rates = levels.Select(c => Stats.Median(Cells(results, model, "unary", tasks, c).Select(r => r.ImagesPerSecond))).ToArray();
            var p50 = levels.Select(c => Stats.Median(Cells(results, model, "unary", tasks, c).Select(r => r.LatencyP50Ms))).ToArray();
            throughput.Add.Scatter(positions, rates).LegendText = name;
            latency.Add.Scatter(positions, p50).LegendText = name;
        }

        var raw = results.Where(r => r.Model == model && r.Scenario == RawLayout.AsService).GroupBy(r => r.Concurrency)
            .Select(g => (Batch: g.Key, Rate: Stats.Median(g.Select(r => r.ImagesPerSecond)), Latency: Stats.Median(g.Select(r => r.LatencyP50Ms)))).ToArray();
        foreach (var (batch, rate, runLatency) in raw.Where(r => r.Batch == 1 || r.Rate == raw.Max(x => x.Rate)).DistinctBy(r => r.Batch))
        {
            var line = throughput.Add.HorizontalLine(rate);
            line.LegendText = $"raw ONNX Runtime, batch {batch}";
            line.LinePattern = LinePattern.Dashed;
            if (batch == 1)
            {
                var runLine = latency.Add.HorizontalLine(runLatency);
                runLine.LegendText = "raw ONNX Runtime, one run (batch 1)";
                runLine.LinePattern = LinePattern.Dashed;
            }
        }

        var perCore = results.Where(r => r.Model == model && r.Scenario == RawLayout.SessionPerCore).GroupBy(r => r.Concurrency)
            .Select(g => (Batch: g.Key, Rate: Stats.Median(g.Select(r => r.ImagesPerSecond)), Sessions: g.First().Sessions)).OrderByDescending(r => r.Rate).ToArray();
        if (perCore.Length > 0)
        {
            var line = throughput.Add.HorizontalLine(perCore[0].Rate);
            line.LegendText = $"raw ONNX Runtime, {perCore[0].Sessions} one-thread sessions, batch {perCore[0].Batch} (reference)";
            line.LinePattern = LinePattern.Dotted;
        }

        Directory.CreateDirectory(directory);
        var throughputFile = Path.Combine(directory, $"{model}-throughput.png");
        var latencyFile = Path.Combine(directory, $"{model}-latency.png");
        throughput.SavePng(throughputFile, 800, 480);
        latency.SavePng(latencyFile, 800, 480);
        return [throughputFile, latencyFile];
    }

    private static IEnumerable<CellResult> Cells(IReadOnlyList<CellResult> results, string model, string scenario, string tasks, int concurrency) =>
        results.Where(r => r.Model == model && r.Scenario == scenario && r.Tasks == tasks && r.Concurrency == concurrency);

    // SkiaSharp draws no text at all where the system has no fonts, silently; the shipped font also makes
    // the charts look the same on every machine.
    private static bool RegisterFont()
    {
        var folder = Path.Combine(AppContext.BaseDirectory, "Fonts");
        var regular = Path.Combine(folder, "DejaVuSans.ttf");
        var bold = Path.Combine(folder, "DejaVuSans-Bold.ttf");
        if (!File.Exists(regular) || !File.Exists(bold))
        {
            throw new InvalidOperationException($"the charts' font is missing from {folder}; rebuild the benchmarks.");
        }

        Fonts.AddFontFile(FontName, regular, bold: false, italic: false);
        Fonts.AddFontFile(FontName, bold, bold: true, italic: false);
        Fonts.Default = FontName;
        return true;
    }

    private static Plot Plot(string model, string yLabel, double[] positions, string[] labels)
    {
        var plot = new Plot();
        plot.Title(model);
        plot.XLabel("concurrent unary callers");
        plot.YLabel(yLabel);
        plot.Axes.Bottom.SetTicks(positions, labels);
        plot.ShowLegend(Alignment.UpperLeft);
        return plot;
    }
}
