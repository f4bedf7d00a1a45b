using System.Diagnostics;
using MaskFormer.Engine.Decoding;
using MaskFormer.Engine.Models;
using MaskFormer.Engine.Preprocessing;
using MaskFormer.Engine.Sessions;
using Microsoft.Extensions.Options;
using Microsoft.ML.OnnxRuntime;

namespace MaskFormer.Benchmarks.Report;

/// <summary>
/// The yardstick: ONNX Runtime alone, running the model back to back on a pre-built tensor, with the
/// session options the service builds (threads, spinning, graph optimisation): one caller per session,
/// as many sessions as the service has CPU sessions, so the two compare like with like.
/// </summary>
internal static class RawOrtRunner
{
    public static CellResult Measure(string modelName, ModelFolder folder, byte[] imageBytes, InferenceOptions options, RawLayout layout, int batch, TimeSpan duration, int round)
    {
        var wall = Stopwatch.StartNew();
        using var image = new ImageDecoder(Options.Create(new ImageDecoderOptions())).Decode(imageBytes);
        using var input = new ImagePreprocessor(folder.Preprocessor).Process(image);
        var tensor = new float[input.Length * batch];
        for (var i = 0; i < batch; i++)
        {
            input.Tensor.CopyTo(tensor.AsSpan(i * input.Length));
        }

        var sessions = new InferenceSession[layout.Sessions];
        try
        {
            for (var s = 0; s < sessions.Length; s++)
            {
                try
                {
                    using var sessionOptions = SessionFactory.CreateOptions(options, layout.Device, layout.Threads, "raw");
                    sessions[s] = new InferenceSession(folder.ModelPath, sessionOptions);
                }
                catch (Exception ex) when (layout.Device.IsCuda && SessionFactory.IsCudaLoadFailure(ex))
                {
                    // The service may fall back to the CPU; its yardstick must not, or the ratio compares two devices.
                    throw new InvalidOperationException($"raw ONNX Runtime cannot use {layout.Device}: {SessionFactory.CudaLoadFailureReason(ex)} (the report runs raw ONNX Runtime on the service's GPU; run it where that GPU works)", ex);
                }
            }

            string[] inputs = [ModelSession.InputName];
            string[] outputs = [ModelSession.ClassOutputName, ModelSession.MaskOutputName];
            long[] shape = [batch, 3, input.Plan.PaddedHeight, input.Plan.PaddedWidth];

            // Two runs per session warm up (the first plans memory); at least two are measured, for a slow model's sake.
            Parallel.For(0, sessions.Length, new ParallelOptions { MaxDegreeOfParallelism = sessions.Length }, s =>
            {
                using var value = OrtValue.CreateTensorValueFromMemory(tensor, shape);
                using var runOptions = new RunOptions();
                for (var i = 0; i < 2; i++)
                {
                    using var warm = sessions[s].Run(runOptions, inputs, [value], outputs);
                }
            });

            using var process = Process.GetCurrentProcess();
            var cpuBefore = process.TotalProcessorTime;
            var clock = Stopwatch.StartNew();
            var latencies = new List<double>[sessions.Length];
            var callers = new Thread[sessions.Length];
            for (var s = 0; s < sessions.Length; s++)
            {
                var session = sessions[s];
                var own = latencies[s] = [];

                // A dedicated thread per caller, as the service's session workers are.
                callers[s] = new Thread(() =>
                {
                    using var value = OrtValue.CreateTensorValueFromMemory(tensor, shape);
                    using var runOptions = new RunOptions();
                    while (clock.Elapsed < duration || own.Count < 2)
                    {
                        var started = Stopwatch.GetTimestamp();
                        using var results = session.Run(runOptions, inputs, [value], outputs);
                        own.Add(Stopwatch.GetElapsedTime(started).TotalMilliseconds);
                    }
                });
                callers[s].Start();
            }

            foreach (var caller in callers)
            {
                caller.Join();
            }

            var seconds = clock.Elapsed.TotalSeconds;
            process.Refresh();
            var cpu = (process.TotalProcessorTime - cpuBefore).TotalMilliseconds;
            var all = latencies.SelectMany(l => l).ToList();
            var runs = all.Count;
            return new CellResult
            {
                Model = modelName,
                Scenario = layout.Scenario,
                Tasks = "-",
                Concurrency = batch,
                Round = round,
                Images = runs * batch,
                Seconds = seconds,
                WallSeconds = wall.Elapsed.TotalSeconds,
                CpuMsPerImage = cpu / (runs * batch),
                LatencyP50Ms = Stats.Median(all),
                LatencyP95Ms = Stats.Quantile(all, 0.95),
                InferenceMsPerImage = Stats.Median(all) / batch,
                MeanBatch = batch,
                Sessions = layout.Sessions,
                Threads = layout.Threads,
            };
        }
        finally
        {
            foreach (var session in sessions)
            {
                session?.Dispose();
            }
        }
    }
}

/// <summary>How raw ONNX Runtime spreads over the device: sessions, each with its caller, and intra-op threads per session.</summary>
internal readonly record struct RawLayout(int Sessions, int Threads, string Scenario, DeviceSpec Device = default)
{
    /// <summary>The scenario of the raw cells laid out as the service is (the targets' yardstick).</summary>
    public const string AsService = "raw-ort";

    /// <summary>The scenario of the raw cells with a one-thread session per core (shown beside the yardstick).</summary>
    public const string SessionPerCore = "raw-ort-per-core";

    /// <summary>
    /// The service's layout: its CPU sessions and the intra-op threads it gives each (cores / sessions when
    /// automatic); where every configured device is the same GPU, its CUDA sessions, one intra-op thread
    /// each, as SegmentationEngine gives them (several GPUs are refused). A mix of CPU and GPU has no one
    /// raw counterpart: its CPU sessions are measured.
    /// </summary>
    public static RawLayout ForService(InferenceOptions options)
    {
        var devices = options.Devices.Count > 0 ? options.Devices : [new DeviceOptions()];
        var parsed = devices.Select(d => (Spec: DeviceSpec.TryParse(d.Name, out var spec) ? spec : DeviceSpec.Cpu, d.Sessions)).ToArray();
        if (parsed.All(d => d.Spec.IsCuda))
        {
            if (parsed.Select(d => d.Spec).Distinct().Count() > 1)
            {
                // The service would spread over every GPU and the yardstick run on one: the ratio would compare N GPUs with one.
                throw new ArgumentException("the report's raw ONNX Runtime runs on one GPU; configure one CUDA device for it (the service's sessions on several GPUs have no one raw counterpart).");
            }

            return new RawLayout(Math.Max(1, parsed.Sum(d => d.Sessions)), 1, AsService, parsed[0].Spec);
        }

        // As SegmentationEngine counts them for one model: CUDA devices that fall back are not counted here.
        var sessions = Math.Max(1, parsed.Where(d => !d.Spec.IsCuda).Sum(d => d.Sessions));
        var threads = options.IntraOpThreads > 0 ? options.IntraOpThreads : Math.Max(1, Environment.ProcessorCount / sessions);
        return new RawLayout(sessions, threads, AsService);
    }

    /// <summary>A one-thread session per core, each with its own caller.</summary>
    public static RawLayout PerCore => new(Environment.ProcessorCount, 1, SessionPerCore);
}
