using System.Diagnostics;
using System.Globalization;
using Grpc.Net.Client;

namespace MaskFormer.Benchmarks.Report;

/// <summary>
/// <c>profile [--realistic] [--seconds S] [--warm S] [--concurrency C] [--tasks all|semantic] [--trace FILE] [--perf FILE]</c>:
/// the service as its own process under steady unary load, for a profiler. With <c>--trace</c>, dotnet-trace
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
        for (var i = 0; i < args.Length; i++)
        {
            switch (args[i])
            {
                case "--realistic":
                    realistic = true;
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
                    throw new ArgumentException($"unknown argument '{args[i]}'; usage: profile [--realistic] [--seconds S] [--warm S] [--concurrency C] [--tasks all|semantic] [--trace FILE] [--perf FILE]");
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
        using var channel = GrpcChannel.ForAddress(server.Address, new GrpcChannelOptions { MaxReceiveMessageSize = 256 << 20 });
        var load = new GrpcLoad(channel, server);
        await load.WaitServingAsync(CancellationToken.None);
        var taskList = tasks == "semantic" ? GrpcLoad.SemanticOnly : GrpcLoad.AllTasks;
        await load.UnaryAsync(new CellKey(name, "unary", tasks, concurrency, 0), image, taskList, TimeSpan.FromSeconds(warm), CancellationToken.None);
        Console.WriteLine($"server pid {server.Id}, load average {MachineInfo.LoadAverage()}");
        using var tracer = trace is null ? null : StartTrace(server.Id, trace, seconds);
        using var sampler = perf is null ? null : Start("perf", ["record", "-F", "499", "-g", "-p", server.Id.ToString(CultureInfo.InvariantCulture), "-o", perf, "--", "sleep", seconds.ToString(CultureInfo.InvariantCulture)]);
        var cell = await load.UnaryAsync(new CellKey(name, "unary", tasks, concurrency, 1), image, taskList, TimeSpan.FromSeconds(seconds), CancellationToken.None);
        foreach (var profiler in new[] { tracer, sampler })
        {
            if (profiler is not null)
            {
                await profiler.WaitForExitAsync();
            }
        }

        Console.WriteLine($"{name} {tasks} x{concurrency}: {cell.ImagesPerSecond:F1} img/s, server CPU {cell.CpuMsPerImage:F2} ms/img, model run {cell.InferenceMsPerImage:F2} ms/img, post {cell.PostprocessMs:F2} ms, encode {cell.EncodeMs:F2} ms, batch {cell.MeanBatch:F2}, load average {MachineInfo.LoadAverage()}");
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
