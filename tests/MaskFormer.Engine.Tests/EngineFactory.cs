using MaskFormer.Engine.Admission;
using MaskFormer.Engine.Decoding;
using MaskFormer.Engine.Models;
using MaskFormer.Engine.Sessions;
using Microsoft.Extensions.Logging.Abstractions;
using Microsoft.Extensions.Options;

namespace MaskFormer.Engine.Tests;

/// <summary>Builds a real engine on the committed model, the way the host does, with chosen options.</summary>
internal static class EngineFactory
{
    public static async Task<SegmentationEngine> StartAsync(InferenceOptions options, TimeProvider? time = null, AdmissionOptions? admission = null, IModelSessionFactory? sessions = null)
    {
        var engine = new SegmentationEngine(
            Options.Create(new ModelRepositoryOptions { Path = RepositoryPaths.Models }),
            Options.Create(options),
            new ImageDecoder(Options.Create(new ImageDecoderOptions())),
            time ?? TimeProvider.System,
            NullLogger<SegmentationEngine>.Instance,
            admission: admission is null ? null : new AdmissionGate(Options.Create(admission), time))
        {
            ModelSessionFactory = sessions,
        };
        engine.Load();
        await engine.WarmUpAsync(CancellationToken.None);
        return engine;
    }

    public static ImageSource HeldOutImage(int index) =>
        ImageSource.Encoded(File.ReadAllBytes(Path.Combine(RepositoryPaths.HeldOut, $"{index:D4}.png")));

    /// <summary>A held-out image as a raw RGB24 frame: queued at once, with no decoding in front of the queue.</summary>
    public static ImageSource HeldOutRawFrame(int index)
    {
        using var image = new ImageDecoder(Options.Create(new ImageDecoderOptions())).Decode(File.ReadAllBytes(Path.Combine(RepositoryPaths.HeldOut, $"{index:D4}.png")));
        return ImageSource.Raw(image.ReadOnlyPixels.ToArray(), new RawFrameLayout(image.Width, image.Height, 0, RawPixelFormat.Rgb24));
    }
}
