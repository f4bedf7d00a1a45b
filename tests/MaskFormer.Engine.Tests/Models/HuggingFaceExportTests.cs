using System.Diagnostics;
using System.Text.Json;
using MaskFormer.Engine.Decoding;
using MaskFormer.Engine.Models;
using MaskFormer.Engine.Preprocessing;
using MaskFormer.Engine.Sessions;
using MaskFormer.Engine.Tests.Postprocessing;
using Microsoft.Extensions.Logging.Abstractions;
using Microsoft.Extensions.Options;

namespace MaskFormer.Engine.Tests.Models;

/// <summary>
/// The export recipe (tools/model-zoo/export_hf.py): a PyTorch MaskFormer written as an HF export
/// (transformers' config keys only, MaskFormerImageProcessor's preprocessor config, onnx/model.onnx,
/// the thing/stuff sidecar) loads unchanged, and the service's pre-processing and outputs equal
/// PyTorch's on the image pre-processed as MaskFormerImageProcessor does.
/// </summary>
public sealed class HuggingFaceExportTests : IDisposable
{
    private readonly DirectoryInfo _folder = Directory.CreateTempSubdirectory("maskformer-export-");

    [Fact]
    public void ExportRecipe_PyTorchModel_LoadsUnchangedAndMatchesPyTorch()
    {
        var image = Path.Combine(RepositoryPaths.HeldOut, "0000.png");
        RunExport("--out", _folder.FullName, "--seed", "3", "--check", image);

        var folder = ModelFolder.Read(_folder.FullName, "hf-export", null);
        Assert.Equal(Path.Combine("onnx", "model.onnx"), folder.ModelFile);
        Assert.Equal(PanopticCategories.FileName, folder.Config.ThingSource);
        Assert.Equal(ResizeMethod.Pil, folder.Preprocessor.ResizeMethod);
        Assert.Equal(SizeDivisorRule.Resize, folder.Preprocessor.SizeDivisorRule);

        var shapes = JsonDocument.Parse(File.ReadAllText(Path.Combine(_folder.FullName, "check.json"))).RootElement;
        using var decoded = new ImageDecoder(Options.Create(new ImageDecoderOptions())).Decode(File.ReadAllBytes(image));
        using var input = new ImagePreprocessor(folder.Preprocessor).Process(decoded);
        Assert.Equal(Shape(shapes, "pixel_values"), new[] { 1, 3, input.Plan.PaddedHeight, input.Plan.PaddedWidth });
        CommittedModelTests.AssertClose(ReadFloats("check.pixel_values.f32"), input.Tensor, 1e-4, "pixel_values");

        using var session = new SessionFactory(new InferenceOptions(), NullLogger.Instance).Create(folder.ModelPath, DeviceSpec.Cpu, 2);
        using var output = session.Run([input])[0];
        Assert.Equal(Shape(shapes, "class_logits"), new[] { 1, output.Queries, output.ClassesWithNoObject });
        Assert.Equal(Shape(shapes, "mask_logits"), new[] { 1, output.Queries, output.MaskHeight, output.MaskWidth });
        CommittedModelTests.AssertClose(ReadFloats("check.class_logits.f32"), output.ClassLogits, 2e-3, "class_queries_logits");
        CommittedModelTests.AssertClose(ReadFloats("check.mask_logits.f32"), output.MaskLogits, 2e-3, "masks_queries_logits");
    }

    public void Dispose() => _folder.Delete(recursive: true);

    private static int[] Shape(JsonElement shapes, string name) => [.. shapes.GetProperty(name).EnumerateArray().Select(e => e.GetInt32())];

    private float[] ReadFloats(string file)
    {
        var bytes = File.ReadAllBytes(Path.Combine(_folder.FullName, file));
        var floats = new float[bytes.Length / 4];
        Buffer.BlockCopy(bytes, 0, floats, 0, bytes.Length);
        return floats;
    }


    private static void RunExport(params string[] arguments)
    {
        var start = new ProcessStartInfo("/usr/bin/python3", [Path.Combine(RepositoryPaths.Root, "tools", "model-zoo", "export_hf.py"), .. arguments])
        {
            RedirectStandardError = true,
            RedirectStandardOutput = true,
        };
        using var process = Process.Start(start)!;
        var errors = process.StandardError.ReadToEndAsync();
        process.StandardOutput.ReadToEnd();
        process.WaitForExit();
        Assert.True(process.ExitCode == 0, $"export_hf.py failed (python3-torch, python3-onnx and python3-pil are installed by tools/install-test-deps.sh): {errors.Result}");
    }
}
