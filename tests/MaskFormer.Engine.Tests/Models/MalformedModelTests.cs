using System.Text.Json.Nodes;
using MaskFormer.Engine.Models;
using MaskFormer.Engine.Sessions;
using Microsoft.Extensions.Logging.Abstractions;

namespace MaskFormer.Engine.Tests.Models;

/// <summary>
/// Model folders a user could get wrong: each fails start-up with a <see cref="ModelLoadException"/> naming
/// the file and the problem, never with a raw exception or a model served misread.
/// </summary>
public sealed class MalformedModelTests : IDisposable
{
    private readonly string _repository = Directory.CreateTempSubdirectory("maskformer-malformed-").FullName;

    [Fact]
    public void CreateSession_ConfigListsMoreLabelsThanTheModelScores_FailsNamingBoth()
    {
        var folder = CopyModel("tiny", config => config["id2label"] = new JsonObject(Enumerable.Range(0, 10).Select(i => KeyValuePair.Create($"{i}", (JsonNode?)$"l{i}"))));

        var model = ModelFolder.Read(folder, "tiny", null);
        var error = Assert.Throws<ModelLoadException>(() => new SessionFactory(new InferenceOptions(), NullLogger.Instance).Create(model, DeviceSpec.Cpu, 1).Dispose());

        Assert.EndsWith(ModelFolder.ModelFileName, error.FilePath, StringComparison.Ordinal);
        Assert.Contains("scores for 7 classes (6 labels and \"no object\"), but config.json lists 10 labels", error.Message, StringComparison.Ordinal);
    }

    [Theory]
    [InlineData(1, 0, 0, "takes batches of 1 image(s) only (input 'pixel_values' has a fixed batch axis), but MaskFormer:Inference:MaxBatchSize is 4")]
    [InlineData(0, 96, 96, "takes 96x96 inputs only (input 'pixel_values' has fixed sides), but preprocessor_config.json makes a 517x333 image")]
    public void CreateSession_ExportWithFixedInputAxes_FailsSayingWhich(int batch, int height, int width, string expected)
    {
        // What torch.onnx.export gives without dynamic_axes: the committed model with its input axes fixed.
        var folder = CopyModel("tiny");
        var script = """
            import onnx, sys
            model = onnx.load(sys.argv[1])
            dims = model.graph.input[0].type.tensor_type.shape.dim
            for axis, value in zip((0, 2, 3), map(int, sys.argv[2:5])):
                if value > 0:
                    dims[axis].ClearField("dim_param")
                    dims[axis].dim_value = value
            onnx.save(model, sys.argv[1])
            """;
        var start = new System.Diagnostics.ProcessStartInfo("/usr/bin/python3", ["-c", script, Path.Combine(folder, ModelFolder.ModelFileName), $"{batch}", $"{height}", $"{width}"]) { RedirectStandardError = true };
        using (var process = System.Diagnostics.Process.Start(start)!)
        {
            var errors = process.StandardError.ReadToEnd();
            process.WaitForExit();
            Assert.True(process.ExitCode == 0, $"fixing the axes failed (is python3-onnx installed?): {errors}");
        }

        var model = ModelFolder.Read(folder, "tiny", null);
        var error = Assert.Throws<ModelLoadException>(() => new SessionFactory(new InferenceOptions { MaxBatchSize = 4 }, NullLogger.Instance).Create(model, DeviceSpec.Cpu, 1).Dispose());

        Assert.Contains(expected, error.Message, StringComparison.Ordinal);
    }

    [Theory]
    [InlineData("id2label", "{\"0\": 5}")]
    [InlineData("id2label", "{\"x\": \"sky\"}")]
    public void Read_ConfigValueOfTheWrongKind_FailsNamingConfigJson(string key, string json)
    {
        var folder = CopyModel("tiny", config => config[key] = JsonNode.Parse(json));

        var error = Assert.Throws<ModelLoadException>(() => ModelFolder.Read(folder, "tiny", null));

        Assert.Equal(Path.Combine(folder, ModelFolder.ConfigFileName), error.FilePath);
    }

    [Fact]
    public void Read_PreprocessorSizeNotWhole_FailsNamingTheFile()
    {
        var folder = CopyModel("tiny");
        var path = Path.Combine(folder, ModelFolder.PreprocessorFileName);
        var preprocessor = JsonNode.Parse(File.ReadAllText(path))!;
        preprocessor["resample"] = 2.5;
        File.WriteAllText(path, preprocessor.ToJsonString());

        var error = Assert.Throws<ModelLoadException>(() => ModelFolder.Read(folder, "tiny", null));

        Assert.Equal(path, error.FilePath);
    }

    [Fact]
    public async Task Read_ConfigJsonIsAFifo_FailsInsteadOfWaitingForAWriter()
    {
        var folder = CopyModel("tiny");
        var config = Path.Combine(folder, ModelFolder.ConfigFileName);
        File.Delete(config);
        using (var mkfifo = System.Diagnostics.Process.Start("mkfifo", [config]))
        {
            await mkfifo.WaitForExitAsync();
            Assert.Equal(0, mkfifo.ExitCode);
        }

        // The minute only guards the test run: opening a FIFO blocks until something writes to it.
        var read = Task.Run(() => ModelFolder.Read(folder, "tiny", null));
        var error = await Assert.ThrowsAsync<ModelLoadException>(() => read.WaitAsync(TimeSpan.FromMinutes(1)));

        Assert.Equal(config, error.FilePath);
        Assert.Contains("not a regular file", error.Message, StringComparison.Ordinal);
    }

    [Fact]
    public void Read_PreprocessorConfigLinkedToDevZero_FailsInsteadOfReadingWithoutEnd()
    {
        var folder = CopyModel("tiny");
        var path = Path.Combine(folder, ModelFolder.PreprocessorFileName);
        File.Delete(path);
        File.CreateSymbolicLink(path, "/dev/zero");

        var error = Assert.Throws<ModelLoadException>(() => ModelFolder.Read(folder, "tiny", null));

        Assert.Equal(path, error.FilePath);
        Assert.Contains("not a regular file", error.Message, StringComparison.Ordinal);
    }

    [Fact]
    public void Discover_OneModelFolderWithATrailingSlash_NamedAfterTheFolder()
    {
        var folder = CopyModel("tiny-shapes");

        var models = ModelFolder.Discover(folder + Path.DirectorySeparatorChar);

        Assert.Equal("tiny-shapes", Assert.Single(models).Name);
    }

    [Fact]
    public void Discover_OneModelFolderAndAnOverrideForAnotherName_FailsAsForARepository()
    {
        var folder = CopyModel("tiny-shapes");
        var options = new ModelRepositoryOptions { Overrides = { ["tiny-shapez"] = new ModelOverrides { ThingIds = [3] } } };

        var error = Assert.Throws<ModelLoadException>(() => ModelFolder.Discover(folder, options));

        Assert.Contains("tiny-shapez", error.Message, StringComparison.Ordinal);
    }

    public void Dispose() => Directory.Delete(_repository, recursive: true);

    private string CopyModel(string name, Action<JsonObject>? editConfig = null)
    {
        var target = RepositoryPaths.CopyTinyShapes(Path.Combine(_repository, name));

        if (editConfig is not null)
        {
            var path = Path.Combine(target, ModelFolder.ConfigFileName);
            var config = JsonNode.Parse(File.ReadAllText(path))!.AsObject();
            editConfig(config);
            File.WriteAllText(path, config.ToJsonString());
        }

        return target;
    }
}
