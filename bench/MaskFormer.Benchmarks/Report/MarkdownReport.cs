using System.Globalization;
using System.Text;
using MaskFormer.Engine.Sessions;

namespace MaskFormer.Benchmarks.Report;

/// <summary>Writes BENCHMARKS.md: the run's machine and load, the targets side by side, every cell, charts and notes.</summary>
internal static class MarkdownReport
{
    public static string Write(
        ReportSettings settings,
        RunInfo run,
        InferenceOptions inference,
        RawLayout layout,
        IReadOnlyList<CellResult> results,
        IReadOnlyList<ResidentMemory> rss,
        IReadOnlyList<(string Model, string Image)> inputs,
        string csv,
        IReadOnlyList<string> charts)
    {
        var text = new StringBuilder();
        var relative = (string path) => Path.GetRelativePath(settings.OutputDirectory, path).Replace('\\', '/');
        Line(text, "# Benchmarks");
        Line(text);
        Line(text, "Written by one command, which measures everything below in one run (do not edit by hand; the notes at the end come from `bench/BENCHMARKS.notes.md`):");
        Line(text);
        Line(text, "```bash");
        Line(text, $"dotnet run -c Release --project bench/MaskFormer.Benchmarks -- {settings.CommandLine.Trim()}");
        Line(text, "```");
        Line(text);
        Line(text, "## Machine and load");
        Line(text);
        var others = run.OthersBefore is { } busy ? string.Create(CultureInfo.InvariantCulture, $"{busy:F2}") : "unknown";
        Line(text, "| cores | CPU | memory | OS | .NET | ONNX Runtime | load avg before (1/5/15 min) | after | cores other processes used in the 5 s before | started (UTC) | took |");
        Line(text, "| ---: | --- | --- | --- | --- | --- | --- | --- | ---: | --- | ---: |");
        Line(text, $"| {Environment.ProcessorCount} | {MachineInfo.CpuModel()} | {MachineInfo.Memory()} | {MachineInfo.Os()} | {MachineInfo.DotNet()} | {MachineInfo.OnnxRuntime()} | {run.LoadBefore} | {run.LoadAfter} | {others} | {run.Started:yyyy-MM-dd HH:mm} | {(run.Finished - run.Started).TotalMinutes:F1} min |");
        Line(text);
        if (layout.Device.IsCuda)
        {
            Line(text, $"GPU (nvidia-smi: name, memory, driver): {MachineInfo.Gpus() ?? "not reported"}. The service's sessions and raw ONNX Runtime's run on {layout.Device} with the CUDA execution provider (`SessionFactory.CreateOptions`); input and outputs cross between host and device on every run, in both.");
            Line(text);
        }

        // Other processes' CPU just before the run decides; the 1-min load average still counts the
        // build that `dotnet run` does first, so it is the rule only where /proc/stat is missing.
        var load = double.TryParse(run.LoadBefore.Split(' ')[0], NumberStyles.Float, CultureInfo.InvariantCulture, out var l) ? l : 0;
        if (run.OthersBefore is { } othersBefore ? MachineInfo.IsBusy(othersBefore) : load > Environment.ProcessorCount * 0.5)
        {
            Line(text, $"**The machine was shared and busy during this run** (other processes kept {others} of {Environment.ProcessorCount} cores busy in the 5 s before it; load average {run.LoadBefore} before, {run.LoadAfter} after): other processes competed for the CPU, so absolute rates are low and noisy. The ratios compare measurements taken minutes apart under the same kind of load; min and median over rounds show the spread.");
            Line(text);
        }

        Line(text, $"Service settings (as the server runs by default{(settings.ServerArguments.Count > 0 ? $", plus `{string.Join(' ', settings.ServerArguments)}`" : "")}): {Count(layout.Sessions, layout.Device.IsCuda ? $"{layout.Device} session" : "CPU session")}, {Count(layout.Threads, "intra-op thread")} each, spinning {(inference.AllowSpinning ? "on" : "off")}, max batch {inference.MaxBatchSize}, queue delay {inference.MaxQueueDelay.TotalMilliseconds:F0} ms. Raw ONNX Runtime uses the same session options (`SessionFactory.CreateOptions`) and as many sessions, one caller each, on a pre-built tensor{(layout.Device.IsCuda ? "" : "; beside it, for reference, raw ONNX Runtime with a one-thread session per core (its best layout for small models), which the targets do not use")}. The service runs in its own process (`MaskFormer.Server.dll`) and is called over loopback gRPC by a light client (pre-encoded images, an HTTP/2 connection per cell with a 16 MiB stream window); its CPU is the server process's own. {settings.Rounds} round(s), after one unrecorded unary and one stream cell per task set that warm the server's code up. Each service cell is measured in steady state: its first answers (one batch's worth of callers, or a stream's first frames) warm it up, then a window of at least {settings.CellDuration.TotalSeconds:F1} s ({settings.RealisticCellDuration.TotalSeconds:F1} s and {settings.RealisticMinImages} images on `{BenchmarkInputs.Realistic}`, one image for its size rows) and at least one caller group's answers besides its two ends, each end at the end of a group of answers (callers answered by one batch arrive together); unary calls still out when it closes finish and are not counted (a stream's call is cancelled). A stream's client keeps twice its frames in flight outstanding. Raw cells run at least that long.");
        Line(text);
        Line(text, "Inputs: " + string.Join("; ", inputs.Select(i => $"`{i.Model}`: {i.Image}")) + "; the size rows use that image scaled to 512x512 and 1920x1080 (JPEG).");
        Line(text);

        Line(text, "## Targets (issue 13)");
        Line(text);
        Line(text, "Each ratio is taken within a round from cells measured next to each other, in turns first (raw ONNX Runtime laid out as the service and the 16-caller cells; a stream and its 4-caller unary cell); *measured* is the median of the rounds' ratios, and where the rounds do not all agree with its verdict, the last column says in how many the goal was met.");
        Line(text);
        Line(text, "| target | model | goal | measured | each round | |");
        Line(text, "| --- | --- | ---: | ---: | ---: | --- |");
        foreach (var (model, _) in inputs)
        {
            WriteTargets(text, results, model);
        }

        if (rss.Count == 2)
        {
            var ratio = rss[1].AtRest.Resident / (double)rss[0].AtRest.Resident;
            Line(text, $"| resident memory after {rss[1].Requests:N0} ÷ after {rss[0].Requests:N0} requests, each at rest (after the server gave memory back once idle) | {BenchmarkInputs.Tiny} | ≤ 1.05 | {ratio:F3} | (one server, after the rounds) | {Mark(ratio <= 1.05)} |");
            Line(text, $"| the same, each right after a full collection the report asks for | {BenchmarkInputs.Tiny} | (shown) | {rss[1].Collected.Resident / (double)rss[0].Collected.Resident:F3} | (one server, after the rounds) |  |");
            Line(text, $"| the same, sampled as it runs (no collection asked for) | {BenchmarkInputs.Tiny} | (shown) | {rss[1].Sampled / (double)rss[0].Sampled:F3} | (one server, after the rounds) |  |");
            Line(text, $"| managed heap after {rss[1].Requests:N0} ÷ after {rss[0].Requests:N0} requests, each at rest | {BenchmarkInputs.Tiny} | (shown) | {rss[1].AtRest.ManagedHeap / (double)rss[0].AtRest.ManagedHeap:F3} | (one server, after the rounds) |  |");
        }

        Line(text);
        Line(text, "Definitions: *service ÷ raw* compares the service with 16 callers (all three tasks, or semantic only) to raw ONNX Runtime laid out as the service is (same sessions and threads) at its best batch size (at most the service's max batch); *CPU per image* is the server process's CPU time over the images it answered, against the raw loop's; *post-processing % of inference* is the post-processing time over the model run per image (the cell's medians), all tasks, one caller; *stream ÷ unary* is one stream with 4 frames in flight against 4 unary callers, same tasks; *1080p ÷ 512²* is post-processing + encoding of all three tasks for a 1920x1080 image over a 512x512 one, one caller; *model run in service ÷ raw* is the model run per image inside the service with one caller over raw ONNX Runtime at batch 1.");
        Line(text);

        Line(text, "## Raw ONNX Runtime");
        Line(text);
        Line(text, "| model | layout | sessions x threads | batch | img/s min / median | CPU ms per image min / median | run ms p50 (median) |");
        Line(text, "| --- | --- | ---: | ---: | ---: | ---: | ---: |");
        foreach (var group in results.Where(r => r.Sessions > 0).GroupBy(r => (r.Model, r.Scenario, r.Sessions, r.Threads, r.Concurrency)))
        {
            var cells = group.ToArray();
            var name = group.Key.Scenario == RawLayout.AsService ? "as the service (yardstick)" : "a session per core";
            Line(text, $"| {group.Key.Model} | {name} | {group.Key.Sessions} x {group.Key.Threads} | {group.Key.Concurrency} | {MinMedian(cells, c => c.ImagesPerSecond)} | {MinMedian(cells, c => c.CpuMsPerImage)} | {Stats.Median(cells.Select(c => c.LatencyP50Ms)):F1} |");
        }

        Line(text);
        Line(text, "## Service over gRPC");
        Line(text);
        Line(text, "`unary`: N concurrent callers; `stream`: one SegmentStream, QUEUE policy, N frames in flight; `size-*`: one caller on the scaled image. Stage times are the server's own, medians per image.");
        Line(text);
        Line(text, "| model | scenario | tasks | N | img/s min / median | server CPU ms per image min / median | latency p50 / p95 ms | model run ms per image | post-process ms | encode ms | mean batch |");
        Line(text, "| --- | --- | --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: |");
        // Cells are measured in pairs (see the targets); the table lists them by tasks and callers.
        var serviceRows = results.Where(r => r.Sessions == 0).GroupBy(r => (r.Model, r.Scenario, r.Tasks, r.Concurrency))
            .OrderBy(g => inputs.Select(i => i.Model).ToList().IndexOf(g.Key.Model))
            .ThenBy(g => g.Key.Scenario.StartsWith("size-", StringComparison.Ordinal))
            .ThenBy(g => g.Key.Tasks == "all" ? 0 : 1)
            .ThenBy(g => g.Key.Concurrency)
            .ThenBy(g => g.Key.Scenario == "stream");
        foreach (var group in serviceRows)
        {
            var cells = group.ToArray();
            Line(text, $"| {group.Key.Model} | {group.Key.Scenario} | {group.Key.Tasks} | {group.Key.Concurrency} | {MinMedian(cells, c => c.ImagesPerSecond)} | {MinMedian(cells, c => c.CpuMsPerImage)} | {Stats.Median(cells.Select(c => c.LatencyP50Ms)):F1} / {Stats.Median(cells.Select(c => c.LatencyP95Ms)):F1} | {Stats.Median(cells.Select(c => c.InferenceMsPerImage)):F2} | {Stats.Median(cells.Select(c => c.PostprocessMs)):F2} | {Stats.Median(cells.Select(c => c.EncodeMs)):F2} | {Stats.Median(cells.Select(c => c.MeanBatch)):F2} |");
        }

        if (rss.Count > 0)
        {
            Line(text);
            Line(text, $"## Resident memory (tiny model, semantic, {BenchmarkReport.MemoryCallers} callers, one server process)");
            Line(text);
            Line(text, "At each count: sampled as it runs; then right after a full collection the report asks for over EventPipe (as dotnet-gcdump does), which is what the runtime keeps committed; then at rest, once the server has given memory back on its own after going idle (`MaskFormer:Admission:ReturnMemoryAfterIdle`: a compacting aggressive collection, then glibc's heaps trimmed), which is what the service holds. The managed heap is the runtime's own count of its generations after each collection; the highest is the largest of the samples taken after every 400 requests up to that point. The target compares the values at rest: they do not depend on when the collector last ran or how much free memory the runtime and glibc kept committed, while anything the service keeps per request stays in them. The return at 1,000 requests also starts the next 9,000 from rest, so the collected values compare different histories.");
            Line(text);
            Line(text, "| requests answered | resident MiB as sampled | after a full collection | managed heap MiB then | at rest | managed heap MiB then | highest sample so far |");
            Line(text, "| ---: | ---: | ---: | ---: | ---: | ---: | ---: |");
            foreach (var memory in rss)
            {
                Line(text, $"| {memory.Requests:N0} | {MiB(memory.Sampled)} | {MiB(memory.Collected.Resident)} | {MiB(memory.Collected.ManagedHeap)} | {MiB(memory.AtRest.Resident)} | {MiB(memory.AtRest.ManagedHeap)} | {MiB(memory.Peak)} |");
            }
        }

        Line(text);
        Line(text, "## Charts");
        Line(text);
        foreach (var chart in charts)
        {
            Line(text, $"![{Path.GetFileNameWithoutExtension(chart)}]({relative(chart)})");
            Line(text);
        }

        Line(text, $"Every cell of every round: [{Path.GetFileName(csv)}]({relative(csv)}).");
        if (!settings.Quick)
        {
            Line(text);
            Line(text, "## PNG settings for label data (`MaskFormer.Benchmarks encode`)");
            Line(text);
            foreach (var line in EncodeReport.Run(15))
            {
                Line(text, line);
            }
        }

        var notes = Path.Combine(RepositoryPaths.Root, "bench", "BENCHMARKS.notes.md");
        if (File.Exists(notes))
        {
            Line(text);
            text.Append(File.ReadAllText(notes).TrimEnd()).Append('\n');
        }

        return text.ToString();
    }

    private static void WriteTargets(StringBuilder text, IReadOnlyList<CellResult> results, string model)
    {
        var rounds = results.Where(r => r.Model == model).Select(r => r.Round).Distinct().Order().ToArray();
        double Cell(string scenario, string tasks, int n, int round, Func<CellResult, double> metric) =>
            results.Where(r => r.Model == model && r.Scenario == scenario && r.Tasks == tasks && r.Concurrency == n && r.Round == round).Select(metric).DefaultIfEmpty(double.NaN).First();

        // Every ratio pairs cells of one round (raw ONNX Runtime and the 16-caller cells one after the
        // other, as a stream and its unary cell), so a drift in the machine's speed between rounds
        // cancels; the median over rounds is the measure, each round's ratio shows the spread.
        double[] PerRound(Func<int, double> ratio) => [.. rounds.Select(ratio)];

        var raw = RawByBatch(results, model, RawLayout.AsService);
        if (raw.Length == 0)
        {
            return;
        }

        var best = raw[0];
        var saturated = results.Where(r => r.Model == model && r.Scenario == "unary").Select(r => r.Concurrency).DefaultIfEmpty(16).Max();
        var batch1 = raw.FirstOrDefault(r => r.Batch == 1);
        var realistic = model == BenchmarkInputs.Realistic;
        // Raw cells: the layout is their scenario, the batch their concurrency, and they have no tasks.
        double Raw(string layout, int batch, int round, Func<CellResult, double> metric) => Cell(layout, "-", batch, round, metric);

        var allRatio = PerRound(round => Cell("unary", "all", saturated, round, r => r.ImagesPerSecond) / Raw(RawLayout.AsService, best.Batch, round, r => r.ImagesPerSecond));
        var semanticRatio = PerRound(round => Cell("unary", "semantic", saturated, round, r => r.ImagesPerSecond) / Raw(RawLayout.AsService, best.Batch, round, r => r.ImagesPerSecond));
        Target(text, $"service ÷ raw throughput, all tasks (raw batch {best.Batch})", model, realistic ? 0.95 : 0.75, allRatio, higherIsBetter: true);
        Target(text, $"service ÷ raw throughput, semantic (raw batch {best.Batch})", model, realistic ? double.NaN : 0.9, semanticRatio, higherIsBetter: true);
        var perCore = RawByBatch(results, model, RawLayout.SessionPerCore);
        if (perCore.Length > 0)
        {
            var batch = perCore[0].Batch;
            Target(text, $"service ÷ raw with a one-thread session per core, all tasks (raw batch {batch})", model, double.NaN, PerRound(round => Cell("unary", "all", saturated, round, r => r.ImagesPerSecond) / Raw(RawLayout.SessionPerCore, batch, round, r => r.ImagesPerSecond)), higherIsBetter: true);
            Target(text, $"service ÷ raw with a one-thread session per core, semantic (raw batch {batch})", model, double.NaN, PerRound(round => Cell("unary", "semantic", saturated, round, r => r.ImagesPerSecond) / Raw(RawLayout.SessionPerCore, batch, round, r => r.ImagesPerSecond)), higherIsBetter: true);
        }

        var cpuRatio = PerRound(round => Cell("unary", "all", saturated, round, r => r.CpuMsPerImage) / Raw(RawLayout.AsService, best.Batch, round, r => r.CpuMsPerImage));
        Target(text, "service ÷ raw CPU per image, all tasks", model, realistic ? 1.05 : double.NaN, cpuRatio, higherIsBetter: false);
        var post = PerRound(round => Cell("unary", "all", 1, round, r => r.PostprocessMs) / Cell("unary", "all", 1, round, r => r.InferenceMsPerImage));
        Target(text, "post-processing ÷ inference, all tasks, 1 caller", model, realistic ? 0.10 : double.NaN, post, higherIsBetter: false, percent: true);
        var encode = PerRound(round => Cell("unary", "all", 1, round, r => r.EncodeMs) / Cell("unary", "all", 1, round, r => r.PostprocessMs));
        Target(text, "encoding ÷ post-processing, all tasks, 1 caller", model, double.NaN, encode, higherIsBetter: false, percent: true);
        foreach (var tasks in new[] { "all", "semantic" })
        {
            const int InFlight = BenchmarkReport.StreamInFlight;
            var stream = PerRound(round => Cell("stream", tasks, InFlight, round, r => r.ImagesPerSecond) / Cell("unary", tasks, InFlight, round, r => r.ImagesPerSecond));
            Target(text, $"one stream ÷ unary, {tasks}, {InFlight} in flight", model, 0.9, stream, higherIsBetter: true);
        }

        var sizes = PerRound(round => Cell("size-1080", "all", 1, round, r => r.PostprocessMs + r.EncodeMs) / Cell("size-512", "all", 1, round, r => r.PostprocessMs + r.EncodeMs));
        Target(text, "1920x1080 ÷ 512x512 post-processing + encoding, all tasks", model, 3, sizes, higherIsBetter: false);
        if (batch1 != default)
        {
            var inService = PerRound(round => Cell("unary", "all", 1, round, r => r.InferenceMsPerImage) / Raw(RawLayout.AsService, 1, round, r => r.InferenceMsPerImage));
            Target(text, "model run in the service (1 caller) ÷ raw batch 1", model, double.NaN, inService, higherIsBetter: false);
        }
    }

    // Raw cells of one layout, a row per batch size (medians of rounds), fastest first.
    private static (int Batch, double Rate, double Cpu, double Run)[] RawByBatch(IReadOnlyList<CellResult> results, string model, string scenario) =>
        [.. results.Where(r => r.Model == model && r.Scenario == scenario).GroupBy(r => r.Concurrency)
            .Select(g => (Batch: g.Key, Rate: Stats.Median(g.Select(r => r.ImagesPerSecond)), Cpu: Stats.Median(g.Select(r => r.CpuMsPerImage)), Run: Stats.Median(g.Select(r => r.InferenceMsPerImage))))
            .OrderByDescending(r => r.Rate)];

    private static string Count(int count, string noun) => count == 1 ? $"one {noun}" : $"{count} {noun}s";

    private static void Target(StringBuilder text, string name, string model, double goal, double[] rounds, bool higherIsBetter, bool percent = false)
    {
        var format = (double v) => percent ? $"{v * 100:F1}%" : $"{v:F2}";
        var measuredRounds = rounds.Where(double.IsFinite).ToArray();
        var measured = Stats.Median(measuredRounds);
        var goalText = double.IsNaN(goal) ? "(shown)" : $"{(higherIsBetter ? "≥" : "≤")} {format(goal)}";
        bool Meets(double value) => higherIsBetter ? value >= goal : value <= goal;
        var met = double.IsNaN(goal) || double.IsNaN(measured) ? "" : Mark(Meets(measured));
        var metRounds = measuredRounds.Count(Meets);
        if (met.Length > 0 && metRounds > 0 && metRounds < measuredRounds.Length)
        {
            // The median decides, but a verdict the rounds do not share is within this host's spread.
            met += Meets(measured) ? $", in {metRounds} of {measuredRounds.Length} rounds" : $", met in {metRounds} of {measuredRounds.Length} rounds";
        }

        // A ratio that rounds to its goal gets one more digit, so that "missed" never sits beside a figure equal to the goal.
        var measuredText = !double.IsNaN(goal) && format(measured) == format(goal)
            ? (percent ? $"{measured * 100:F2}%" : $"{measured:F3}")
            : format(measured);
        Line(text, $"| {name} | {model} | {goalText} | {measuredText} | {string.Join(", ", rounds.Select(format))} | {met} |");
    }

    private static string MiB(long bytes) => (bytes / 1048576.0).ToString("F1", CultureInfo.InvariantCulture);

    private static string Mark(bool met) => met ? "met" : "**missed**";

    private static string MinMedian(IReadOnlyList<CellResult> cells, Func<CellResult, double> metric) =>
        string.Create(CultureInfo.InvariantCulture, $"{cells.Min(metric):F1} / {Stats.Median(cells.Select(metric)):F1}");

    private static void Line(StringBuilder text, string line = "") => text.Append(line).Append('\n');
}
