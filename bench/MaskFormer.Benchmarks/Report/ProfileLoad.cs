using System.Diagnostics;
using System.Globalization;
using Grpc.Net.Client;

namespace MaskFormer.Benchmarks.Report;

/// <summary>
/// <c>profile [--realistic] [--stream] [--compare N] [--min-images M] [--seconds S] [--warm S] [--concurrency C] [--tasks all|semantic] [--trace FILE] [--perf FILE]</c>:
/// the service as its own process under steady unary load (or one stream with C frames in flight, with
/// <c>--stream</c>), for a profiler. <c>--compare N</c> instead measures C unary callers and one stream
/// of C frames in flight side by side on one server, N rounds in alternating order, and prints the
/// stream ÷ unary ratios of throughput and server CPU per image. With <c>--trace</c>, dotnet-trace
/// (on the PATH) samples the server's managed threads for the whole load (<c>dotnet-sampled-thread-time</c>:
/// wall time, waits included; read it with <c>dotnet-trace report FILE topN</c>). With <c>--perf</c>, Linux
/// perf samples where the server's CPU time goes, native code (ONNX Runtime, the kernel) included, and the
/// server writes a perf map so JIT-compiled methods have names (<c>perf report -i FILE --no-children</c>).
/// </summary>
internal static class ProfileLoad
{
    public static async Task<int> RunAsync(string[] args)
    {
        var (realistic, seconds, warm, concurrency, tasks, trace, perf) = (false, 20.0, 3.0, 1, "all", (string?)null, (string?)null);
        var (stream, compare, minImages) = (false, 0, 0);
        for (var i = 0; i < args.Length; i++)
        {
            switch (args[i])
            {
                case "--realistic":
                    realistic = true;
                    break;
                case "--stream":
                    stream = true;
                    break;
                case "--compare":
                    compare = int.Parse(args[++i], CultureInfo.InvariantCulture);
                    break;
                case "--min-images":
                    minImages = int.Parse(args[++i], CultureInfo.InvariantCulture);
                    break;
                case "--seconds":
                    seconds = double.Parse(args[++i], CultureInfo.InvariantCulture);
                    break;
                case "--warm":
                    warm = double.Parse(args[++i], CultureInfo.InvariantCulture);
                    break;
                case "--concurrency":
                    concurrency = int.Parse(args[++i], CultureInfo.InvariantCulture);
                    break;
                case "--tasks":
                    tasks = args[++i];
                    break;
                case "--trace":
                    trace = Path.GetFullPath(args[++i]);
                    break;
                case "--perf":
                    perf = Path.GetFullPath(args[++i]);
                    break;
                default:
                    throw new ArgumentException($"unknown argument '{args[i]}'; usage: profile [--realistic] [--stream] [--compare N] [--min-images M] [--seconds S] [--warm S] [--concurrency C] [--tasks all|semantic] [--trace FILE] [--perf FILE]");
            }
        }

        var (name, folder, image) = realistic
            ? (BenchmarkInputs.Realistic, await BenchmarkInputs.EnsureRealisticAsync(Console.Out, CancellationToken.None), BenchmarkInputs.Scaled(512, 512))
            : (BenchmarkInputs.Tiny, RepositoryPaths.TinyShapes, BenchmarkInputs.HeldOut());
        var environment = new Dictionary<string, string>();
        if (perf is not null)
        {
            environment["DOTNET_PerfMapEnabled"] = "1";

            // JIT-compiled code in plain anonymous memory, where perf finds it by the perf map.
            environment["DOTNET_EnableWriteXorExecute"] = "0";
        }

        await using var server = await ServerProcess.StartAsync(folder, [], CancellationToken.None, environment);
        var load = new GrpcLoad(server);
        await load.WaitServingAsync(CancellationToken.None);
        var taskList = tasks == "semantic" ? GrpcLoad.SemanticOnly : GrpcLoad.AllTasks;
        Task<CellResult> Cell(bool asStream, int round, double duration) => asStream
            ? load.StreamAsync(new CellKey(name, "stream", tasks, concurrency, round), image, taskList, TimeSpan.FromSeconds(duration), CancellationToken.None, minImages)
            : load.UnaryAsync(new CellKey(name, "unary", tasks, concurrency, round), image, taskList, TimeSpan.FromSeconds(duration), CancellationToken.None, minImages);
        if (compare > 0)
        {
            return await CompareAsync(Cell, compare, seconds, $"{name} {tasks} x{concurrency}");
        }

        await Cell(stream, 0, warm);
        Console.WriteLine($"server pid {server.Id}, load average {MachineInfo.LoadAverage()}");
        using var tracer = trace is null ? null : StartTrace(server.Id, trace, seconds);
        using var sampler = perf is null ? null : Start("perf", ["record", "-F", "499", "-g", "-p", server.Id.ToString(CultureInfo.InvariantCulture), "-o", perf, "--", "sleep", seconds.ToString(CultureInfo.InvariantCulture)]);
        var cell = await Cell(stream, 1, seconds);
        foreach (var profiler in new[] { tracer, sampler })
        {
            if (profiler is not null)
            {
                await profiler.WaitForExitAsync();
            }
        }

        Console.WriteLine($"{name} {cell.Scenario} {tasks} x{concurrency}: {cell.ImagesPerSecond:F2} img/s ({cell.Images} in {cell.Seconds:F1} s), server CPU {cell.CpuMsPerImage:F2} ms/img, model run {cell.InferenceMsPerImage:F2} ms/img, post {cell.PostprocessMs:F2} ms, encode {cell.EncodeMs:F2} ms, batch {cell.MeanBatch:F2}, load average {MachineInfo.LoadAverage()}");
        return 0;
    }

    // Unary and stream cells alternate (unary first in odd rounds), so a change in the machine's load
    // falls on both alike; each round's ratio compares neighbours.
    private static async Task<int> CompareAsync(Func<bool, int, double, Task<CellResult>> cell, int rounds, double seconds, string label)
    {
        var ratios = new List<(double Throughput, double Cpu)>();
        for (var round = 1; round <= rounds; round++)
        {
            CellResult? unary = null, stream = null;
            foreach (var asStream in round % 2 == 1 ? new[] { false, true } : [true, false])
            {
                var result = await cell(asStream, round, seconds);
                Console.WriteLine($"round {round} {result.Scenario,-6}: {result.ImagesPerSecond,6:F2} img/s ({result.Images} in {result.Seconds:F1} s, cell {result.WallSeconds:F0} s), server CPU {result.CpuMsPerImage,7:F1} ms/img, p50 {result.LatencyP50Ms:F0} ms, model run {result.InferenceMsPerImage:F1} ms/img, post {result.PostprocessMs:F1} ms, encode {result.EncodeMs:F1} ms, batch {result.MeanBatch:F2}, errors {result.Errors}{(result.FirstError is { } first ? $" (the first: {first})" : "")}, load {MachineInfo.LoadAverage()}");
                (unary, stream) = asStream ? (unary, result) : (result, stream);
            }

            ratios.Add((stream!.ImagesPerSecond / unary!.ImagesPerSecond, stream.CpuMsPerImage / unary.CpuMsPerImage));
            Console.WriteLine($"round {round}: stream ÷ unary throughput {ratios[^1].Throughput:F2}, CPU per image {ratios[^1].Cpu:F2}");
        }

        Console.WriteLine($"{label}, {rounds} rounds: stream ÷ unary throughput min / median {ratios.Min(r => r.Throughput):F2} / {Stats.Median(ratios.Select(r => r.Throughput)):F2}; CPU per image median {Stats.Median(ratios.Select(r => r.Cpu)):F2}");
        return 0;
    }

    private static Process StartTrace(int pid, string file, double seconds)
    {
        var duration = TimeSpan.FromSeconds(seconds);
        return Start("dotnet-trace", ["collect", "-p", pid.ToString(CultureInfo.InvariantCulture), "--profile", "dotnet-sampled-thread-time", "--duration", duration.ToString(@"dd\:hh\:mm\:ss", CultureInfo.InvariantCulture), "-o", file]);
    }

    private static Process Start(string file, string[] arguments)
    {
        var info = new ProcessStartInfo(file) { UseShellExecute = false };
        foreach (var argument in arguments)
        {
            info.ArgumentList.Add(argument);
        }

        return Process.Start(info) ?? throw new InvalidOperationException($"could not start {file}");
    }
}
