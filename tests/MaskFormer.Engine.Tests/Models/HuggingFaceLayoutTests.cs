using System.Diagnostics;
using System.Text.Json;
using System.Text.Json.Nodes;
using MaskFormer.Engine.Decoding;
using MaskFormer.Engine.Models;
using MaskFormer.Engine.Postprocessing;
using MaskFormer.Engine.Sessions;
using Microsoft.Extensions.Logging;
using Microsoft.Extensions.Logging.Abstractions;
using Microsoft.Extensions.Options;

namespace MaskFormer.Engine.Tests.Models;

/// <summary>
/// A model folder laid out as transformers.js / onnx-community publish one (<c>onnx/model.onnx</c> and
/// <c>onnx/model_fp16.onnx</c>, a config.json with only HuggingFace's keys), made from the committed
/// model, against the committed model folder itself.
/// </summary>
public sealed class HuggingFaceLayoutTests : IDisposable
{
    private static readonly string[] s_stuff = ["sky", "grass", "water"];
    private readonly DirectoryInfo _root = Directory.CreateTempSubdirectory("maskformer-hf-");

    [Fact]
    public async Task Segment_OnnxCommunityLayoutWithSidecar_EqualsTheCommittedModel()
    {
        var folder = MakeHuggingFaceFolder("hf-shapes", sidecar: """[{"id": 1, "name": "sky", "isthing": 0}, {"id": 2, "name": "grass", "isthing": 0}, {"id": 3, "name": "water", "isthing": 0}, {"id": 17, "name": "circle", "isthing": 1}, {"id": 18, "name": "rectangle", "isthing": 1}, {"id": 19, "name": "triangle", "isthing": 1}]""");
        await using var hf = await StartAsync(folder);
        await using var committed = await StartAsync(RepositoryPaths.TinyShapes);

        var model = Assert.Single(hf.Models);
        Assert.Equal(PanopticCategories.FileName, model.Folder.Config.ThingSource);
        Assert.Equal(Path.Combine("onnx", "model.onnx"), model.Folder.ModelFile);
        Assert.Equal([false, false, false, true, true, true], model.Labels.Select(l => l.IsThing));
        for (var image = 0; image < 4; image++)
        {
            using var expected = await SegmentAsync(committed, image, PostprocessOptions.Detectron2);
            using var actual = await SegmentAsync(hf, image, PostprocessOptions.Detectron2);
            AssertSamePanoptic(expected.Panoptic!, actual.Panoptic!);
            Assert.Equal(expected.Instances!.Select(i => (i.LabelId, i.Score)), actual.Instances!.Select(i => (i.LabelId, i.Score)));
        }
    }

    [Fact]
    public async Task Segment_NoSplitAnywhere_EveryLabelIsAThingUntilTheCallFusesStuff()
    {
        var folder = MakeHuggingFaceFolder("hf-nosplit", sidecar: null);
        await using var hf = await StartAsync(folder);
        await using var committed = await StartAsync(RepositoryPaths.TinyShapes);

        var model = Assert.Single(hf.Models);
        Assert.Equal(ModelConfig.NoThingSource, model.Folder.Config.ThingSource);
        Assert.All(model.Labels, l => Assert.True(l.IsThing));

        var fuseStuff = PostprocessOptions.Detectron2 with { LabelIdsToFuse = new HashSet<int> { 0, 1, 2 } };
        var sawStuffInstances = false;
        for (var image = 0; image < 6; image++)
        {
            using var expected = await SegmentAsync(committed, image, PostprocessOptions.Detectron2);
            using var unfused = await SegmentAsync(hf, image, PostprocessOptions.Detectron2);
            using var fused = await SegmentAsync(hf, image, fuseStuff);

            AssertSamePanoptic(expected.Panoptic!, fused.Panoptic!);
            Assert.All(unfused.Panoptic!.Segments, s => Assert.True(s.IsThing));
            Assert.DoesNotContain(fused.Instances!, i => i.LabelId < 3);
            sawStuffInstances |= unfused.Instances!.Any(i => i.LabelId < 3);
        }

        // Without a split, sky, grass and water come back as instances, as they would for an HF export.
        Assert.True(sawStuffInstances, "no image returned stuff labels as instances without the thing/stuff split");
    }

    [Fact]
    public async Task Segment_Fp16Variant_ConvertsAtTheSessionEdgeAndAgreesWithFloat32()
    {
        var folder = MakeHuggingFaceFolder("hf-fp16", sidecar: """{"thing_ids": [3, 4, 5]}""");
        RunPython("tools/model-zoo/fp16_io.py", Path.Combine(folder, "onnx", "model.onnx"), Path.Combine(folder, "onnx", "model_fp16.onnx"));
        await using var fp32 = await StartAsync(folder);
        await using var fp16 = await StartAsync(folder, variant: "fp16");

        Assert.Equal(Path.Combine("onnx", "model_fp16.onnx"), Assert.Single(fp16.Models).Folder.ModelFile);
        for (var image = 0; image < 3; image++)
        {
            using var expected = await SegmentAsync(fp32, image, PostprocessOptions.Detectron2);
            using var actual = await SegmentAsync(fp16, image, PostprocessOptions.Detectron2);
            var a = expected.Semantic!.Values.ToArray();
            var b = actual.Semantic!.Values.ToArray();
            var agree = a.Zip(b).Count(p => p.First == p.Second) / (double)a.Length;

            // float16 rounds the normalised pixels and the logits (about 3 significant digits).
            Assert.True(agree >= 0.98, $"image {image}: fp16 and fp32 labels agree on {agree:P2} of pixels");
        }
    }

    [Fact]
    public void Read_MissingVariant_NamesWhatWasLookedForAndWhatExists()
    {
        var folder = MakeHuggingFaceFolder("hf-variants", sidecar: null);

        var error = Assert.Throws<ModelLoadException>(() => ModelFolder.Read(folder, "hf-variants", null, new ModelRepositoryOptions { Variant = "quantized" }));

        Assert.Contains("model_quantized.onnx", error.Message, StringComparison.Ordinal);
        Assert.Contains(Path.Combine("onnx", "model.onnx"), error.Message, StringComparison.Ordinal);
    }

    [Theory]
    [InlineData("""{"thing_ids": [3, 5]}""", new[] { 3, 5 })]
    [InlineData("""[{"id": 3, "isthing": 1}, {"id": 4, "isthing": true}, {"id": 0, "isthing": 0}]""", new[] { 3, 4 })]
    [InlineData("""{"categories": [{"name": "triangle", "isthing": 1}, {"name": "sky", "isthing": 0}]}""", new[] { 5 })]
    public void Read_SidecarForms_GiveTheThings(string sidecar, int[] things)
    {
        var folder = MakeHuggingFaceFolder("hf-sidecar", sidecar);

        var config = ModelFolder.Read(folder, "hf-sidecar", null).Config;

        Assert.Equal(things, config.Labels.Where(l => l.IsThing).Select(l => l.Id));
        Assert.True(config.DeclaresThings);
    }

    [Fact]
    public void Read_ServerConfiguration_OverridesTheSidecar()
    {
        var folder = MakeHuggingFaceFolder("hf-override", """{"thing_ids": [3]}""");
        var options = new ModelRepositoryOptions { Overrides = { ["hf-override"] = new ModelOverrides { ThingIds = [4, 5], ResizeMethod = "pil" } } };

        var read = ModelFolder.Read(folder, "hf-override", null, options);

        Assert.Equal([4, 5], read.Config.Labels.Where(l => l.IsThing).Select(l => l.Id));
        Assert.StartsWith("server configuration", read.Config.ThingSource, StringComparison.Ordinal);
        Assert.Equal(ResizeMethod.Pil, read.Preprocessor.ResizeMethod);
    }

    public void Dispose() => _root.Delete(recursive: true);

    private static async Task<SegmentationResult> SegmentAsync(SegmentationEngine engine, int image, PostprocessOptions options) =>
        await engine.SegmentAsync(
            new SegmentationRequest { Image = EngineFactory.HeldOutImage(image), Tasks = SegmentationTasks.Semantic | SegmentationTasks.Instance | SegmentationTasks.Panoptic, Postprocess = options },
            CancellationToken.None);

    private static void AssertSamePanoptic(PanopticResult expected, PanopticResult actual)
    {
        Assert.Equal(
            expected.Segments.Select(s => (s.Id, s.CategoryId, s.IsThing, s.Area)),
            actual.Segments.Select(s => (s.Id, s.CategoryId, s.IsThing, s.Area)));
        Assert.True(expected.SegmentIds.Values.SequenceEqual(actual.SegmentIds.Values), "segment id maps differ");
    }

    [Fact]
    public async Task NumQueries_ConfigWithoutIt_TakenFromTheFirstOutput()
    {
        await using var hf = await StartAsync(MakeHuggingFaceFolder("hf-queries", sidecar: null, statesQueries: false));
        var model = Assert.Single(hf.Models);
        Assert.Equal(0, model.NumQueries);

        using var result = await SegmentAsync(hf, 0, PostprocessOptions.Detectron2);

        Assert.Equal(16, model.NumQueries);
    }

    [Fact]
    public async Task Load_NoSplitAnywhere_WarnsOnceNamingTheModelAndTheRemedies()
    {
        var logger = new WarningLog();
        await using var hf = await StartAsync(MakeHuggingFaceFolder("hf-warn", sidecar: null), logger: logger);
        await using var withSidecar = await StartAsync(MakeHuggingFaceFolder("hf-quiet", """{"thing_ids": [3]}"""), logger: logger);

        var warning = Assert.Single(logger.Warnings);
        Assert.Contains("hf-warn", warning, StringComparison.Ordinal);
        Assert.Contains(PanopticCategories.FileName, warning, StringComparison.Ordinal);
        Assert.Contains("label_ids_to_fuse", warning, StringComparison.Ordinal);
    }

    private static async Task<SegmentationEngine> StartAsync(string path, string variant = "", ILogger<SegmentationEngine>? logger = null)
    {
        var engine = new SegmentationEngine(
            Options.Create(new ModelRepositoryOptions { Path = path, Variant = variant }),
            Options.Create(new InferenceOptions { MaxBatchSize = 1, WarmUp = false }),
            new ImageDecoder(Options.Create(new ImageDecoderOptions())),
            TimeProvider.System,
            logger ?? NullLogger<SegmentationEngine>.Instance);
        engine.Load();
        await engine.WarmUpAsync(CancellationToken.None);
        return engine;
    }

    private static void RunPython(string script, params string[] arguments)
    {
        var start = new ProcessStartInfo("/usr/bin/python3", [Path.Combine(RepositoryPaths.Root, script), .. arguments]) { RedirectStandardError = true };
        using var process = Process.Start(start)!;
        var errors = process.StandardError.ReadToEnd();
        process.WaitForExit();
        Assert.True(process.ExitCode == 0, $"{script} failed (is python3-onnx installed?): {errors}");
    }

    // Only what transformers writes: model_type, id2label, label2id, num_queries; the model in onnx/.
    private string MakeHuggingFaceFolder(string name, string? sidecar, bool statesQueries = true)
    {
        var folder = Directory.CreateDirectory(Path.Combine(_root.FullName, name)).FullName;
        Directory.CreateDirectory(Path.Combine(folder, "onnx"));
        File.Copy(Path.Combine(RepositoryPaths.TinyShapes, "model.onnx"), Path.Combine(folder, "onnx", "model.onnx"));
        File.Copy(Path.Combine(RepositoryPaths.TinyShapes, "preprocessor_config.json"), Path.Combine(folder, "preprocessor_config.json"));
        var committed = JsonNode.Parse(File.ReadAllText(Path.Combine(RepositoryPaths.TinyShapes, "config.json")))!;
        var config = new JsonObject
        {
            ["model_type"] = committed["model_type"]!.DeepClone(),
            ["architectures"] = new JsonArray("MaskFormerForInstanceSegmentation"),
            ["id2label"] = committed["id2label"]!.DeepClone(),
            ["label2id"] = committed["label2id"]!.DeepClone(),
        };
        if (statesQueries)
        {
            config["num_queries"] = committed["num_queries"]!.DeepClone();
        }

        File.WriteAllText(Path.Combine(folder, "config.json"), config.ToJsonString(new JsonSerializerOptions { WriteIndented = true }));
        if (sidecar is not null)
        {
            File.WriteAllText(Path.Combine(folder, PanopticCategories.FileName), sidecar);
        }

        Assert.DoesNotContain(s_stuff, name.Contains);
        return folder;
    }

    private sealed class WarningLog : ILogger<SegmentationEngine>
    {
        public List<string> Warnings { get; } = [];

        public IDisposable? BeginScope<TState>(TState state)
            where TState : notnull => null;

        public bool IsEnabled(LogLevel logLevel) => true;

        public void Log<TState>(LogLevel logLevel, EventId eventId, TState state, Exception? exception, Func<TState, Exception?, string> formatter)
        {
            if (logLevel == LogLevel.Warning)
            {
                Warnings.Add(formatter(state, exception));
            }
        }
    }
}
