using System.Diagnostics;
using System.Globalization;
using System.Runtime.InteropServices;
using System.Security.Cryptography;
using System.Text;
using MaskFormer.Engine;
using MaskFormer.Engine.Decoding;
using MaskFormer.Engine.Encoding;
using MaskFormer.Engine.Models;
using MaskFormer.Engine.Postprocessing;
using MaskFormer.Engine.Preprocessing;
using MaskFormer.Engine.Sessions;
using MaskFormer.Server.Mapping;
using Microsoft.Extensions.Options;
using Microsoft.ML.OnnxRuntime;

namespace MaskFormer.Benchmarks.Report;

/// <summary>
/// <c>postproc [--models tiny,realistic] [--sizes 512x512,1920x1080] [--rounds N] [--runs N] [--tasks semantic,instance,panoptic,all,all+encode,encode,encode-semantic,encode-instance,encode-panoptic]</c>: each
/// post-processing task's CPU time per image on one saved model output per model and size, beside the
/// model run's CPU time on the same input; min and median over rounds. Process CPU time (all threads),
/// so a pass that uses both cores counts both. A checksum of every result, taken in an untimed run of
/// its own, lets two builds be compared for identical output. <c>encode</c> times only the encoding of
/// all three tasks' results (label PNG, instance COCO RLE counts and strings, panoptic PNG), computed
/// once beforehand; <c>encode-semantic</c>, <c>encode-instance</c> and <c>encode-panoptic</c> time one
/// result's encoding each.
/// </summary>
internal static class PostprocessCpuReport
{
    private static string[] s_tasks = ["semantic", "instance", "panoptic", "all", "all+encode"];

    public static async Task<int> RunAsync(string[] args)
    {
        var (models, sizes, rounds, runs) = (new[] { "tiny", "realistic" }, new[] { "512x512", "1920x1080" }, 5, 3);
        for (var i = 0; i < args.Length; i++)
        {
            switch (args[i])
            {
                case "--models": models = args[++i].Split(','); break;
                case "--sizes": sizes = args[++i].Split(','); break;
                case "--rounds": rounds = int.Parse(args[++i], CultureInfo.InvariantCulture); break;
                case "--runs": runs = int.Parse(args[++i], CultureInfo.InvariantCulture); break;
                case "--tasks": s_tasks = args[++i].Split(','); break;
                default: throw new ArgumentException($"unknown argument '{args[i]}'; usage: postproc [--models tiny,realistic] [--sizes 512x512,1920x1080] [--rounds N] [--runs N] [--tasks semantic,instance,panoptic,all,all+encode,encode,encode-semantic,encode-instance,encode-panoptic]");
            }
        }

        Console.WriteLine($"postproc: {Environment.ProcessorCount} cores, load average {MachineInfo.LoadAverage()}, {rounds} rounds of {runs} runs, {DateTimeOffset.UtcNow:yyyy-MM-dd HH:mm} UTC");
        Console.WriteLine("| model | size | model run CPU ms | task | CPU ms min | CPU ms median | wall ms median | ÷ model run | checksum |");
        Console.WriteLine("| --- | --- | ---: | --- | ---: | ---: | ---: | ---: | --- |");
        foreach (var model in models)
        {
            var (name, path) = model == "realistic"
                ? (BenchmarkInputs.Realistic, await BenchmarkInputs.EnsureRealisticAsync(Console.Out, CancellationToken.None))
                : (BenchmarkInputs.Tiny, RepositoryPaths.TinyShapes);
            var folder = ModelFolder.Read(path, name, null);
            using var session = new InferenceSession(folder.ModelPath);
            foreach (var size in sizes)
            {
                var parts = size.Split('x');
                var (width, height) = (int.Parse(parts[0], CultureInfo.InvariantCulture), int.Parse(parts[1], CultureInfo.InvariantCulture));
                MeasureCell(name, size, folder, session, BenchmarkInputs.Scaled(width, height), rounds, runs);
            }
        }

        Console.WriteLine($"load average after: {MachineInfo.LoadAverage()}");
        return 0;
    }

    private static void MeasureCell(string name, string size, ModelFolder folder, InferenceSession session, byte[] imageBytes, int rounds, int runs)
    {
        using var image = new ImageDecoder(Options.Create(new ImageDecoderOptions())).Decode(imageBytes);
        using var input = new ImagePreprocessor(folder.Preprocessor).Process(image);
        var plan = input.Plan;
        using var value = OrtValue.CreateTensorValueFromMemory(input.Tensor.ToArray(), [1, 3, plan.PaddedHeight, plan.PaddedWidth]);
        using var runOptions = new RunOptions();
        ModelOutput? output = null;
        var modelRuns = new List<double>();
        for (var i = 0; i < 3; i++)
        {
            modelRuns.Add(Cpu(() =>
            {
                using var results = session.Run(runOptions, ["pixel_values"], [value], ["class_queries_logits", "masks_queries_logits"]);
                output ??= PostprocessReport.CopyOutput(results);
            }, 1).Cpu);
        }

        using var modelOutput = output!;
        var modelCpu = modelRuns.Min();
        var labels = folder.Config.Labels;
        var checksums = new Dictionary<string, string>();
        // The checksum run hashes every result; the timed runs only compute them (hashing a 1080p
        // instance's mask pixels cost more than computing its runs).
        using var tiles = new MaskTiles(modelOutput, plan);
        var computed = s_tasks.Any(IsEncoding)
            ? Detectron2Tasks.Run(tiles, SegmentationTasks.Semantic | SegmentationTasks.Instance | SegmentationTasks.Panoptic, labels, true, false, PostprocessOptions.Detectron2)
            : default;
        using var computedSemantic = computed.Semantic;
        using var computedPanoptic = computed.Panoptic;
        using var computedInstances = new DisposableList(computed.Instances);
        Action Task(string task) => IsEncoding(task)
            ? () => EncodeTask(task, computed, labels, null)
            : () => RunTask(task, modelOutput, plan, labels, null);
        foreach (var task in s_tasks)
        {
            using var hash = IncrementalHash.CreateHash(HashAlgorithmName.SHA256);
            if (IsEncoding(task))
            {
                EncodeTask(task, computed, labels, hash);
            }
            else
            {
                RunTask(task, modelOutput, plan, labels, hash);
            }

            checksums[task] = Convert.ToHexString(hash.GetHashAndReset(), 0, 8);
        }

        // Steady state before the rounds: without it the first cells timed the JIT's unoptimised first
        // tier (the tiny model's 512x512 semantic at 10 ms a run of wall against 1.2 ms optimised); the server
        // itself runs fully optimised code from the start (TieredCompilation off).
        foreach (var task in s_tasks)
        {
            WarmUp(Task(task));
        }

        var cells = s_tasks.ToDictionary(t => t, _ => new List<(double Cpu, double Wall)>());
        for (var round = 0; round < rounds; round++)
        {
            foreach (var task in round % 2 == 0 ? s_tasks : s_tasks.Reverse())
            {
                cells[task].Add(Cpu(Task(task), runs));
            }
        }

        foreach (var task in s_tasks)
        {
            var cpu = cells[task].Select(c => c.Cpu).ToArray();
            Console.WriteLine(string.Create(CultureInfo.InvariantCulture, $"| {name} | {size} | {modelCpu:F1} | {task} | {cpu.Min():F2} | {Stats.Median(cpu):F2} | {Stats.Median(cells[task].Select(c => c.Wall)):F2} | {Stats.Median(cpu) / modelCpu:F3} | {checksums[task]} |"));
        }
    }

    private static bool IsEncoding(string task) => task == "encode" || task.StartsWith("encode-", StringComparison.Ordinal);

    // "encode" encodes all three results; "encode-semantic" and the like one of them.
    private static void EncodeTask(string task, (LabelMap? Semantic, IReadOnlyList<InstanceMask>? Instances, Engine.Postprocessing.PanopticResult? Panoptic) computed, IReadOnlyList<ModelLabel> labels, IncrementalHash? hash) =>
        Encode(
            task is "encode" or "encode-semantic" ? computed.Semantic : null,
            task is "encode" or "encode-instance" ? computed.Instances ?? [] : [],
            task is "encode" or "encode-panoptic" ? computed.Panoptic : null,
            labels,
            hash);

    private static void RunTask(string task, ModelOutput output, ResizePlan plan, IReadOnlyList<ModelLabel> labels, IncrementalHash? hash)
    {
        using var tiles = new MaskTiles(output, plan);
        if (task == "tiles")
        {
            hash?.AppendData(BitConverter.GetBytes(tiles.TileCount));
        }

        // The modes as the engine runs them: all three side by side for "all".
        var modes = task switch
        {
            "semantic" => SegmentationTasks.Semantic,
            "instance" => SegmentationTasks.Instance,
            "panoptic" => SegmentationTasks.Panoptic,
            "all" or "all+encode" => SegmentationTasks.Semantic | SegmentationTasks.Instance | SegmentationTasks.Panoptic,
            _ => SegmentationTasks.None,
        };
        var (semantic, instances, panoptic) = Detectron2Tasks.Run(tiles, modes, labels, true, false, PostprocessOptions.Detectron2);
        if (task == "all+encode")
        {
            Encode(semantic, instances ?? [], panoptic, labels, hash);
        }

        if (semantic is { } map)
        {
            using (map)
            {
                for (var y = 0; y < map.Height && hash is not null; y++)
                {
                    hash.AppendData(MemoryMarshal.AsBytes(map.Row(y)));
                }

            }
        }

        foreach (var instance in instances ?? [])
        {
            if (hash is not null)
            {
                hash.AppendData(Encoding.ASCII.GetBytes(string.Create(CultureInfo.InvariantCulture, $"{instance.LabelId} {instance.Score:R} {instance.Area} {instance.Box};")));
                hash.AppendData(instance.Mask.Pixels);
            }

            instance.Dispose();
        }

        if (panoptic is not null)
        {
            using (panoptic)
            {
                for (var y = 0; y < panoptic.SegmentIds.Height && hash is not null; y++)
                {
                    hash.AppendData(MemoryMarshal.AsBytes(panoptic.SegmentIds.Row(y)));
                }

                foreach (var segment in panoptic.Segments)
                {
                    hash?.AppendData(Encoding.ASCII.GetBytes(segment.ToString()));
                }

            }
        }
    }

    // What the server's response mapper encodes: the label map as an 8-bit PNG, the instances' COCO RLE
    // counts and compressed strings (its own code, on one thread), the panoptic ids as an RGB PNG.
    private static void Encode(LabelMap? semantic, IReadOnlyList<InstanceMask> instances, Engine.Postprocessing.PanopticResult? panoptic, IReadOnlyList<ModelLabel> labels, IncrementalHash? hash)
    {
        if (semantic is not null)
        {
            var png = LabelMapPngEncoder.EncodePng(semantic, 8);
            hash?.AppendData(png);
        }

        foreach (var instance in ResponseMapper.ToInstances(instances, labels, Contracts.V1.RleFormat.Unspecified, trackIds: null, parallel: false).Instances)
        {
            hash?.AppendData(Encoding.ASCII.GetBytes(instance.Mask.Compressed));
        }

        if (panoptic is not null)
        {
            var png = PanopticPngEncoder.Encode(panoptic.SegmentIds);
            hash?.AppendData(png);
        }
    }

    private sealed class DisposableList(IReadOnlyList<InstanceMask>? items) : IDisposable
    {
        public void Dispose()
        {
            foreach (var item in items ?? [])
            {
                item.Dispose();
            }
        }
    }

    // Runs `action` for at least 2 s and 40 times (at most 20 s): past the JIT's call-count threshold
    // and its delay, so the timed runs see the optimised tier.
    private static void WarmUp(Action action)
    {
        var clock = Stopwatch.StartNew();
        for (var i = 0; (i < 40 || clock.Elapsed < TimeSpan.FromSeconds(2)) && clock.Elapsed < TimeSpan.FromSeconds(20); i++)
        {
            action();
        }
    }

    private static (double Cpu, double Wall) Cpu(Action action, int runs)
    {
        using var process = Process.GetCurrentProcess();
        process.Refresh();
        var before = process.TotalProcessorTime;
        var clock = Stopwatch.StartNew();
        for (var i = 0; i < runs; i++)
        {
            action();
        }

        process.Refresh();
        return ((process.TotalProcessorTime - before).TotalMilliseconds / runs, clock.Elapsed.TotalMilliseconds / runs);
    }
}
