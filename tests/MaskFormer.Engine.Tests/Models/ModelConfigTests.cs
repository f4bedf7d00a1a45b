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

    [Theory]
    [InlineData("""{"do_normalize": true, "do_rescale": true, "do_resize": true, "ignore_index": 255, "image_mean": [0.48500001430511475, 0.4560000002384186, 0.4059999942779541], "image_processor_type": "Mask2FormerImageProcessor", "image_std": [0.2290000021457672, 0.2239999920129776, 0.22499999403953552], "num_labels": 133, "reduce_labels": false, "resample": 2, "rescale_factor": 0.00392156862745098, "size": {"height": 384, "width": 384}, "size_divisor": 32}""", ResizeMode.Fixed, 384, 32, SizeDivisorRule.Resize)]
    [InlineData("""{"do_normalize": true, "do_reduce_labels": false, "do_rescale": true, "do_resize": true, "ignore_index": 255, "image_mean": [0.485, 0.456, 0.406], "image_processor_type": "MaskFormerImageProcessor", "image_std": [0.229, 0.224, 0.225], "num_labels": 150, "resample": 2, "rescale_factor": 0.00392156862745098, "size": {"longest_edge": 2560, "shortest_edge": 512}, "size_divisor": 32}""", ResizeMode.ShortestEdge, 512, 32, SizeDivisorRule.Resize)]
    [InlineData("""{"feature_extractor_type": "MaskFormerFeatureExtractor", "do_normalize": true, "do_resize": true, "image_mean": [0.485, 0.456, 0.406], "image_std": [0.229, 0.224, 0.225], "max_size": 1333, "size": 800, "size_divisibility": 32}""", ResizeMode.ShortestEdge, 800, 32, SizeDivisorRule.Resize)]
    [InlineData("""{"do_normalize": true, "do_rescale": true, "do_resize": true, "ignore_index": 255, "image_processor_type": "OneFormerImageProcessor", "image_mean": [0.485, 0.456, 0.406], "image_std": [0.229, 0.224, 0.225], "max_seq_length": 77, "num_text": 134, "task_seq_length": 77, "resample": 2, "rescale_factor": 0.00392156862745098, "size": {"longest_edge": 2560, "shortest_edge": 512}, "metadata": {"0": "wall", "1": "building", "thing_ids": [1]}}""", ResizeMode.ShortestEdge, 512, 32, SizeDivisorRule.Pad)]
    public void PreprocessorLoad_HubProcessorConfigs_ReadAsTheirProcessorsDo(string json, ResizeMode mode, int side, int divisor, SizeDivisorRule rule)
    {
        var path = Write("preprocessor_config.json", json);

        var config = PreprocessorConfig.Load(path);

        Assert.Equal((mode, divisor, rule, ResizeMethod.Pil), (config.ResizeMode, config.SizeDivisor, config.SizeDivisorRule, config.ResizeMethod));
        Assert.Equal(side, mode == ResizeMode.Fixed ? config.Height : config.ShortestEdge);
        Assert.Equal(json.Contains("thing_ids", StringComparison.Ordinal), config.MetadataThingIds is not null);
    }

    [Theory]
    [InlineData("MaskFormerImageProcessor", SizeDivisorRule.Resize)]
    [InlineData("MaskFormerImageProcessorFast", SizeDivisorRule.Resize)]
    [InlineData("Mask2FormerImageProcessorFast", SizeDivisorRule.Resize)]
    [InlineData("Mask2FormerImageProcessorPil", SizeDivisorRule.Resize)]
    [InlineData("Mask2FormerImageProcessorSlow", SizeDivisorRule.Pad)]
    [InlineData("OneFormerImageProcessorFast", SizeDivisorRule.Pad)]
    public void PreprocessorLoad_ProcessorBackEnds_RoundTheResizeAsTheSlowOneDoes(string processor, SizeDivisorRule expected)
    {
        var path = Write("preprocessor_config.json", $$"""{"image_processor_type": "{{processor}}", "size": {"shortest_edge": 512, "longest_edge": 2048}, "size_divisor": 32}""");

        Assert.Equal(expected, PreprocessorConfig.Load(path).SizeDivisorRule);
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

    [Theory]
    [InlineData("""{"model_type": "mask2former", "num_queries": 200, "id2label": {"0": "a"}}""", 200)]
    [InlineData("""{"model_type": "maskformer", "decoder_config": {"model_type": "detr", "num_queries": 100}, "id2label": {"0": "a"}}""", 100)]
    [InlineData("""{"num_queries": 50, "decoder_config": {"num_queries": 100}, "id2label": {"0": "a"}}""", 50)]
    [InlineData("""{"decoder_config": null, "id2label": {"0": "a"}}""", 0)]
    [InlineData("""{"id2label": {"0": "a"}}""", 0)]
    public void ConfigLoad_NumQueries_ReadWhereTransformersWritesIt(string json, int expected)
    {
        var path = Write("config.json", json);

        Assert.Equal(expected, ModelConfig.Load(path).NumQueries);
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
