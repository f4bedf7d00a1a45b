using System.Diagnostics;
using MaskFormer.Engine;
using MaskFormer.Engine.Decoding;
using MaskFormer.Engine.Models;
using MaskFormer.Engine.Sessions;
using Microsoft.Extensions.Logging.Abstractions;
using Microsoft.Extensions.Options;
using Microsoft.ML.OnnxRuntime;

namespace MaskFormer.Benchmarks;

/// <summary>
/// Engine throughput at max batch 1, 2, 4, 8 under concurrent callers, side by side in one run with
/// raw ONNX Runtime running the same model on the same tensors at the same batch size (the yardstick),
/// and the post-processing time per image beside the model's own inference time.
/// </summary>
internal static class ThroughputReport
{
    public static async Task<int> RunAsync(string[] args)
    {
        var requests = args.Length > 0 ? int.Parse(args[0], System.Globalization.CultureInfo.InvariantCulture) : 256;
        var intraOpThreads = args.Length > 1 ? int.Parse(args[1], System.Globalization.CultureInfo.InvariantCulture) : 0;
        const int Concurrency = 16;
        var imageBytes = await File.ReadAllBytesAsync(Path.Combine(RepositoryPaths.HeldOut, "0000.png"));
        var folder = ModelFolder.Read(RepositoryPaths.TinyShapes, "tiny-shapes", null);
        Console.WriteLine($"model tiny-shapes, image 0000.png, {requests} requests per row, {Concurrency} concurrent callers, {Environment.ProcessorCount} cores, 1 CPU session, intra-op threads {(intraOpThreads == 0 ? "auto" : intraOpThreads)}");
        Console.WriteLine();
        Console.WriteLine("| max batch | raw ORT img/s | engine img/s | engine / raw | mean batch | inference ms/img | post-process ms/img (semantic) |");
        Console.WriteLine("| ---: | ---: | ---: | ---: | ---: | ---: | ---: |");

        foreach (var maxBatch in new[] { 1, 2, 4, 8 })
        {
            var raw = RawOrtImagesPerSecond(folder, imageBytes, maxBatch, requests, intraOpThreads);
            var (engineRate, meanBatch, inferencePerImage, postprocess) = await EngineImagesPerSecondAsync(imageBytes, maxBatch, requests, Concurrency, intraOpThreads);
            Console.WriteLine($"| {maxBatch} | {raw:F1} | {engineRate:F1} | {engineRate / raw:F2} | {meanBatch:F2} | {inferencePerImage:F2} | {postprocess:F2} |");
        }

        Console.WriteLine();
        PostprocessReport.Run(folder, imageBytes);
        return 0;
    }

    private static double RawOrtImagesPerSecond(ModelFolder folder, byte[] imageBytes, int batch, int requests, int intraOpThreads)
    {
        using var image = new ImageDecoder(Options.Create(new ImageDecoderOptions())).Decode(imageBytes);
        using var input = new MaskFormer.Engine.Preprocessing.ImagePreprocessor(folder.Preprocessor).Process(image);
        var tensor = new float[input.Length * batch];
        for (var i = 0; i < batch; i++)
        {
            input.Tensor.CopyTo(tensor.AsSpan(i * input.Length));
        }

        using var options = new SessionOptions { IntraOpNumThreads = intraOpThreads > 0 ? intraOpThreads : Environment.ProcessorCount, InterOpNumThreads = 1, GraphOptimizationLevel = GraphOptimizationLevel.ORT_ENABLE_ALL };
        using var session = new InferenceSession(folder.ModelPath, options);
        using var value = OrtValue.CreateTensorValueFromMemory(tensor, [batch, 3, input.Plan.PaddedHeight, input.Plan.PaddedWidth]);
        using var runOptions = new RunOptions();
        string[] inputs = ["pixel_values"];
        string[] outputs = ["class_queries_logits", "masks_queries_logits"];
        for (var i = 0; i < 5; i++)
        {
            using var warm = session.Run(runOptions, inputs, [value], outputs);
        }

        var runs = Math.Max(1, requests / batch);
        var clock = Stopwatch.StartNew();
        for (var i = 0; i < runs; i++)
        {
            using var results = session.Run(runOptions, inputs, [value], outputs);
        }

        return runs * batch / clock.Elapsed.TotalSeconds;
    }

    private static async Task<(double Rate, double MeanBatch, double InferencePerImage, double Postprocess)> EngineImagesPerSecondAsync(byte[] imageBytes, int maxBatch, int requests, int concurrency, int intraOpThreads)
    {
        await using var engine = new SegmentationEngine(
            Options.Create(new ModelRepositoryOptions { Path = RepositoryPaths.Models }),
            Options.Create(new InferenceOptions { MaxBatchSize = maxBatch, MaxQueueDelay = TimeSpan.FromMilliseconds(2), MaxQueueSize = 1024, IntraOpThreads = intraOpThreads }),
            new ImageDecoder(Options.Create(new ImageDecoderOptions())),
            TimeProvider.System,
            NullLogger<SegmentationEngine>.Instance);
        engine.Load();
        await engine.WarmUpAsync(CancellationToken.None);

        var remaining = requests;
        var batchSum = 0.0;
        var inferenceSum = 0.0;
        var postprocessSum = 0.0;
        var sync = new Lock();
        var source = ImageSource.Encoded(imageBytes);
        var clock = Stopwatch.StartNew();
        await Task.WhenAll(Enumerable.Range(0, concurrency).Select(_ => Task.Run(async () =>
        {
            while (Interlocked.Decrement(ref remaining) >= 0)
            {
                using var result = await engine.SegmentAsync(new SegmentationRequest { Image = source }, CancellationToken.None);
                lock (sync)
                {
                    batchSum += result.Timings.BatchSize;
                    inferenceSum += result.Timings.Inference.TotalMilliseconds / result.Timings.BatchSize;
                    postprocessSum += result.Timings.Postprocess.TotalMilliseconds;
                }
            }
        })));
        var elapsed = clock.Elapsed.TotalSeconds;
        return (requests / elapsed, batchSum / requests, inferenceSum / requests, postprocessSum / requests);
    }
}
