using System.Diagnostics;
using MaskFormer.Engine.Decoding;
using MaskFormer.Engine.Models;
using MaskFormer.Engine.Preprocessing;
using MaskFormer.Engine.Sessions;
using Microsoft.Extensions.Options;
using Microsoft.ML.OnnxRuntime;

namespace MaskFormer.Benchmarks.Report;

/// <summary>
/// The yardstick: ONNX Runtime alone, one caller running the model back to back on a pre-built tensor,
/// with the session options the service builds (threads, spinning, graph optimisation).
/// </summary>
internal static class RawOrtRunner
{
    public static CellResult Measure(string modelName, ModelFolder folder, byte[] imageBytes, InferenceOptions options, int threads, int batch, TimeSpan duration, int round)
    {
        var wall = Stopwatch.StartNew();
        using var image = new ImageDecoder(Options.Create(new ImageDecoderOptions())).Decode(imageBytes);
        using var input = new ImagePreprocessor(folder.Preprocessor).Process(image);
        var tensor = new float[input.Length * batch];
        for (var i = 0; i < batch; i++)
        {
            input.Tensor.CopyTo(tensor.AsSpan(i * input.Length));
        }

        using var sessionOptions = SessionFactory.CreateCpuOptions(options, threads, "raw");
        using var session = new InferenceSession(folder.ModelPath, sessionOptions);
        using var value = OrtValue.CreateTensorValueFromMemory(tensor, [batch, 3, input.Plan.PaddedHeight, input.Plan.PaddedWidth]);
        using var runOptions = new RunOptions();
        string[] inputs = [ModelSession.InputName];
        string[] outputs = [ModelSession.ClassOutputName, ModelSession.MaskOutputName];
        // Two runs warm up (the first plans memory); at least two are measured, for a slow model's sake.
        for (var i = 0; i < 2; i++)
        {
            using var warm = session.Run(runOptions, inputs, [value], outputs);
        }

        using var process = Process.GetCurrentProcess();
        var cpuBefore = process.TotalProcessorTime;
        var clock = Stopwatch.StartNew();
        var runs = 0;
        var latencies = new List<double>();
        while (clock.Elapsed < duration || runs < 2)
        {
            var started = Stopwatch.GetTimestamp();
            using var results = session.Run(runOptions, inputs, [value], outputs);
            latencies.Add(Stopwatch.GetElapsedTime(started).TotalMilliseconds);
            runs++;
        }

        var seconds = clock.Elapsed.TotalSeconds;
        process.Refresh();
        var cpu = (process.TotalProcessorTime - cpuBefore).TotalMilliseconds;
        return new CellResult
        {
            Model = modelName,
            Scenario = "raw-ort",
            Tasks = "-",
            Concurrency = batch,
            Round = round,
            Images = runs * batch,
            Seconds = seconds,
            WallSeconds = wall.Elapsed.TotalSeconds,
            CpuMsPerImage = cpu / (runs * batch),
            LatencyP50Ms = Stats.Median(latencies),
            LatencyP95Ms = Stats.Quantile(latencies, 0.95),
            InferenceMsPerImage = Stats.Median(latencies) / batch,
            MeanBatch = batch,
        };
    }
}
