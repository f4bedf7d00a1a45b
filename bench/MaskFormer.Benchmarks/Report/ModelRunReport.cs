using System.Buffers;
using System.Diagnostics;
using System.Globalization;
using System.Numerics.Tensors;
using System.Text;
using Grpc.Net.Client;
using MaskFormer.Engine.Decoding;
using MaskFormer.Engine.Models;
using MaskFormer.Engine.Preprocessing;
using MaskFormer.Engine.Sessions;
using Microsoft.Extensions.Options;
using Microsoft.ML.OnnxRuntime;

namespace MaskFormer.Benchmarks.Report;

/// <summary>
/// <c>modelrun [--realistic] [--rounds N] [--seconds S] [--part 1|2|12] [--settings KEY,...] [--out FILE]</c>: why a model run inside the service
/// costs what it costs, side by side in one run. Part 1, in this process: raw <c>InferenceSession.Run</c> on a
/// pre-built tensor against the service's <c>ModelSession.Run</c> (input wrapping, output hand-over), for
/// intra-op threads 1 and all cores, spinning off and on, alone and with one other core kept busy (as
/// post-processing does in the service). Part 2: the service as its own process, over gRPC, under each
/// setting (threads, spinning, server or workstation GC, tiered compilation with or without PGO) against raw ONNX Runtime
/// with the same settings.
/// Rounds visit the settings in alternating order so a drift in the machine's load does not favour one.
/// </summary>
internal static class ModelRunReport
{
    public static async Task<int> RunAsync(string[] args)
    {
        var rounds = 2;
        var seconds = 3.0;
        var realistic = false;
        string? output = null;
        var parts = "12";
        var settings = AllSettings();
        for (var i = 0; i < args.Length; i++)
        {
            switch (args[i])
            {
                case "--rounds":
                    rounds = int.Parse(args[++i], CultureInfo.InvariantCulture);
                    break;
                case "--seconds":
                    seconds = double.Parse(args[++i], CultureInfo.InvariantCulture);
                    break;
                case "--realistic":
                    realistic = true;
                    break;
                case "--out":
                    output = args[++i];
                    break;
                case "--part":
                    parts = args[++i];
                    break;
                case "--settings":
                    var keys = args[++i].Split(',');
                    settings = [.. settings.Where(s => keys.Contains(s.Key))];
                    break;
                default:
                    throw new ArgumentException($"unknown argument '{args[i]}'; usage: modelrun [--realistic] [--rounds N] [--seconds S] [--part 1|2|12] [--settings default,threads1,spin,wksgc,tiered,nopgo] [--out FILE]");
            }
        }

        var duration = TimeSpan.FromSeconds(seconds);
        var (name, folderPath, image) = realistic
            ? (BenchmarkInputs.Realistic, await BenchmarkInputs.EnsureRealisticAsync(Console.Out, CancellationToken.None), BenchmarkInputs.Scaled(512, 512))
            : (BenchmarkInputs.Tiny, RepositoryPaths.TinyShapes, BenchmarkInputs.HeldOut());
        var folder = ModelFolder.Read(folderPath, name, null);
        var text = new StringBuilder();
        var started = DateTimeOffset.UtcNow;
        var loadBefore = MachineInfo.LoadAverage();
        Line(text, $"Model `{name}`, {Environment.ProcessorCount} cores, load average before {loadBefore}, {rounds} rounds of {seconds:F1} s per cell, started {started:yyyy-MM-dd HH:mm} UTC.");
        Line(text);
        if (parts.Contains('1', StringComparison.Ordinal))
        {
            InProcess(text, folder, image, rounds, duration);
        }

        if (parts.Contains('2', StringComparison.Ordinal))
        {
            await ServiceAsync(text, name, folderPath, folder, image, rounds, duration, settings);
        }
        Line(text);
        Line(text, $"Load average after: {MachineInfo.LoadAverage()}; took {(DateTimeOffset.UtcNow - started).TotalMinutes:F1} min.");
        Console.WriteLine();
        Console.WriteLine(text);
        if (output is not null)
        {
            await File.WriteAllTextAsync(output, text.ToString());
        }

        return 0;
    }

    private static void InProcess(StringBuilder text, ModelFolder folder, byte[] imageBytes, int rounds, TimeSpan duration)
    {
        using var image = new ImageDecoder(Options.Create(new ImageDecoderOptions())).Decode(imageBytes);
        using var input = new ImagePreprocessor(folder.Preprocessor).Process(image);
        var cores = Environment.ProcessorCount;
        var settings = new List<(int Threads, bool Spin)>();
        foreach (var threads in new[] { 1, cores }.Distinct())
        {
            settings.Add((threads, false));
            settings.Add((threads, true));
        }

        var cells = new Dictionary<(int, bool, string, bool), List<(double RunMs, double CpuMs, double BusyRate)>>();
        for (var round = 1; round <= rounds; round++)
        {
            var order = round % 2 == 1 ? settings : Enumerable.Reverse(settings).ToList();
            foreach (var (threads, spin) in order)
            {
                var options = new InferenceOptions { AllowSpinning = spin };
                using var sessionOptions = SessionFactory.CreateCpuOptions(options, threads, "modelrun");
                using var session = new ModelSession(new InferenceSession(folder.ModelPath, sessionOptions), new SessionPlacement(DeviceSpec.Cpu, "CPUExecutionProvider", null));
                using var rawSession = new InferenceSession(folder.ModelPath, sessionOptions);
                foreach (var busy in new[] { false, true })
                {
                    foreach (var path in round % 2 == 1 ? new[] { "raw", "copy", "service" } : ["service", "copy", "raw"])
                    {
                        Action run = path == "service" ? () => DisposeAll(session.Run([input])) : RawRun(rawSession, input, copy: path == "copy");
                        var measured = Measure(run, duration, busy);
                        Console.WriteLine($"  round {round} threads {threads} spin {(spin ? "on " : "off")} {(busy ? "busy" : "idle")} {path,-7}: {measured.RunMs,8:F2} ms/run  cpu {measured.CpuMs,8:F2} ms/run  other core {measured.BusyRate,6:F1} units/s");
                        var key = (threads, spin, path, busy);
                        if (!cells.TryGetValue(key, out var list))
                        {
                            cells[key] = list = [];
                        }

                        list.Add(measured);
                    }
                }
            }
        }

        Line(text, "### Part 1: the model run in one process (batch 1, median ms per run over rounds)");
        Line(text);
        Line(text, "*raw*: `InferenceSession.Run` on a pre-built tensor; *copy*: the same plus each output copied into a pooled buffer (the service before this change); *service*: `ModelSession.Run`, the service's session wrapper (input wrapped from pooled memory, outputs written by ONNX Runtime straight into the pooled buffers post-processing reads). *busy*: one more thread keeps a core busy with vector work throughout (as post-processing, decoding and gRPC do in the service); its rate shows what the model run leaves to the rest of the service.");
        Line(text);
        Line(text, "| intra-op threads | spinning | other core | raw ms/run | service ms/run | raw CPU ms/run | copy CPU ms/run | service CPU ms/run | copy ÷ raw CPU | service ÷ raw CPU | busy thread units/s (raw run) |");
        Line(text, "| ---: | --- | --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: |");
        foreach (var (threads, spin) in settings)
        {
            foreach (var busy in new[] { false, true })
            {
                var raw = cells[(threads, spin, "raw", busy)];
                var service = cells[(threads, spin, "service", busy)];
                var copyCpu = Stats.Median(cells[(threads, spin, "copy", busy)].Select(c => c.CpuMs));
                var rawMs = Stats.Median(raw.Select(c => c.RunMs));
                var serviceMs = Stats.Median(service.Select(c => c.RunMs));
                var rawCpu = Stats.Median(raw.Select(c => c.CpuMs));
                var serviceCpu = Stats.Median(service.Select(c => c.CpuMs));
                Line(text, $"| {threads} | {(spin ? "on" : "off")} | {(busy ? "busy" : "idle")} | {rawMs:F2} | {serviceMs:F2} | {rawCpu:F2} | {copyCpu:F2} | {serviceCpu:F2} | {copyCpu / rawCpu:F2} | {serviceCpu / rawCpu:F2} | {(busy ? Stats.Median(raw.Select(c => c.BusyRate)).ToString("F0", CultureInfo.InvariantCulture) : "")} |");
            }
        }

        Line(text);
    }

    // copy: as the service did before its outputs were bound, each output copied into a pooled buffer.
    private static Action RawRun(InferenceSession session, ModelInput input, bool copy)
    {
        var value = OrtValue.CreateTensorValueFromMemory(OrtMemoryInfo.DefaultInstance, input.TensorMemory, [1, 3, input.Plan.PaddedHeight, input.Plan.PaddedWidth]);
        var runOptions = new RunOptions();
        string[] inputs = [ModelSession.InputName];
        string[] outputs = [ModelSession.ClassOutputName, ModelSession.MaskOutputName];
        return () =>
        {
            using var results = session.Run(runOptions, inputs, [value], outputs);
            if (copy)
            {
                foreach (var result in results)
                {
                    var data = result.GetTensorDataAsSpan<float>();
                    var buffer = ArrayPool<float>.Shared.Rent(data.Length);
                    data.CopyTo(buffer);
                    ArrayPool<float>.Shared.Return(buffer);
                }
            }
        };
    }

    // Runs back to back for the duration (after 3 warm runs); with busy, a second thread does vector work
    // until the runs end and reports how many units it finished per second.
    private static (double RunMs, double CpuMs, double BusyRate) Measure(Action run, TimeSpan duration, bool busy)
    {
        for (var i = 0; i < 3; i++)
        {
            run();
        }

        using var stop = new CancellationTokenSource();
        long units = 0;
        var busyCpu = TimeSpan.Zero;
        var busyClock = Stopwatch.StartNew();
        var worker = busy
            ? new Thread(() =>
            {
                var cpuStart = ThreadCpu.Now();
                var data = new float[1 << 16];
                data.AsSpan().Fill(0.5f);
                while (!stop.IsCancellationRequested)
                {
                    TensorPrimitives.Sigmoid(data, data);
                    Interlocked.Increment(ref units);
                }

                busyCpu = ThreadCpu.Now() - cpuStart;
            })
            { IsBackground = true }
            : null;
        worker?.Start();
        using var process = Process.GetCurrentProcess();
        process.Refresh();
        var cpuBefore = process.TotalProcessorTime;
        var clock = Stopwatch.StartNew();
        var runs = new List<double>();
        while (clock.Elapsed < duration || runs.Count < 3)
        {
            var start = Stopwatch.GetTimestamp();
            run();
            runs.Add(Stopwatch.GetElapsedTime(start).TotalMilliseconds);
        }

        stop.Cancel();
        worker?.Join();
        process.Refresh();

        // The busy thread's own CPU time is taken out, so the figure is the model runs' alone.
        var cpu = (process.TotalProcessorTime - cpuBefore - busyCpu).TotalMilliseconds;
        var rate = Interlocked.Read(ref units) / busyClock.Elapsed.TotalSeconds;
        return (Stats.Median(runs), cpu / runs.Count, rate);
    }

    private static async Task ServiceAsync(StringBuilder text, string name, string folderPath, ModelFolder folder, byte[] image, int rounds, TimeSpan duration, IReadOnlyList<ServiceSetting> settings)
    {
        var results = new Dictionary<string, List<ServiceCells>>();
        for (var round = 1; round <= rounds; round++)
        {
            var order = round % 2 == 1 ? settings : settings.Reverse().ToList();
            foreach (var setting in order)
            {
                Console.WriteLine($"round {round}: service with {setting.Label} (load {MachineInfo.LoadAverage()})");
                string[] arguments = [$"--MaskFormer:Inference:IntraOpThreads={setting.Threads}", $"--MaskFormer:Inference:AllowSpinning={setting.Spin}"];
                var raw = RawOrtRunner.Measure(name, folder, image, new InferenceOptions { AllowSpinning = setting.Spin }, new RawLayout(1, setting.Threads, RawLayout.AsService), 1, duration, round);
                var clock = Stopwatch.StartNew();
                await using var server = await ServerProcess.StartAsync(folderPath, arguments, CancellationToken.None, setting.Environment);
                var load = new GrpcLoad(server);
                await load.WaitServingAsync(CancellationToken.None);
                var serving = clock.Elapsed.TotalSeconds;
                var first = await load.UnaryAsync(new CellKey(name, "unary", "all", 1, round), image, GrpcLoad.AllTasks, duration, CancellationToken.None);
                var four = await load.UnaryAsync(new CellKey(name, "unary", "all", 4, round), image, GrpcLoad.AllTasks, duration, CancellationToken.None);
                var again = await load.UnaryAsync(new CellKey(name, "unary", "all", 1, round), image, GrpcLoad.AllTasks, duration, CancellationToken.None);
                Console.WriteLine($"  serving after {serving:F1} s; raw {raw.ImagesPerSecond:F1} img/s, {raw.CpuMsPerImage:F2} CPU ms/img; service x1 {first.ImagesPerSecond:F1} img/s, run {first.InferenceMsPerImage:F2} ms, cpu {first.CpuMsPerImage:F1} ms/img; x4 {four.ImagesPerSecond:F1} img/s, cpu {four.CpuMsPerImage:F1} ms/img; x1 again {again.ImagesPerSecond:F1} img/s, run {again.InferenceMsPerImage:F2} ms, cpu {again.CpuMsPerImage:F1} ms/img");
                if (!results.TryGetValue(setting.Key, out var list))
                {
                    results[setting.Key] = list = [];
                }

                list.Add(new ServiceCells(serving, raw, first, four, again));
            }
        }

        Line(text, "### Part 2: the service (its own process, gRPC, all three tasks) under each setting, medians over rounds");
        Line(text);
        Line(text, "Raw ONNX Runtime (batch 1, same threads and spinning) is measured just before each server starts. The cells run in this order on a fresh server: 1 caller right after SERVING (*first*), 4 callers, 1 caller again (*later*). *run* is the model run per image inside the service (its own stage timing); CPU is the server process's per image answered.");
        Line(text);
        Line(text, "| setting | to SERVING s | raw ms/run | raw CPU ms/img | first: run ms | CPU ms/img | 4 callers: img/s | CPU ms/img | later: run ms | run ÷ raw | img/s | CPU ms/img | CPU ÷ raw (later) | 4 callers ÷ raw img/s |");
        Line(text, "| --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: |");
        foreach (var setting in settings)
        {
            var cells = results[setting.Key];
            double M(Func<ServiceCells, double> pick) => Stats.Median(cells.Select(pick));
            var raw = M(c => c.Raw.InferenceMsPerImage);
            var rawCpu = M(c => c.Raw.CpuMsPerImage);
            var later = M(c => c.Again.InferenceMsPerImage);
            var laterCpu = M(c => c.Again.CpuMsPerImage);
            Line(text, $"| {setting.Label} | {M(c => c.Serving):F1} | {raw:F2} | {rawCpu:F2} | {M(c => c.First.InferenceMsPerImage):F2} | {M(c => c.First.CpuMsPerImage):F1} | {M(c => c.Four.ImagesPerSecond):F1} | {M(c => c.Four.CpuMsPerImage):F1} | {later:F2} | {later / raw:F2} | {M(c => c.Again.ImagesPerSecond):F1} | {laterCpu:F1} | {laterCpu / rawCpu:F2} | {M(c => c.Four.ImagesPerSecond) / M(c => c.Raw.ImagesPerSecond):F2} |");
        }
    }

    private static List<ServiceSetting> AllSettings()
    {
        var cores = Environment.ProcessorCount;
        var none = new Dictionary<string, string>();
        return
        [
            new("default", $"as configured: {cores} threads, spinning off, server GC, no tiered compilation", cores, false, none),
            new("threads1", "1 intra-op thread", 1, false, none),
            new("spin", "spinning on", cores, true, none),
            new("wksgc", "workstation GC (DOTNET_gcServer=0)", cores, false, new Dictionary<string, string> { ["DOTNET_gcServer"] = "0" }),
            new("tiered", "tiered compilation with PGO (DOTNET_TieredCompilation=1, the .NET default)", cores, false, new Dictionary<string, string> { ["DOTNET_TieredCompilation"] = "1" }),
            new("nopgo", "tiered compilation without PGO (DOTNET_TieredCompilation=1, DOTNET_TieredPGO=0)", cores, false, new Dictionary<string, string> { ["DOTNET_TieredCompilation"] = "1", ["DOTNET_TieredPGO"] = "0" }),
        ];
    }

    private sealed record ServiceSetting(string Key, string Label, int Threads, bool Spin, IReadOnlyDictionary<string, string> Environment);

    private sealed record ServiceCells(double Serving, CellResult Raw, CellResult First, CellResult Four, CellResult Again);

    private static void DisposeAll(ModelOutput[] outputs)
    {
        foreach (var output in outputs)
        {
            output.Dispose();
        }
    }

    private static void Line(StringBuilder text, string line = "") => text.Append(line).Append('\n');
}
