using System.Globalization;
using Grpc.Net.Client;
using MaskFormer.Contracts.V1;
using MaskFormer.Engine.Admission;
using MaskFormer.Engine.Models;
using MaskFormer.Engine.Sessions;
using Microsoft.Extensions.Configuration;

namespace MaskFormer.Benchmarks.Report;

/// <summary>
/// The one benchmark command: raw ONNX Runtime and the service over real gRPC, side by side in one run,
/// on the tiny committed model and a realistic-width one (full mode), plus a 1920x1080 input and
/// resident memory over many requests; writes BENCHMARKS.md, a CSV and charts. Exit 1 when any call
/// failed or a cell measured nothing; missed targets are reported, not failed (the machine is shared).
/// </summary>
internal static class BenchmarkReport
{
    // Full batches of the service's default max batch 4, four at a time: the 10,000 requests go by at
    // the service's best rate.
    public const int MemoryCallers = 16;

    /// <summary>Frames a stream cell keeps in flight, and the unary callers it is compared with.</summary>
    public const int StreamInFlight = 4;

    public static async Task<int> RunAsync(string[] args)
    {
        var settings = ReportSettings.Parse(args);
        using var cancellation = new CancellationTokenSource();
        Console.CancelKeyPress += (_, e) =>
        {
            e.Cancel = true;
            cancellation.Cancel();
        };
        var token = cancellation.Token;
        // The build `dotnet run` just did leaves compiler servers finishing for a few seconds: wait (up to
        // 30 s) for other processes to leave the cores before measuring, and record what they used last.
        var othersBefore = await MachineInfo.OtherProcessesCoresAsync(TimeSpan.FromSeconds(5), token);
        for (var wait = 0; wait < 5 && othersBefore is { } others && MachineInfo.IsBusy(others); wait++)
        {
            Console.WriteLine(string.Create(CultureInfo.InvariantCulture, $"other processes used {others:F2} cores in the last 5 s; waiting for them"));
            othersBefore = await MachineInfo.OtherProcessesCoresAsync(TimeSpan.FromSeconds(5), token);
        }

        var run = new RunInfo { LoadBefore = MachineInfo.LoadAverage(), OthersBefore = othersBefore, Started = DateTimeOffset.UtcNow };
        var models = new List<(string Name, string Folder, byte[] BaseImage, string BaseImageName)>
        {
            (BenchmarkInputs.Tiny, RepositoryPaths.TinyShapes, BenchmarkInputs.HeldOut(), "held-out 0000.png (123x183 PNG)"),
        };
        if (!settings.Quick)
        {
            var folder = await BenchmarkInputs.EnsureRealisticAsync(Console.Out, token);
            models.Add((BenchmarkInputs.Realistic, folder, BenchmarkInputs.Scaled(512, 512), "held-out 0000 scaled to 512x512 (JPEG)"));
        }

        var image512 = BenchmarkInputs.Scaled(512, 512);
        var image1080 = BenchmarkInputs.Scaled(1920, 1080);
        var results = new List<CellResult>();
        var warmUps = new List<CellResult>();
        var rss = new List<ResidentMemory>();
        var inference = InferenceSettings(settings.ServerArguments);
        var layout = RawLayout.ForService(inference);
        // The one-thread-per-core reference is a CPU layout: beside a GPU yardstick it would measure another device.
        RawLayout[] rawLayouts = layout.Device.IsCuda || (layout.Sessions == RawLayout.PerCore.Sessions && layout.Threads == 1) ? [layout] : [layout, RawLayout.PerCore];
        var phases = new List<(string Phase, double Seconds)>();
        foreach (var (name, folder, baseImage, _) in models)
        {
            var phaseClock = System.Diagnostics.Stopwatch.StartNew();
            var duration = name == BenchmarkInputs.Realistic ? settings.RealisticCellDuration : settings.CellDuration;
            var minImages = name == BenchmarkInputs.Realistic ? settings.RealisticMinImages : 0;
            var modelFolder = ModelFolder.Read(folder, name, null);
            await using var server = await ServerProcess.StartAsync(folder, settings.ServerArguments, token);
            var load = new GrpcLoad(server);
            await load.WaitServingAsync(token);
            var saturated = settings.Concurrency.Max();
            var taskSets = new[] { ("all", GrpcLoad.AllTasks), ("semantic", GrpcLoad.SemanticOnly) };

            // A fresh server runs its first requests' code unoptimised until the JIT's tiering catches up
            // (the first measured cell, 16 callers, ran at 0.75 of the same cell two rounds later): one
            // throwaway cell per task set first, unary and a stream, neither recorded.
            Console.WriteLine($"{name}: warming the server up (not recorded)");
            foreach (var (tasks, taskList) in taskSets)
            {
                warmUps.Add(await load.UnaryAsync(new CellKey(name, "warm-up", tasks, StreamInFlight, 0), baseImage, taskList, duration, token, minImages));
                warmUps.Add(await load.StreamAsync(new CellKey(name, "warm-up", tasks, StreamInFlight, 0), baseImage, taskList, duration, token, minImages));
            }

            for (var round = 1; round <= settings.Rounds; round++)
            {
                async Task UnaryAsync(string tasks, SegmentationTask[] taskList, int concurrency) =>
                    results.Add(Report(await load.UnaryAsync(new CellKey(name, "unary", tasks, concurrency, round), baseImage, taskList, duration, token, minImages)));

                void Raw(RawLayout rawLayout)
                {
                    Console.WriteLine($"{name}, round {round}: raw ONNX Runtime, {rawLayout.Sessions} x {rawLayout.Threads} (load {MachineInfo.LoadAverage()})");
                    foreach (var batch in settings.RawBatches)
                    {
                        results.Add(Report(RawOrtRunner.Measure(name, modelFolder, baseImage, inference, rawLayout, batch, duration, round)));
                    }
                }

                async Task SaturatedAsync()
                {
                    Console.WriteLine($"{name}, round {round}: service over gRPC, {saturated} callers");
                    foreach (var (tasks, taskList) in taskSets)
                    {
                        await UnaryAsync(tasks, taskList, saturated);
                    }
                }

                // Each ratio's two sides are measured next to each other, in turns first, so that a drift in
                // the machine's speed (on a shared host it moves a cell by a fifth within minutes) falls on
                // both alike: raw ONNX Runtime laid out as the service and the saturated service cells,
                // a stream and as many unary callers.
                if (round % 2 == 1)
                {
                    Raw(layout);
                    await SaturatedAsync();
                }
                else
                {
                    await SaturatedAsync();
                    Raw(layout);
                }

                foreach (var rawLayout in rawLayouts.Skip(1))
                {
                    Raw(rawLayout);
                }

                Console.WriteLine($"{name}, round {round}: service over gRPC");
                foreach (var (tasks, taskList) in taskSets)
                {
                    async Task StreamAsync() =>
                        results.Add(Report(await load.StreamAsync(new CellKey(name, "stream", tasks, StreamInFlight, round), baseImage, taskList, duration, token, minImages)));

                    foreach (var concurrency in settings.Concurrency.Where(c => c != saturated))
                    {
                        if (concurrency != StreamInFlight)
                        {
                            await UnaryAsync(tasks, taskList, concurrency);
                        }
                        else if (round % 2 == 1)
                        {
                            await UnaryAsync(tasks, taskList, concurrency);
                            await StreamAsync();
                        }
                        else
                        {
                            await StreamAsync();
                            await UnaryAsync(tasks, taskList, concurrency);
                        }
                    }

                    if (!settings.Concurrency.Contains(StreamInFlight) || StreamInFlight == saturated)
                    {
                        await StreamAsync();
                    }
                }

                results.Add(Report(await load.UnaryAsync(new CellKey(name, "size-512", "all", 1, round), image512, GrpcLoad.AllTasks, duration, token)));
                results.Add(Report(await load.UnaryAsync(new CellKey(name, "size-1080", "all", 1, round), image1080, GrpcLoad.AllTasks, duration, token)));
            }

            phases.Add(($"{name} cells", phaseClock.Elapsed.TotalSeconds));
            if (results.Concat(warmUps).Any(r => r.Model == name && r.Errors > 0))
            {
                // What the server said about its failures (it logs warnings and errors only).
                await Console.Error.WriteLineAsync($"{name}: calls failed; the server's log:\n{server.Log()}");
            }

            if (name == BenchmarkInputs.Tiny)
            {
                phaseClock.Restart();
                rss.AddRange(await MeasureResidentMemoryAsync(load, server, baseImage, settings.RssRequests, settings.ServerArguments, token));
                phases.Add(("resident memory", phaseClock.Elapsed.TotalSeconds));
            }
        }

        // Where the run's time went, so the default's length can be judged (and predicted) from one run.
        var cellSeconds = results.GroupBy(r => r.Model).Select(g => $"{g.Key} {g.Sum(r => r.WallSeconds):F0} s in {g.Count()} cells");
        Console.WriteLine($"time: {string.Join(", ", phases.Select(p => $"{p.Phase} {p.Seconds:F0} s"))} (of which measuring: {string.Join(", ", cellSeconds)})");

        run = run with { LoadAfter = MachineInfo.LoadAverage(), Finished = DateTimeOffset.UtcNow };
        Directory.CreateDirectory(settings.ResultsDirectory);
        var csv = Path.Combine(settings.ResultsDirectory, "benchmark.csv");
        await File.WriteAllLinesAsync(csv, [CellResult.CsvHeader, .. results.Select(r => r.ToCsv())], token);
        var charts = models.SelectMany(m => Charts.Write(results, m.Name, settings.ResultsDirectory)).ToArray();
        var markdown = Path.Combine(settings.OutputDirectory, "BENCHMARKS.md");
        var inputs = models.Select(m => (m.Name, m.BaseImageName)).ToArray();
        await File.WriteAllTextAsync(markdown, MarkdownReport.Write(settings, run, inference, layout, results, rss, inputs, csv, charts), token);
        Console.WriteLine($"wrote {markdown}, {csv} and {charts.Length} charts");

        // Warm-up cells are not recorded, but their failures fail the run like any other.
        var failed = results.Concat(warmUps).Where(r => r.Errors > 0 || r.Images == 0).ToArray();
        foreach (var cell in failed)
        {
            await Console.Error.WriteLineAsync($"failed cell: {cell.Model} {cell.Scenario} {cell.Tasks} x{cell.Concurrency}, round {cell.Round}: {cell.Images} images, {cell.Errors} errors; the first: {cell.FirstError ?? "none"}");
        }

        return failed.Length == 0 && (rss.Count == 2 || settings.RssRequests.Second == 0) ? 0 : 1;
    }

    private static async Task<IReadOnlyList<ResidentMemory>> MeasureResidentMemoryAsync(GrpcLoad load, ServerProcess server, byte[] image, (int First, int Second) requests, IReadOnlyList<string> serverArguments, CancellationToken cancellationToken)
    {
        if (requests.Second == 0)
        {
            return [];
        }

        // What the service holds at rest is read after it gives memory back on its own, once idle; a report
        // run with that turned off has no such reading to take.
        var returnAfterIdle = AdmissionSettings(serverArguments).ReturnMemoryAfterIdle;
        if (returnAfterIdle <= TimeSpan.Zero)
        {
            await Console.Error.WriteLineAsync("resident memory not measured: MaskFormer:Admission:ReturnMemoryAfterIdle is 0 (off), so the server never comes to rest");
            return [];
        }

        Console.WriteLine($"resident memory after {requests.First} and {requests.Second} requests (tiny model, semantic, {MemoryCallers} callers)");
        var samples = new List<ResidentMemory>();
        var (sent, peak) = (0, 0L);
        foreach (var target in new[] { requests.First, requests.Second })
        {
            while (sent < target)
            {
                var batch = Math.Min(400, target - sent);
                var cell = await load.UnaryCountAsync(image, GrpcLoad.SemanticOnly, batch, MemoryCallers, cancellationToken);
                sent += cell;
                peak = Math.Max(peak, server.ResidentBytes());
            }

            var sampled = server.ResidentBytes();
            MemoryReading collected, atRest;
            try
            {
                (collected, atRest) = await server.CollectGarbageAndWaitForRestAsync(returnAfterIdle + TimeSpan.FromSeconds(30), cancellationToken);
            }
            catch (Exception ex) when (ex is not OperationCanceledException)
            {
                // The rest of the run is still worth writing; without both counts the memory target is left
                // out and the report exits 1.
                await Console.Error.WriteLineAsync($"resident memory not measured: the server's full collection could not be asked for over EventPipe, or it did not give memory back {returnAfterIdle.TotalSeconds:F0} s after going idle ({ex.GetType().Name}: {ex.Message})");
                return [];
            }

            samples.Add(new ResidentMemory(sent, sampled, collected, atRest, peak));
        }

        return samples;
    }

    private static InferenceOptions InferenceSettings(IReadOnlyList<string> serverArguments)
    {
        var options = new InferenceOptions();
        ServerConfiguration(serverArguments).GetSection(InferenceOptions.SectionName).Bind(options);
        return options;
    }

    private static AdmissionOptions AdmissionSettings(IReadOnlyList<string> serverArguments)
    {
        var options = new AdmissionOptions();
        ServerConfiguration(serverArguments).GetSection(AdmissionOptions.SectionName).Bind(options);
        return options;
    }

    // The server's settings as it reads them: its appsettings.json under the report's --server-arg values.
    private static IConfigurationRoot ServerConfiguration(IReadOnlyList<string> serverArguments)
    {
        var appsettings = Path.Combine(RepositoryPaths.Root, "src", "MaskFormer.Server", "appsettings.json");
        return new ConfigurationBuilder().AddJsonFile(appsettings, optional: true).AddCommandLine([.. serverArguments]).Build();
    }

    private static CellResult Report(CellResult cell)
    {
        Console.WriteLine($"  {(cell.Sessions > 0 ? $"raw {cell.Sessions}x{cell.Threads}t" : cell.Scenario),-9} {cell.Tasks,-8} x{cell.Concurrency,-2} {cell.ImagesPerSecond,8:F1} img/s  cpu {cell.CpuMsPerImage,7:F1} ms/img  p50 {cell.LatencyP50Ms,7:F1} ms  infer {cell.InferenceMsPerImage,6:F1}  post {cell.PostprocessMs,6:F1}  enc {cell.EncodeMs,5:F1}  batch {cell.MeanBatch:F2}{(cell.Errors > 0 ? $"  ERRORS {cell.Errors} (the first: {cell.FirstError})" : "")}");
        return cell;
    }
}

/// <summary>
/// The server's resident memory after some requests: sampled as it runs (wherever the collector's
/// sawtooth stands); after a full collection the report asks for (what the runtime keeps committed);
/// at rest, after the server gave memory back on its own once idle (what the service holds); and the
/// highest sample so far (one after every 400 requests).
/// </summary>
internal sealed record ResidentMemory(int Requests, long Sampled, MemoryReading Collected, MemoryReading AtRest, long Peak);

/// <summary>When the run happened and how loaded the machine was.</summary>
internal sealed record RunInfo
{
    public required string LoadBefore { get; init; }

    public string LoadAfter { get; init; } = "";

    /// <summary>Cores other processes kept busy in the 5 s before the run (null where unknown).</summary>
    public double? OthersBefore { get; init; }

    public required DateTimeOffset Started { get; init; }

    public DateTimeOffset Finished { get; init; }
}
