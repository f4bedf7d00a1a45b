using BenchmarkDotNet.Attributes;
using MaskFormer.Engine.Decoding;
using MaskFormer.Engine.Encoding;
using MaskFormer.Engine.Models;
using MaskFormer.Engine.Postprocessing;
using MaskFormer.Engine.Preprocessing;
using MaskFormer.Engine.Sessions;
using Microsoft.Extensions.Options;

namespace MaskFormer.Benchmarks;

/// <summary>Shared inputs: a held-out image, its model input, and random model outputs of the real shapes.</summary>
public abstract class StageBenchmarkBase
{
    private protected ModelFolder Folder { get; private set; } = null!;

    private protected RgbImage Image { get; private set; } = null!;

    private protected ImagePreprocessor Preprocessor { get; private set; } = null!;

    private protected ResizePlan Plan { get; private set; }

    private protected ModelOutput Output { get; private set; } = null!;

    [GlobalSetup]
    public void Setup()
    {
        Folder = ModelFolder.Read(RepositoryPaths.TinyShapes, "tiny-shapes", null);
        Image = new ImageDecoder(Options.Create(new ImageDecoderOptions())).Decode(File.ReadAllBytes(Path.Combine(RepositoryPaths.HeldOut, "0000.png")));
        Preprocessor = new ImagePreprocessor(Folder.Preprocessor);
        Plan = Preprocessor.Plan(Image.Height, Image.Width);
        var random = new Random(1);
        Output = new ModelOutput(16, Folder.Config.Labels.Count + 1, Plan.PaddedHeight / 4, Plan.PaddedWidth / 4);
        for (var i = 0; i < Output.ClassLogits.Length; i++)
        {
            Output.ClassLogits[i] = (float)(random.NextDouble() * 8) - 2;
        }

        for (var i = 0; i < Output.MaskLogits.Length; i++)
        {
            Output.MaskLogits[i] = (float)(random.NextDouble() * 12) - 6;
        }
    }

    [GlobalCleanup]
    public void Cleanup()
    {
        Image.Dispose();
        Output.Dispose();
    }
}

[MemoryDiagnoser]
public class PreprocessBenchmarks : StageBenchmarkBase
{
    [Benchmark]
    public void Preprocess() => Preprocessor.Process(Image).Dispose();
}

[MemoryDiagnoser]
public class PostprocessBenchmarks : StageBenchmarkBase
{
    [Benchmark]
    public void Semantic() => SemanticInference.Run(Output, Plan).Dispose();

    [Benchmark]
    public void Panoptic() => PanopticInference.Run(Output, Plan, Folder.Config.Labels, false, PostprocessOptions.Detectron2 with { ObjectMaskThreshold = 0.3f }).Dispose();

    [Benchmark]
    public void Instance()
    {
        foreach (var instance in InstanceInference.Run(Output, Plan, Folder.Config.Labels, true, PostprocessOptions.Detectron2))
        {
            instance.Dispose();
        }
    }
}

[MemoryDiagnoser]
public class EncodeBenchmarks : StageBenchmarkBase
{
    private LabelMap _labels = null!;

    [GlobalSetup(Target = nameof(LabelMapPng))]
    public void SetupLabels()
    {
        Setup();
        _labels = SemanticInference.Run(Output, Plan);
    }

    [Benchmark]
    public byte[] LabelMapPng() => LabelMapPngEncoder.EncodePng(_labels, 8);
}
