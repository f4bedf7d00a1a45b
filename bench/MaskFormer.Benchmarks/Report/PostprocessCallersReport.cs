using System.Diagnostics;
using System.Globalization;
using MaskFormer.Engine;
using MaskFormer.Engine.Decoding;
using MaskFormer.Engine.Models;
using MaskFormer.Engine.Postprocessing;
using MaskFormer.Engine.Preprocessing;
using MaskFormer.Engine.Sessions;
using Microsoft.Extensions.Options;
using Microsoft.ML.OnnxRuntime;

namespace MaskFormer.Benchmarks.Report;

/// <summary>
/// <c>postcallers [--model tiny|realistic] [--size WxH] [--callers 1,2,4] [--rounds N] [--seconds S]</c>: all three
/// detectron2 tasks on one saved model output, post-processed by C threads at once as requests are, with
/// the cores shared among the images being post-processed (the service's rule, <c>shared</c>) against every
/// large pass on every core (<c>all-cores</c>, the rule before it), alternated within each round. Reports
/// images/s and the process's CPU ms per image, medians over rounds: what the thread pool's fork, join and
/// spinning cost once every core already has an image. Post-processing only: no model run, decoding or
/// encoding beside it.
/// </summary>
internal static class PostprocessCallersReport
{
    private const SegmentationTasks AllTasks = SegmentationTasks.Semantic | SegmentationTasks.Instance | SegmentationTasks.Panoptic;

    public static async Task<int> RunAsync(string[] args)
    {
        var (model, size, callers, rounds, seconds) = ("realistic", "512x512", new[] { 1, 2, 4 }, 3, 3.0);
        for (var i = 0; i < args.Length; i++)
        {
            switch (args[i])
            {
                case "--model": model = args[++i]; break;
                case "--size": size = args[++i]; break;
                case "--callers": callers = [.. args[++i].Split(',').Select(c => int.Parse(c, CultureInfo.InvariantCulture))]; break;
                case "--rounds": rounds = int.Parse(args[++i], CultureInfo.InvariantCulture); break;
                case "--seconds": seconds = double.Parse(args[++i], CultureInfo.InvariantCulture); break;
                default: throw new ArgumentException($"unknown argument '{args[i]}'; usage: postcallers [--model tiny|realistic] [--size WxH] [--callers 1,2,4] [--rounds N] [--seconds S]");
            }
        }

        var (name, path) = model == "realistic"
            ? (BenchmarkInputs.Realistic, await BenchmarkInputs.EnsureRealisticAsync(Console.Out, CancellationToken.None))
            : (BenchmarkInputs.Tiny, RepositoryPaths.TinyShapes);
        var folder = ModelFolder.Read(path, name, null);
        var parts = size.Split('x');
        using var image = new ImageDecoder(Options.Create(new ImageDecoderOptions())).Decode(BenchmarkInputs.Scaled(int.Parse(parts[0], CultureInfo.InvariantCulture), int.Parse(parts[1], CultureInfo.InvariantCulture)));
        using var input = new ImagePreprocessor(folder.Preprocessor).Process(image);
        var plan = input.Plan;
        using var output = PostprocessReport.RunOnce(folder, input);
        var labels = folder.Config.Labels;
        // Shared: counted as the engine counts a request, so the cores are divided among the callers.
        // All cores: not counted, so every large pass sees no other image and takes every core.
        void PostprocessOnce(bool shared)
        {
            using var counted = shared ? RowParallelism.Enter() : default(RowParallelism.ImageScope?);
            using var tiles = new MaskTiles(output, plan);
            var (semantic, instances, panoptic) = Detectron2Tasks.Run(tiles, AllTasks, labels, true, false, PostprocessOptions.Detectron2);
            semantic?.Dispose();
            panoptic?.Dispose();
            foreach (var instance in instances ?? [])
            {
                instance.Dispose();
            }
        }

        // Warm both rules' code paths once.
        foreach (var share in new[] { true, false })
        {
            Measure(() => PostprocessOnce(share), 2, TimeSpan.FromSeconds(1));
        }

        Console.WriteLine($"postcallers: {name} {size}, all three tasks, {Environment.ProcessorCount} cores, {rounds} rounds of {seconds:F1} s per cell, load average {MachineInfo.LoadAverage()}, {DateTimeOffset.UtcNow:yyyy-MM-dd HH:mm} UTC");
        Console.WriteLine("| callers | rule | img/s | CPU ms/img | img/s ÷ all-cores | CPU ÷ all-cores |");
        Console.WriteLine("| ---: | --- | ---: | ---: | ---: | ---: |");
        foreach (var count in callers)
        {
            var cells = new Dictionary<bool, List<(double Rate, double Cpu)>> { [true] = [], [false] = [] };
            for (var round = 0; round < rounds; round++)
            {
                foreach (var share in round % 2 == 0 ? new[] { true, false } : [false, true])
                {
                    cells[share].Add(Measure(() => PostprocessOnce(share), count, TimeSpan.FromSeconds(seconds)));
                }
            }

            var baseline = (Rate: Stats.Median(cells[false].Select(c => c.Rate)), Cpu: Stats.Median(cells[false].Select(c => c.Cpu)));
            foreach (var share in new[] { true, false })
            {
                var (rate, cpu) = (Stats.Median(cells[share].Select(c => c.Rate)), Stats.Median(cells[share].Select(c => c.Cpu)));
                Console.WriteLine(string.Create(CultureInfo.InvariantCulture, $"| {count} | {(share ? "shared" : "all-cores")} | {rate:F2} | {cpu:F2} | {rate / baseline.Rate:F3} | {cpu / baseline.Cpu:F3} |"));
            }
        }

        Console.WriteLine($"load average after: {MachineInfo.LoadAverage()}");
        return 0;
    }

    /// <summary>
    /// Images per second and process CPU ms per image of <paramref name="callers"/> thread-pool tasks looping
    /// for <paramref name="duration"/>: pool threads, as the service's requests are, so the passes' forked
    /// work competes with the callers for the same pool.
    /// </summary>
    private static (double Rate, double Cpu) Measure(Action postprocess, int callers, TimeSpan duration)
    {
        using var process = Process.GetCurrentProcess();
        var images = 0;
        ThreadPool.GetMinThreads(out var workers, out var io);
        ThreadPool.SetMinThreads(Math.Max(workers, callers + Environment.ProcessorCount), io);
        process.Refresh();
        var cpuBefore = process.TotalProcessorTime;
        var clock = Stopwatch.StartNew();
        var stopAt = Stopwatch.GetTimestamp() + (long)(duration.TotalSeconds * Stopwatch.Frequency);
        var tasks = Enumerable.Range(0, callers).Select(_ => Task.Run(() =>
        {
            while (Stopwatch.GetTimestamp() < stopAt)
            {
                postprocess();
                Interlocked.Increment(ref images);
            }
        })).ToArray();
        Task.WaitAll(tasks);
        var wall = clock.Elapsed.TotalSeconds;
        process.Refresh();
        var cpu = (process.TotalProcessorTime - cpuBefore).TotalMilliseconds;
        ThreadPool.SetMinThreads(workers, io);
        return (images / wall, cpu / Math.Max(1, images));
    }
}
