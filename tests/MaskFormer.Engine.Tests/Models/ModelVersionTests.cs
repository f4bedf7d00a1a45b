using MaskFormer.Engine.Decoding;
using MaskFormer.Engine.Models;
using MaskFormer.Engine.Sessions;
using Microsoft.Extensions.Logging;
using Microsoft.Extensions.Options;

namespace MaskFormer.Engine.Tests.Models;

public sealed class ModelVersionTests : IDisposable
{
    private readonly string _repository = Directory.CreateTempSubdirectory("maskformer-versions-").FullName;

    [Theory]
    [InlineData("9", "10")]
    [InlineData("2", "10")]
    [InlineData("99", "100")]
    [InlineData("1.9", "1.10")]
    [InlineData("1.2.9", "1.2.10")]
    [InlineData("1.99", "2")]
    [InlineData("1.2", "1.2.1")]
    [InlineData("10", "10.0.1")]
    [InlineData("007", "8")]
    [InlineData("12345678901234567890123", "12345678901234567890124")]
    [InlineData("1.10", "1.rc")]
    [InlineData("1.beta", "1.rc")]
    public void Compare_OlderThenNewer_OrderedNumericallyPartByPart(string older, string newer)
    {
        Assert.True(ModelVersionComparer.Instance.Compare(older, newer) < 0, $"{older} < {newer}");
        Assert.True(ModelVersionComparer.Instance.Compare(newer, older) > 0, $"{newer} > {older}");
    }

    [Fact]
    public void Sort_FolderNames_NumericNotTextOrder()
    {
        string[] versions = ["10", "9", "1", "2.0", "1.10", "1.9", "100"];

        Assert.Equal(["1", "1.9", "1.10", "2.0", "9", "10", "100"], versions.Order(ModelVersionComparer.Instance));
    }

    [Fact]
    public async Task Load_Versions9And10_TenIsNewestAndLogsNameTheModel()
    {
        CopyModel(Path.Combine(_repository, "tiny", "9"));
        CopyModel(Path.Combine(_repository, "tiny", "10"));
        var logger = new RecordingLogger();
        await using var engine = new SegmentationEngine(
            Options.Create(new ModelRepositoryOptions { Path = _repository }),
            Options.Create(new InferenceOptions { WarmUp = false }),
            new ImageDecoder(Options.Create(new ImageDecoderOptions())),
            TimeProvider.System,
            logger);

        engine.Load();

        Assert.Equal([("tiny", "10", true), ("tiny", "9", false)], engine.Models.Select(m => (m.Name, m.Version, m.IsDefault)));
        Assert.Equal("10", engine.Resolve("tiny", string.Empty).Version);
        Assert.Equal("10", engine.Resolve(string.Empty, string.Empty).Version);
        Assert.Equal("9", engine.Resolve(string.Empty, "9").Version);
        var models = logger.Values("Model").ToArray();
        Assert.True(models.Length >= 4, "a session line and a loaded line per version");
        Assert.All(models, model => Assert.Equal("tiny", model));
        Assert.Equal(["10", "9"], logger.Values("Version").Distinct().OrderDescending(ModelVersionComparer.Instance));
    }

    public void Dispose() => Directory.Delete(_repository, recursive: true);

    private static void CopyModel(string target) => RepositoryPaths.CopyTinyShapes(target);

    /// <summary>Keeps each log line's structured values, to check what the lines name.</summary>
    private sealed class RecordingLogger : ILogger<SegmentationEngine>
    {
        private readonly List<IReadOnlyList<KeyValuePair<string, object?>>> _entries = [];

        public IEnumerable<string> Values(string key) =>
            _entries.SelectMany(e => e).Where(p => p.Key == key).Select(p => p.Value?.ToString() ?? string.Empty);

        public IDisposable? BeginScope<TState>(TState state)
            where TState : notnull => null;

        public bool IsEnabled(LogLevel logLevel) => true;

        public void Log<TState>(LogLevel logLevel, EventId eventId, TState state, Exception? exception, Func<TState, Exception?, string> formatter)
        {
            if (state is IReadOnlyList<KeyValuePair<string, object?>> values)
            {
                _entries.Add([.. values]);
            }
        }
    }
}
