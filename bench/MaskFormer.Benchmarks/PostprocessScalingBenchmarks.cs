using BenchmarkDotNet.Attributes;
using BenchmarkDotNet.Configs;
using BenchmarkDotNet.Jobs;
using BenchmarkDotNet.Toolchains.InProcess.Emit;
using MaskFormer.Engine.Decoding;
using MaskFormer.Engine.Encoding;
using MaskFormer.Engine.Models;
using MaskFormer.Engine.Postprocessing;
using MaskFormer.Engine.Preprocessing;
using MaskFormer.Engine.Sessions;
using Microsoft.Extensions.Options;
using Microsoft.ML.OnnxRuntime;
using SixLabors.ImageSharp;
using SixLabors.ImageSharp.PixelFormats;
using SixLabors.ImageSharp.Processing;

namespace MaskFormer.Benchmarks;

/// <summary>
/// Post-processing (and encoding) cost against image size on the committed model's real logits: the
/// held-out image 0000 scaled to 512×512 and to 1920×1080, the same scene, so the 1080p ÷ 512² ratio
/// shows whether cost grows with the area (7.9×) or with the boundaries.
/// <c>dotnet run -c Release --project bench/MaskFormer.Benchmarks -- --filter '*PostprocessScaling*'</c>
/// </summary>
[MemoryDiagnoser]
[Config(typeof(ShortInProcessConfig))]
public class PostprocessScalingBenchmarks
{
    private ModelFolder _folder = null!;
    private ModelOutput Output { get; set; } = null!;
    private ResizePlan _plan;

    [Params("512x512", "1920x1080")]
    public string Size { get; set; } = "512x512";

    [GlobalSetup]
    public void Setup()
    {
        _folder = ModelFolder.Read(RepositoryPaths.TinyShapes, "tiny-shapes", null);
        var (width, height) = Size == "512x512" ? (512, 512) : (1920, 1080);
        using var source = SixLabors.ImageSharp.Image.Load<Rgb24>(Path.Combine(RepositoryPaths.HeldOut, "0000.png"));
        source.Mutate(x => x.Resize(width, height, KnownResamplers.Triangle));
        using var png = new MemoryStream();
        source.SaveAsPng(png);
        using var image = new ImageDecoder(Options.Create(new ImageDecoderOptions())).Decode(png.ToArray());
        using var input = new ImagePreprocessor(_folder.Preprocessor).Process(image);
        _plan = input.Plan;
        using var session = new InferenceSession(_folder.ModelPath);
        using var value = OrtValue.CreateTensorValueFromMemory(input.Tensor.ToArray(), [1, 3, _plan.PaddedHeight, _plan.PaddedWidth]);
        using var runOptions = new RunOptions();
        using var results = session.Run(runOptions, ["pixel_values"], [value], ["class_queries_logits", "masks_queries_logits"]);
        var classShape = results[0].GetTensorTypeAndShape().Shape;
        var maskShape = results[1].GetTensorTypeAndShape().Shape;
        Output = new ModelOutput((int)classShape[1], (int)classShape[2], (int)maskShape[2], (int)maskShape[3]);
        results[0].GetTensorDataAsSpan<float>().CopyTo(Output.ClassLogits);
        results[1].GetTensorDataAsSpan<float>().CopyTo(Output.MaskLogits);
    }

    [GlobalCleanup]
    public void Cleanup() => Output.Dispose();

    [Benchmark]
    public void Semantic() => SemanticInference.Run(Output, _plan).Dispose();

    [Benchmark]
    public void Instance() => DisposeAll(InstanceInference.Run(Output, _plan, _folder.Config.Labels, true, PostprocessOptions.Detectron2));

    [Benchmark]
    public void Panoptic() => PanopticInference.Run(Output, _plan, _folder.Config.Labels, false, PostprocessOptions.Detectron2).Dispose();

    /// <summary>All three modes and their encodings, as the engine runs a request for every task: one shared pass of mask bounds.</summary>
    [Benchmark]
    public int AllTasksEncoded()
    {
        var bytes = 0;
        using var tiles = new MaskTiles(Output, _plan);
        using (var labels = SemanticInference.Run(tiles))
        {
            bytes += LabelMapPngEncoder.EncodePng(labels, 8).Length;
        }

        var instances = InstanceInference.Run(tiles, _folder.Config.Labels, true, PostprocessOptions.Detectron2);
        foreach (var instance in instances)
        {
            bytes += CocoRle.Compress(CocoRle.Encode(instance)).Length;
        }

        DisposeAll(instances);
        using var panoptic = PanopticInference.Run(tiles, _folder.Config.Labels, false, PostprocessOptions.Detectron2);
        return bytes + PanopticPngEncoder.Encode(panoptic.SegmentIds).Length;
    }

    private static void DisposeAll(IReadOnlyList<InstanceMask> instances)
    {
        foreach (var instance in instances)
        {
            instance.Dispose();
        }
    }

    // Short runs in this process: the report is a side-by-side ratio, not a precise absolute figure.
    private sealed class ShortInProcessConfig : ManualConfig
    {
        public ShortInProcessConfig()
        {
            AddJob(Job.ShortRun.WithToolchain(InProcessEmitToolchain.Instance));
        }
    }
}
