using MaskFormer.Engine.Decoding;
using MaskFormer.Engine.Models;
using MaskFormer.Engine.Sessions;
using Microsoft.Extensions.Logging.Abstractions;
using Microsoft.Extensions.Options;

namespace MaskFormer.Engine.Tests;

/// <summary>Builds a real engine on the committed model, the way the host does, with chosen options.</summary>
internal static class EngineFactory
{
    public static async Task<SegmentationEngine> StartAsync(InferenceOptions options, TimeProvider? time = null)
    {
        var engine = new SegmentationEngine(
            Options.Create(new ModelRepositoryOptions { Path = RepositoryPaths.Models }),
            Options.Create(options),
            new ImageDecoder(Options.Create(new ImageDecoderOptions())),
            time ?? TimeProvider.System,
            NullLogger<SegmentationEngine>.Instance);
        engine.Load();
        await engine.WarmUpAsync(CancellationToken.None);
        return engine;
    }

    public static ImageSource HeldOutImage(int index) =>
        ImageSource.Encoded(File.ReadAllBytes(Path.Combine(RepositoryPaths.HeldOut, $"{index:D4}.png")));
}
