using MaskFormer.Engine.Models;

namespace MaskFormer.Engine.Tests.Models;

public sealed class ModelConfigTests : IDisposable
{
    private readonly string _folder = Directory.CreateTempSubdirectory("maskformer-config-").FullName;

    [Theory]
    [InlineData("""{"size": {"height": 384, "width": 512}, "size_divisor": 32}""", ResizeMode.Fixed, 384, 512, 0, 0, 32)]
    [InlineData("""{"size": {"shortest_edge": 800, "longest_edge": 1333}, "size_divisor": 32}""", ResizeMode.ShortestEdge, 0, 0, 800, 1333, 32)]
    [InlineData("""{"size": 800, "max_size": 1333, "size_divisibility": 32}""", ResizeMode.ShortestEdge, 0, 0, 800, 1333, 32)]
    [InlineData("""{"size": {"shortest_edge": 640}, "max_size": 1000, "do_pad": false}""", ResizeMode.ShortestEdge, 0, 0, 640, 1000, 1)]
    [InlineData("""{"do_resize": false, "size_divisor": 16}""", ResizeMode.None, 0, 0, 0, 0, 16)]
    public void PreprocessorLoad_SizeVariantsOfRealExports_Understood(string json, ResizeMode mode, int height, int width, int shortest, int longest, int divisor)
    {
        var path = Write("preprocessor_config.json", json);

        var config = PreprocessorConfig.Load(path);

        Assert.Equal((mode, height, width, shortest, longest, divisor), (config.ResizeMode, config.Height, config.Width, config.ShortestEdge, config.LongestEdge, config.SizeDivisor));
        Assert.Equal([0.485f, 0.456f, 0.406f], config.ImageMean);
    }

    [Theory]
    [InlineData("""{"size": {"shortest_edge": 128}, "resample": 3}""", "resample")]
    [InlineData("""{"size": {"shortest_edge": 128}, "image_std": [1, 0, 1]}""", "image_std")]
    [InlineData("""{"size": "big"}""", "size")]
    [InlineData("""[1, 2]""", "JSON object")]
    public void PreprocessorLoad_BadSetting_FailsNamingFileAndSetting(string json, string named)
    {
        var path = Write("preprocessor_config.json", json);

        var error = Assert.Throws<ModelLoadException>(() => PreprocessorConfig.Load(path));

        Assert.Equal(path, error.FilePath);
        Assert.Contains(named, error.Message, StringComparison.Ordinal);
    }

    [Theory]
    [InlineData("""{"size": 8, "image_processor_type": "MaskFormerImageProcessor"}""", ResizeMethod.Pil)]
    [InlineData("""{"size": 8, "image_processor_type": "Mask2FormerImageProcessor"}""", ResizeMethod.Pil)]
    [InlineData("""{"size": 8, "feature_extractor_type": "MaskFormerFeatureExtractor"}""", ResizeMethod.Pil)]
    [InlineData("""{"size": 8, "image_processor_type": "OneFormerImageProcessor", "resize_method": "interpolate"}""", ResizeMethod.Interpolate)]
    [InlineData("""{"size": 8, "resize_method": "PIL"}""", ResizeMethod.Pil)]
    [InlineData("""{"size": 8}""", ResizeMethod.Interpolate)]
    public void PreprocessorLoad_ResizeMethod_FollowsTheProcessorUnlessNamed(string json, ResizeMethod expected)
    {
        var path = Write("preprocessor_config.json", json);

        Assert.Equal(expected, PreprocessorConfig.Load(path).ResizeMethod);
    }

    [Fact]
    public void PreprocessorLoad_UnknownResizeMethod_FailsNamingTheKey()
    {
        var path = Write("preprocessor_config.json", """{"size": 8, "resize_method": "lanczos"}""");

        var error = Assert.Throws<ModelLoadException>(() => PreprocessorConfig.Load(path));

        Assert.Contains("resize_method", error.Message, StringComparison.Ordinal);
    }

    [Fact]
    public void ConfigLoad_DetectronStyleThingFlags_MarksThings()
    {
        var path = Write("config.json", """{"model_type": "mask2former", "id2label": {"0": "wall", "1": "person"}, "label2isthing": {"0": false, "1": true}}""");

        var config = ModelConfig.Load(path);

        Assert.True(config.IsMask2Former);
        Assert.True(config.DeclaresThings);
        Assert.Equal([false, true], config.Labels.Select(l => l.IsThing));
    }

    [Fact]
    public void ConfigLoad_NoThingList_EveryClassIsAThing()
    {
        var path = Write("config.json", """{"id2label": {"1": "b", "0": "a"}}""");

        var config = ModelConfig.Load(path);

        Assert.Equal("maskformer", config.ModelType);
        Assert.False(config.DeclaresThings);
        Assert.Equal(["a", "b"], config.Labels.Select(l => l.Name));
        Assert.All(config.Labels, l => Assert.True(l.IsThing));
    }

    [Fact]
    public void ConfigLoad_GapInLabelIds_FailsNamingTheFile()
    {
        var path = Write("config.json", """{"id2label": {"0": "a", "2": "c"}}""");

        var error = Assert.Throws<ModelLoadException>(() => ModelConfig.Load(path));

        Assert.Contains("config.json", error.Message, StringComparison.Ordinal);
        Assert.Contains("1 is missing", error.Message, StringComparison.Ordinal);
    }

    public void Dispose() => Directory.Delete(_folder, recursive: true);

    private string Write(string name, string json)
    {
        var path = Path.Combine(_folder, name);
        File.WriteAllText(path, json);
        return path;
    }
}
