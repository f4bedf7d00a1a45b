using System.Diagnostics;
using System.Globalization;
using System.Text;
using Grpc.Net.Client;
using MaskFormer.Contracts.V1;
using MaskFormer.Engine;
using MaskFormer.Engine.Decoding;
using MaskFormer.Engine.Encoding;
using MaskFormer.Engine.Models;
using MaskFormer.Engine.Postprocessing;
using MaskFormer.Engine.Preprocessing;
using MaskFormer.Engine.Sessions;
using Microsoft.Extensions.Logging.Abstractions;
using Microsoft.Extensions.Options;

namespace MaskFormer.Benchmarks.Report;

/// <summary>
/// <c>overhead [--rounds N] [--seconds S] [--concurrency C] [--settings KEY,...] [--baseline SERVER_DLL] [--server-arg ARG]... [--stages] [--realistic] [--out FILE]</c>:
/// where the tiny model's (with <c>--realistic</c>: the realistic-width model's, on the held-out image
/// scaled to 512x512) service ÷ raw ONNX Runtime throughput goes, side by side in one run. Every setting's
/// server process starts first and stays up; each round measures raw ONNX Runtime (batches 1, 2 and 4, the
/// best counts, as in the report), then each server in turn (alternating order across rounds) under C callers:
/// an empty call (ListModels: Kestrel, HTTP/2, gRPC, protobuf and the interceptors, no engine), semantic
/// only, and all three tasks. Each cell records the server's CPU per call and the client's (this process's)
/// CPU per call, so the run shows what the client and the gRPC floor leave to the model on a machine
/// whose cores the client shares. <c>--baseline</c> adds a setting that runs another build of the server
/// (e.g. main's) for a before/after in one run. <c>--server-arg</c> goes to every setting's server (a GPU:
/// <c>--server-arg --MaskFormer:Inference:Devices:0:Name=cuda:0</c>; raw ONNX Runtime stays on the CPU). <c>--stages</c> measures only the stages in this process, one
/// thread: probe and decode, pre-processing, semantic post-processing and label PNG encoding of the image.
/// </summary>
internal static class OverheadReport
{
    private const SegmentationTasks AllTasks = SegmentationTasks.Semantic | SegmentationTasks.Instance | SegmentationTasks.Panoptic;
    private static readonly int[] s_rawBatches = [1, 2, 4];

    public static async Task<int> RunAsync(string[] args)
    {
        var (rounds, seconds, concurrency, keys, baseline, output, stagesOnly, realistic) = (2, 4.0, 16, (string[]?)null, (string?)null, (string?)null, false, false);
        var serverArguments = new List<string>();
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
                case "--concurrency":
                    concurrency = int.Parse(args[++i], CultureInfo.InvariantCulture);
                    break;
                case "--settings":
                    keys = args[++i].Split(',');
                    break;
                case "--baseline":
                    baseline = Path.GetFullPath(args[++i]);
                    break;
                case "--out":
                    output = args[++i];
                    break;
                case "--server-arg":
                    serverArguments.Add(args[++i]);
                    break;
                case "--stages":
                    stagesOnly = true;
                    break;
                case "--realistic":
                    realistic = true;
                    break;
                default:
                    throw new ArgumentException($"unknown argument '{args[i]}'; usage: overhead [--rounds N] [--seconds S] [--concurrency C] [--settings {string.Join(',', AllSettings(null).Select(s => s.Key))}] [--baseline SERVER_DLL] [--server-arg ARG]... [--stages] [--realistic] [--out FILE]");
            }
        }

        var settings = AllSettings(baseline).Where(s => keys is null ? s.Key is "default" or "baseline" : keys.Contains(s.Key)).ToList();
        if (settings.Count == 0)
        {
            throw new ArgumentException("no setting selected");
        }

        var duration = TimeSpan.FromSeconds(seconds);
        var modelName = realistic ? BenchmarkInputs.Realistic : BenchmarkInputs.Tiny;
        var modelPath = realistic ? await BenchmarkInputs.EnsureRealisticAsync(Console.Out, CancellationToken.None) : RepositoryPaths.TinyShapes;
        var image = realistic ? BenchmarkInputs.Scaled(512, 512) : BenchmarkInputs.HeldOut();
        var folder = ModelFolder.Read(modelPath, modelName, null);
        if (stagesOnly)
        {
            var stages = Enumerable.Range(0, rounds).Select(_ => InProcess(folder, image, duration)).ToList();
            Console.WriteLine(string.Create(CultureInfo.InvariantCulture, $"stages, one thread, median CPU ms per image over {rounds} rounds of {seconds:F1} s (load {MachineInfo.LoadAverage()}): probe + decode {Stats.Median(stages.Select(s => s.DecodeMs)):F3}, pre-process {Stats.Median(stages.Select(s => s.PreprocessMs)):F3}, semantic post-processing {Stats.Median(stages.Select(s => s.SemanticMs)):F3}, label PNG {Stats.Median(stages.Select(s => s.EncodeMs)):F3}"));
            return 0;
        }

        var started = DateTimeOffset.UtcNow;
        var loadBefore = MachineInfo.LoadAverage();
        var raws = new List<CellResult>();
        var cells = new Dictionary<string, List<SettingCells>>();
        var servers = new List<(Setting Setting, ServerProcess Server, GrpcChannel Channel)>();
        var inProcess = new List<InProcessCells>();
        // Request threads left at this process's priority: they are the client's too.
        await using var engine = new SegmentationEngine(
            Options.Create(new ModelRepositoryOptions { Path = modelPath }),
            Options.Create(new InferenceOptions { RequestThreadNice = 0, IdlePostprocessing = false }),
            new ImageDecoder(Options.Create(new ImageDecoderOptions())),
            TimeProvider.System,
            NullLogger<SegmentationEngine>.Instance);
        engine.Load();
        await engine.WarmUpAsync(CancellationToken.None);
        await EngineAsync(engine, image, AllTasks, concurrency, TimeSpan.FromSeconds(2));
        try
        {
            // Every setting's server runs from the start, so the rounds alternate between them within
            // seconds (a drift in the machine's load reaches all alike) instead of minutes of restarts.
            foreach (var setting in settings)
            {
                Console.WriteLine($"starting: {setting.Label} (load {MachineInfo.LoadAverage()})");
                var server = await ServerProcess.StartAsync(modelPath, [.. serverArguments, .. setting.Arguments], CancellationToken.None, setting.Environment, serverDll: setting.ServerDll);
                var channel = GrpcLoad.Connect(server);
                servers.Add((setting, server, channel));
                var load = new GrpcLoad(server);
                await load.WaitServingAsync(CancellationToken.None);

                // A short load first, so the server's threads and pools (and this client's code) are warm.
                await load.UnaryAsync(new CellKey(modelName, "unary", "all", concurrency, 0), image, GrpcLoad.AllTasks, TimeSpan.FromSeconds(2), CancellationToken.None);
                await EmptyCallsAsync(channel, server, concurrency, TimeSpan.FromSeconds(1));
            }

            for (var round = 1; round <= rounds; round++)
            {
                Console.WriteLine($"round {round}: raw ONNX Runtime (load {MachineInfo.LoadAverage()})");
                var threads = Environment.ProcessorCount;
                var rawCells = s_rawBatches
                    .Select(batch => RawOrtRunner.Measure(modelName, folder, image, new InferenceOptions(), new RawLayout(1, threads, RawLayout.AsService), batch, duration, round))
                    .ToList();
                foreach (var cell in rawCells)
                {
                    Console.WriteLine(string.Create(CultureInfo.InvariantCulture, $"  raw batch {cell.Concurrency}: {cell.ImagesPerSecond:F2} img/s, {cell.CpuMsPerImage:F2} CPU ms/img"));
                }

                var raw = rawCells.MaxBy(cell => cell.ImagesPerSecond)!;
                Console.WriteLine($"  raw best batch {raw.Concurrency}: {raw.ImagesPerSecond:F1} img/s, {raw.CpuMsPerImage:F2} CPU ms/img");
                raws.Add(raw);
                var stages = InProcess(folder, image, duration / 3);
                var engineSemantic = await EngineAsync(engine, image, SegmentationTasks.Semantic, concurrency, duration);
                var engineAll = await EngineAsync(engine, image, AllTasks, concurrency, duration);
                inProcess.Add(stages with { EngineSemantic = engineSemantic, EngineAll = engineAll });
                Console.WriteLine($"  in process: {inProcess[^1]}");
                foreach (var (setting, server, channel) in round % 2 == 1 ? servers : Enumerable.Reverse(servers))
                {
                    var measured = await MeasureAsync(server, channel, image, concurrency, duration, round);
                    Console.WriteLine($"  {setting.Key}: floor {measured.Floor}; semantic {measured.Semantic}; all {measured.All} (load {MachineInfo.LoadAverage()})");
                    if (!cells.TryGetValue(setting.Key, out var list))
                    {
                        cells[setting.Key] = list = [];
                    }

                    list.Add(measured);
                }
            }
        }
        finally
        {
            foreach (var (_, server, channel) in servers)
            {
                channel.Dispose();
                await server.DisposeAsync();
            }
        }

        var text = new StringBuilder();
        var rawRate = Stats.Median(raws.Select(r => r.ImagesPerSecond));
        var rawCpu = Stats.Median(raws.Select(r => r.CpuMsPerImage));
        Line(text, $"{(realistic ? "Realistic-width model, held-out 0000 scaled to 512x512 (JPEG)" : "Tiny model, held-out 0000.png (123x183 PNG)")}, {concurrency} callers, {Environment.ProcessorCount} cores, {rounds} round(s) of {seconds:F1} s per cell, started {started:yyyy-MM-dd HH:mm} UTC, load average {loadBefore} before, {MachineInfo.LoadAverage()} after ({(DateTimeOffset.UtcNow - started).TotalMinutes:F1} min).");
        Line(text, $"Raw ONNX Runtime (best of batch 1, 2, 4, {Environment.ProcessorCount} intra-op threads, spinning off): {rawRate:F1} img/s, {rawCpu:F2} CPU ms/img (medians over rounds).");
        Line(text);
        if (serverArguments.Count > 0)
        {
            Line(text, $"Every setting's server also ran with: `{string.Join(' ', serverArguments)}` (raw ONNX Runtime and the in-process engine ran on the CPU).");
        }

        Line(text, "Medians over rounds. *server* and *client*: CPU ms per call of the server process and of the load-generating client (this process). *bound*: raw CPU ÷ (server + client CPU), the ratio the service could reach if both used every core.");
        Line(text);
        Line(text, "| setting | empty call: calls/s | server | client | semantic: img/s | ÷ raw | server | client | bound | all tasks: img/s | ÷ raw | server | client | bound |");
        Line(text, "| --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: |");
        foreach (var setting in settings)
        {
            var list = cells[setting.Key];
            double M(Func<SettingCells, Cell> pick, Func<Cell, double> value) => Stats.Median(list.Select(c => value(pick(c))));
            string Cells(Func<SettingCells, Cell> pick) =>
                string.Create(CultureInfo.InvariantCulture, $"{M(pick, c => c.Rate):F1} | {M(pick, c => c.Rate) / rawRate:F2} | {M(pick, c => c.ServerCpuMs):F2} | {M(pick, c => c.ClientCpuMs):F2} | {rawCpu / (M(pick, c => c.ServerCpuMs) + M(pick, c => c.ClientCpuMs)):F2}");
            Line(text, string.Create(CultureInfo.InvariantCulture, $"| {setting.Label} | {M(c => c.Floor, c => c.Rate):F0} | {M(c => c.Floor, c => c.ServerCpuMs):F3} | {M(c => c.Floor, c => c.ClientCpuMs):F3} | {Cells(c => c.Semantic)} | {Cells(c => c.All)} |"));
        }

        Line(text);
        double P(Func<InProcessCells, double> pick) => Stats.Median(inProcess.Select(pick));
        Line(text, "The same work in this process, without gRPC (medians over rounds): CPU ms per image of one thread for the stages, of the process for the engine under the same callers (decode, pre-process, batching, model run, post-processing; no encoding).");
        Line(text);
        Line(text, "| probe + decode | pre-process | semantic post-processing (batch 1 output) | label PNG encoding | engine, semantic: img/s | CPU ms/img | engine, all tasks: img/s | CPU ms/img |");
        Line(text, "| ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: |");
        Line(text, string.Create(CultureInfo.InvariantCulture, $"| {P(c => c.DecodeMs):F3} | {P(c => c.PreprocessMs):F3} | {P(c => c.SemanticMs):F3} | {P(c => c.EncodeMs):F3} | {P(c => c.EngineSemantic.Rate):F1} | {P(c => c.EngineSemantic.ServerCpuMs):F2} | {P(c => c.EngineAll.Rate):F1} | {P(c => c.EngineAll.ServerCpuMs):F2} |"));

        Console.WriteLine();
        Console.WriteLine(text);
        if (output is not null)
        {
            await File.WriteAllTextAsync(output, text.ToString());
        }

        return cells.Values.SelectMany(l => l).Any(c => c.Errors > 0) ? 1 : 0;
    }

    private static async Task<SettingCells> MeasureAsync(ServerProcess server, GrpcChannel channel, byte[] image, int concurrency, TimeSpan duration, int round)
    {
        var load = new GrpcLoad(server);
        var floor = await EmptyCallsAsync(channel, server, concurrency, duration);
        var semantic = await UnaryAsync(load, image, GrpcLoad.SemanticOnly, concurrency, duration, round);
        var all = await UnaryAsync(load, image, GrpcLoad.AllTasks, concurrency, duration, round);
        return new SettingCells(floor, semantic.Cell, all.Cell, semantic.Errors + all.Errors);
    }

    private static async Task<(Cell Cell, int Errors)> UnaryAsync(GrpcLoad load, byte[] image, SegmentationTask[] tasks, int concurrency, TimeSpan duration, int round)
    {
        var client = ClientCpu();
        var cell = await load.UnaryAsync(new CellKey(BenchmarkInputs.Tiny, "unary", tasks.Length > 1 ? "all" : "semantic", concurrency, round), image, tasks, duration, CancellationToken.None);
        var clientMs = (ClientCpu() - client).TotalMilliseconds;
        return (new Cell(cell.ImagesPerSecond, cell.CpuMsPerImage, clientMs / Math.Max(1, cell.Images)), cell.Errors);
    }

    // ListModels: the whole call path (Kestrel, HTTP/2, gRPC, protobuf, interceptors, middleware) with no engine work.
    private static async Task<Cell> EmptyCallsAsync(GrpcChannel channel, ServerProcess server, int concurrency, TimeSpan duration)
    {
        var client = new SegmentationService.SegmentationServiceClient(channel);
        var request = new ListModelsRequest();
        await client.ListModelsAsync(request);
        var calls = 0;
        var serverBefore = server.CpuTime();
        var clientBefore = ClientCpu();
        var clock = Stopwatch.StartNew();
        await Task.WhenAll(Enumerable.Range(0, concurrency).Select(async _ =>
        {
            while (clock.Elapsed < duration)
            {
                await client.ListModelsAsync(request);
                Interlocked.Increment(ref calls);
            }
        }));
        var seconds = clock.Elapsed.TotalSeconds;
        return new Cell(calls / seconds, (server.CpuTime() - serverBefore).TotalMilliseconds / calls, (ClientCpu() - clientBefore).TotalMilliseconds / calls);
    }

    // One thread, back to back: what each stage costs alone on this image.
    private static InProcessCells InProcess(ModelFolder folder, byte[] imageBytes, TimeSpan duration)
    {
        using var decoder = new ImageDecoder(Options.Create(new ImageDecoderOptions()));
        var preprocessor = new ImagePreprocessor(folder.Preprocessor);
        var source = ImageSource.Encoded(imageBytes);
        using var image = decoder.Decode(decoder.Probe(source));
        using var input = preprocessor.Process(image);
        using var options = SessionFactory.CreateCpuOptions(new InferenceOptions(), 1, "overhead");
        using var session = new ModelSession(new Microsoft.ML.OnnxRuntime.InferenceSession(folder.ModelPath, options), new SessionPlacement(DeviceSpec.Cpu, "CPUExecutionProvider", null));
        var outputs = session.Run([input]);
        using var output = outputs[0];
        using var labels = SemanticInference.Run(output, input.Plan);
        return new InProcessCells(
            PerCall(() => decoder.Decode(decoder.Probe(source)).Dispose(), duration),
            PerCall(() => preprocessor.Process(image).Dispose(), duration),
            PerCall(() => SemanticInference.Run(output, input.Plan).Dispose(), duration),
            PerCall(() => LabelMapPngEncoder.EncodePng(labels, LabelMapPngEncoder.BitsPerPixel(folder.Config.Labels.Count)), duration),
            null!,
            null!);
    }

    private static double PerCall(Action action, TimeSpan duration)
    {
        for (var i = 0; i < 20; i++)
        {
            action();
        }

        var calls = 0;
        var cpu = ThreadCpu.Now();
        var clock = Stopwatch.StartNew();
        while (clock.Elapsed < duration || calls < 20)
        {
            action();
            calls++;
        }

        return (ThreadCpu.Now() - cpu).TotalMilliseconds / calls;
    }

    private static async Task<Cell> EngineAsync(SegmentationEngine engine, byte[] image, SegmentationTasks tasks, int concurrency, TimeSpan duration)
    {
        var source = ImageSource.Encoded(image);
        var images = 0;
        var cpu = ClientCpu();
        var clock = Stopwatch.StartNew();
        await Task.WhenAll(Enumerable.Range(0, concurrency).Select(_ => Task.Run(async () =>
        {
            while (clock.Elapsed < duration)
            {
                using var result = await engine.SegmentAsync(new SegmentationRequest { Image = source, Tasks = tasks }, CancellationToken.None);
                Interlocked.Increment(ref images);
            }
        })));
        var seconds = clock.Elapsed.TotalSeconds;
        return new Cell(images / seconds, (ClientCpu() - cpu).TotalMilliseconds / images, 0);
    }

    private static TimeSpan ClientCpu()
    {
        using var process = Process.GetCurrentProcess();
        return process.TotalProcessorTime;
    }

    private static List<Setting> AllSettings(string? baseline)
    {
        var none = new Dictionary<string, string>();
        List<Setting> settings =
        [
            new("default", "this tree, as configured", [], none, null),
            new("tpspin0", "thread-pool spinning off (DOTNET_ThreadPool_UnfairSemaphoreSpinLimit=0)", [], new Dictionary<string, string> { ["DOTNET_ThreadPool_UnfairSemaphoreSpinLimit"] = "0" }, null),
            new("threads1", "1 intra-op thread", ["--MaskFormer:Inference:IntraOpThreads=1"], none, null),
            new("delay0", "no queue delay (MaxQueueDelay=0)", ["--MaskFormer:Inference:MaxQueueDelay=00:00:00"], none, null),
            new("batch1", "no batching (MaxBatchSize=1)", ["--MaskFormer:Inference:MaxBatchSize=1"], none, null),
            new("batch2", "MaxBatchSize=2", ["--MaskFormer:Inference:MaxBatchSize=2"], none, null),
            new("batch8", "MaxBatchSize=8", ["--MaskFormer:Inference:MaxBatchSize=8"], none, null),
            new("pad0", "CUDA batches as they come (PadCudaBatches=false)", ["--MaskFormer:Inference:PadCudaBatches=false"], none, null),
            new("post1", "each image post-processed on one thread (PostprocessThreads=1)", ["--MaskFormer:Inference:PostprocessThreads=1"], none, null),
            new("blocksync", "threads waiting for the GPU sleep (CudaHostWait=BlockingSync)", ["--MaskFormer:Inference:CudaHostWait=BlockingSync"], none, null),
            new("padmax", "CUDA batches all padded to MaxBatchSize, one session (CudaBatchSizes=4)", ["--MaskFormer:Inference:CudaBatchSizes=4"], none, null),
            new("r2r0", "no ReadyToRun code (DOTNET_ReadyToRun=0: the framework JIT-compiled too)", [], new Dictionary<string, string> { ["DOTNET_ReadyToRun"] = "0" }, null),
            new("nodeadline", "no default deadline (MaskFormer:Grpc:DefaultDeadline=0)", ["--MaskFormer:Grpc:DefaultDeadline=00:00:00"], none, null),
            new("nice0", "request threads at the model's priority (RequestThreadNice=0)", ["--MaskFormer:Inference:RequestThreadNice=0"], none, null),
            new("nice5", "request threads 5 nice levels down (RequestThreadNice=5)", ["--MaskFormer:Inference:RequestThreadNice=5"], none, null),
            new("nice19", "request threads 19 nice levels down (RequestThreadNice=19)", ["--MaskFormer:Inference:RequestThreadNice=19"], none, null),
            new("postpool", "post-processing on the request's pool thread, at its nice value (IdlePostprocessing=false)", ["--MaskFormer:Inference:IdlePostprocessing=false"], none, null),
            new("wksgc", "workstation GC (DOTNET_gcServer=0)", [], new Dictionary<string, string> { ["DOTNET_gcServer"] = "0" }, null),
        ];
        if (baseline is not null)
        {
            settings.Insert(0, new("baseline", $"baseline build ({Path.GetFileName(Path.GetDirectoryName(baseline))})", [], none, baseline));
        }

        return settings;
    }

    private static void Line(StringBuilder text, string line = "") => text.Append(line).Append('\n');

    private sealed record Setting(string Key, string Label, string[] Arguments, IReadOnlyDictionary<string, string> Environment, string? ServerDll);

    private sealed record Cell(double Rate, double ServerCpuMs, double ClientCpuMs)
    {
        public override string ToString() => string.Create(CultureInfo.InvariantCulture, $"{Rate:F1}/s server {ServerCpuMs:F2} client {ClientCpuMs:F2} ms");
    }

    private sealed record InProcessCells(double DecodeMs, double PreprocessMs, double SemanticMs, double EncodeMs, Cell EngineSemantic, Cell EngineAll)
    {
        public override string ToString() => string.Create(CultureInfo.InvariantCulture, $"decode {DecodeMs:F3} ms, pre-process {PreprocessMs:F3} ms, semantic post {SemanticMs:F3} ms, label PNG {EncodeMs:F3} ms; engine semantic {EngineSemantic.Rate:F1}/s {EngineSemantic.ServerCpuMs:F2} ms, all {EngineAll.Rate:F1}/s {EngineAll.ServerCpuMs:F2} ms");
    }

    private sealed record SettingCells(Cell Floor, Cell Semantic, Cell All, int Errors);
}
