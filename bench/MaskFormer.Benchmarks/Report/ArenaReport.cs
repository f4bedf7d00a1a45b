using System.Diagnostics;
using System.Globalization;
using MaskFormer.Engine.Models;
using MaskFormer.Engine.Preprocessing;
using MaskFormer.Engine.Sessions;
using Microsoft.ML.OnnxRuntime;

namespace MaskFormer.Benchmarks.Report;

/// <summary>
/// <c>arena [--rounds N] [--runs R]</c>: what ONNX Runtime's CPU arena settings (<see cref="CpuArenaMode"/>)
/// cost per model run, side by side: the service's session wrapper on the committed model, inputs of two
/// sizes taken in turn (a 640x480 and a 2048x1536 image's model input, so the arena has to grow and, when
/// shrinking, give back), median ms per run of each size. Rounds visit the modes in alternating order so a
/// drift in the machine's load does not favour one.
/// </summary>
internal static class ArenaReport
{
    private static readonly (int Width, int Height)[] s_sizes = [(640, 480), (2048, 1536)];

    public static async Task<int> RunAsync(string[] args)
    {
        var rounds = 3;
        var runs = 20;
        var realistic = false;
        for (var i = 0; i < args.Length; i++)
        {
            switch (args[i])
            {
                case "--rounds":
                    rounds = int.Parse(args[++i], CultureInfo.InvariantCulture);
                    break;
                case "--runs":
                    runs = int.Parse(args[++i], CultureInfo.InvariantCulture);
                    break;
                case "--realistic":
                    realistic = true;
                    break;
                default:
                    throw new ArgumentException($"unknown argument '{args[i]}'; usage: arena [--rounds N] [--runs R] [--realistic]");
            }
        }

        // --realistic: the realistic-width model (fixed 512x512 input, ~100x the tiny model's tensors).
        var folder = realistic
            ? ModelFolder.Read(await BenchmarkInputs.EnsureRealisticAsync(Console.Out, CancellationToken.None), BenchmarkInputs.Realistic, null)
            : ModelFolder.Read(RepositoryPaths.TinyShapes, BenchmarkInputs.Tiny, null);
        var plans = s_sizes.Select(s => ResizePlan.For(s.Height, s.Width, folder.Preprocessor)).ToArray();
        var modes = new[] { CpuArenaMode.Keep, CpuArenaMode.Shrink, CpuArenaMode.Off };
        var times = modes.ToDictionary(m => m, _ => plans.Select(_ => new List<double>()).ToArray());
        var threads = Environment.ProcessorCount;
        for (var round = 1; round <= rounds; round++)
        {
            foreach (var mode in round % 2 == 1 ? modes : modes.Reverse())
            {
                var options = new InferenceOptions { CpuMemoryArena = mode };
                using var sessionOptions = SessionFactory.CreateCpuOptions(options, threads, "arena");
                using var session = new ModelSession(new InferenceSession(folder.ModelPath, sessionOptions), new SessionPlacement(DeviceSpec.Cpu, "CPUExecutionProvider", null), mode == CpuArenaMode.Shrink);
                var inputs = plans.Select(plan => new ModelInput(plan)).ToArray();
                try
                {
                    foreach (var input in inputs)
                    {
                        input.Tensor.Clear();
                        DisposeAll(session.Run([input]));
                    }

                    for (var run = 0; run < runs; run++)
                    {
                        for (var size = 0; size < inputs.Length; size++)
                        {
                            var started = Stopwatch.GetTimestamp();
                            DisposeAll(session.Run([inputs[size]]));
                            times[mode][size].Add(Stopwatch.GetElapsedTime(started).TotalMilliseconds);
                        }
                    }
                }
                finally
                {
                    DisposeAll(inputs);
                }

                Console.WriteLine($"  round {round} {mode,-6}: " + string.Join("  ", plans.Select((p, i) => $"{p.PaddedWidth}x{p.PaddedHeight} {Stats.Median(times[mode][i].TakeLast(runs)):F2} ms")));
            }
        }

        Console.WriteLine();
        Console.WriteLine($"| CPU arena | " + string.Join(" | ", plans.Select(p => $"model input {p.PaddedWidth}x{p.PaddedHeight}, ms/run")) + " |");
        Console.WriteLine("| --- |" + string.Concat(plans.Select(_ => " ---: |")));
        foreach (var mode in modes)
        {
            Console.WriteLine($"| {mode} | " + string.Join(" | ", times[mode].Select(t => Stats.Median(t).ToString("F2", CultureInfo.InvariantCulture))) + " |");
        }

        Console.WriteLine($"({(realistic ? BenchmarkInputs.Realistic : BenchmarkInputs.Tiny)}, {rounds} rounds x {runs} runs per size, intra-op threads {threads}, batch 1, {Environment.ProcessorCount} cores)");
        return 0;
    }

    private static void DisposeAll(IEnumerable<IDisposable> items)
    {
        foreach (var item in items)
        {
            item.Dispose();
        }
    }
}
