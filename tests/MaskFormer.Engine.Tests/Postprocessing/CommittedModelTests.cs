using System.Runtime.InteropServices;
using MaskFormer.Engine.Decoding;
using MaskFormer.Engine.Models;
using MaskFormer.Engine.Postprocessing;
using MaskFormer.Engine.Preprocessing;
using MaskFormer.Engine.Sessions;
using MaskFormer.Engine.Tests.Reference;
using Microsoft.Extensions.Logging.Abstractions;
using Microsoft.Extensions.Options;
using SixLabors.ImageSharp;
using SixLabors.ImageSharp.PixelFormats;

namespace MaskFormer.Engine.Tests.Postprocessing;

/// <summary>
/// The committed model's real outputs on the held-out images: pre-processing and logits against
/// PyTorch's, and all three fast inference modes against the float64 references.
/// </summary>
public sealed class CommittedModelTests : IDisposable
{
    private readonly ModelFolder _folder = ModelFolder.Read(RepositoryPaths.TinyShapes, "tiny-shapes", null);
    private readonly ModelSession _session;
    private readonly ImageDecoder _decoder = new(Options.Create(new ImageDecoderOptions()));

    public CommittedModelTests()
    {
        _session = new SessionFactory(new InferenceOptions(), NullLogger.Instance).Create(_folder.ModelPath, DeviceSpec.Cpu, 2);
    }

    public static TheoryData<string> ReferenceImages => ["0000", "0001"];

    [Theory]
    [MemberData(nameof(ReferenceImages))]
    public void PreprocessAndRun_ReferenceImage_MatchesPyTorchTensors(string name)
    {
        using var image = _decoder.Decode(File.ReadAllBytes(Path.Combine(RepositoryPaths.HeldOut, $"{name}.png")));
        using var input = new ImagePreprocessor(_folder.Preprocessor).Process(image);
        var outputs = _session.Run([input]);
        using var output = outputs[0];

        AssertClose(ReadFloats($"{name}.pixel_values.f32"), input.Tensor, 1e-4, "pixel_values");
        AssertClose(ReadFloats($"{name}.class_logits.f32"), output.ClassLogits, 2e-3, "class_queries_logits");
        AssertClose(ReadFloats($"{name}.mask_logits.f32"), output.MaskLogits, 2e-3, "masks_queries_logits");
    }

    [Fact]
    public void AllModes_HeldOutImages_MatchFloat64ReferencesAndPyTorchPanoptic()
    {
        var labels = _folder.Config.Labels;
        bool[] isThing = [.. labels.Select(l => l.IsThing)];
        var (compared, skipped, segments, instances) = (0, 0, 0, 0);
        foreach (var file in Directory.GetFiles(RepositoryPaths.HeldOut, "????.png").Order(StringComparer.Ordinal))
        {
            using var image = _decoder.Decode(File.ReadAllBytes(file));
            using var input = new ImagePreprocessor(_folder.Preprocessor).Process(image);
            var outputs = _session.Run([input]);
            using var output = outputs[0];
            var plan = input.Plan;

            using var semantic = SemanticInference.Run(output, plan);
            var (expectedLabels, margins) = ReferenceSemantic.Run(output, plan);
            for (var i = 0; i < expectedLabels.Length; i++)
            {
                Assert.True(margins[i] <= 1e-5 || expectedLabels[i] == semantic.Values[i], $"{file}: semantic pixel {i}");
            }

            using var panoptic = PanopticInference.Run(output, plan, labels, false, PostprocessOptions.Detectron2);
            var expectedPanoptic = ReferencePanoptic.Run(output, plan, isThing, false, 0.8, 0.8);
            var pyTorchPanoptic = ReadPanopticPng(Path.ChangeExtension(file, null) + "_pred_panoptic.png");
            var agreeing = pyTorchPanoptic.Zip(panoptic.SegmentIds.Values.ToArray()).Count(p => p.First == p.Second);
            Assert.True(agreeing >= pyTorchPanoptic.Length * 0.995, $"{file}: {agreeing} of {pyTorchPanoptic.Length} panoptic pixels agree with PyTorch");

            var instanceOptions = PostprocessOptions.Detectron2;
            var fastInstances = InstanceInference.Run(output, plan, labels, thingsOnly: true, instanceOptions);
            var expectedInstances = ReferenceInstance.Run(output, plan, isThing, true, instanceOptions.InstanceTopK, instanceOptions.InstanceScoreThreshold);
            try
            {
                if (expectedPanoptic.Ambiguity is not null || expectedInstances.Ambiguity is not null)
                {
                    skipped++;
                    continue;
                }

                Assert.Equal(expectedPanoptic.SegmentIds, panoptic.SegmentIds.Values.ToArray().Select(v => (int)v));
                Assert.Equal(
                    expectedPanoptic.Segments.Select(s => (s.Id, s.CategoryId, s.IsThing, s.Area, new PixelBox(s.X, s.Y, s.Width, s.Height))),
                    panoptic.Segments.Select(s => (s.Id, s.CategoryId, s.IsThing, s.Area, s.Box)));
                Assert.Equal(expectedInstances.Instances.Count, fastInstances.Count);
                for (var i = 0; i < fastInstances.Count; i++)
                {
                    var (want, got) = (expectedInstances.Instances[i], fastInstances[i]);
                    Assert.Equal((want.Label, want.Area, new PixelBox(want.X, want.Y, want.Width, want.Height)), (got.LabelId, got.Area, got.Box));
                    Assert.True(Math.Abs(want.Score - got.Score) < 1e-4, $"{file}: instance {i} score {got.Score}, expected {want.Score}");
                    Assert.Equal(want.Mask.Select(b => b ? (byte)1 : (byte)0), got.Mask.Pixels.ToArray());
                }

                compared++;
                segments += panoptic.Segments.Count;
                instances += fastInstances.Count;
            }
            finally
            {
                foreach (var instance in fastInstances)
                {
                    instance.Dispose();
                }
            }
        }

        Assert.True(compared >= 15, $"only {compared} images compared exactly ({skipped} had near-ties)");
        Assert.True(segments > compared && instances > compared, $"too little to compare: {segments} segments, {instances} instances");
    }

    public void Dispose() => _session.Dispose();

    private static float[] ReadFloats(string file) =>
        MemoryMarshal.Cast<byte, float>(File.ReadAllBytes(Path.Combine(RepositoryPaths.HeldOut, file))).ToArray();

    private static int[] ReadPanopticPng(string path)
    {
        using var png = SixLabors.ImageSharp.Image.Load<Rgb24>(path);
        var ids = new int[png.Width * png.Height];
        for (var y = 0; y < png.Height; y++)
        {
            for (var x = 0; x < png.Width; x++)
            {
                var p = png[x, y];
                ids[(y * png.Width) + x] = p.R + (256 * p.G) + (65536 * p.B);
            }
        }

        return ids;
    }

    internal static void AssertClose(float[] expected, ReadOnlySpan<float> actual, double tolerance, string what)
    {
        Assert.Equal(expected.Length, actual.Length);
        var worst = 0.0;
        for (var i = 0; i < expected.Length; i++)
        {
            worst = Math.Max(worst, Math.Abs(expected[i] - actual[i]));
        }

        Assert.True(worst <= tolerance, $"{what}: largest difference from PyTorch {worst:E2} exceeds {tolerance:E0}");
    }
}
