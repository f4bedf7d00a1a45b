using MaskFormer.Cli.Commands;
using MaskFormer.Cli.Rendering;
using MaskFormer.Cli.Tests.Rendering;
using MaskFormer.Contracts.V1;
using SixLabors.ImageSharp;
using SixLabors.ImageSharp.PixelFormats;

namespace MaskFormer.Cli.Tests.Commands;

public sealed class OverlaySinkTests : IDisposable
{
    private const int Width = 32;
    private const int Height = 24;
    private readonly string _out = Directory.CreateTempSubdirectory("maskformer-sink-").FullName;

    [Fact]
    public async Task WriteAsync_SkippedFrame_RepeatsTheLastOverlayNotTheRawFrame()
    {
        var legend = new[] { new LegendEntry(Palette.ForId(1), "ONE"), new LegendEntry(Palette.ForId(2), "TWO") };
        await using (var sink = Sink(legend))
        {
            await sink.WriteAsync(Frame(seed: 0), "a", new SegmentStreamResponse { Result = TestPictures.Semantic(TestPictures.TwoClasses(Width, Height, 10), Width, Height) }, CancellationToken.None);
            await sink.WriteAsync(Frame(seed: 90), "b", new SegmentStreamResponse { Skipped = new FrameSkipped() }, CancellationToken.None);
        }

        using var first = SixLabors.ImageSharp.Image.Load<Rgb24>(Path.Combine(_out, "a.overlay.png"));
        using var repeated = SixLabors.ImageSharp.Image.Load<Rgb24>(Path.Combine(_out, "b.overlay.png"));
        Assert.Equal(Pixels(first), Pixels(repeated));
    }

    [Fact]
    public async Task WriteAsync_SkippedBeforeAnyResult_WritesTheFrameAtTheOverlaysSize()
    {
        var legend = new[] { new LegendEntry(Palette.ForId(1), "ONE") };
        await using (var sink = Sink(legend))
        {
            await sink.WriteAsync(Frame(seed: 90), "a", new SegmentStreamResponse { Skipped = new FrameSkipped() }, CancellationToken.None);
            await sink.WriteAsync(Frame(seed: 0), "b", new SegmentStreamResponse { Result = TestPictures.Semantic(TestPictures.TwoClasses(Width, Height, 10), Width, Height) }, CancellationToken.None);
        }

        using var skipped = SixLabors.ImageSharp.Image.Load<Rgb24>(Path.Combine(_out, "a.overlay.png"));
        using var answered = SixLabors.ImageSharp.Image.Load<Rgb24>(Path.Combine(_out, "b.overlay.png"));
        Assert.Equal(answered.Size(), skipped.Size());
        using var frame = TestPictures.Gradient(Width, Height, seed: 90);
        Assert.Equal(frame[5, 5], skipped[5 * OverlayRenderer.DisplayFactor(Width, Height), 5 * OverlayRenderer.DisplayFactor(Width, Height)]);
    }

    [Fact]
    public async Task DisposeAsync_VideoNotCompleted_FinishedWithTheFramesWritten()
    {
        // A stream that fails (its server gone for good, a bug) disposes the sink without completing it:
        // the video must still play up to there, as an interrupted one does.
        var video = Path.Combine(_out, "failed.mp4");
        await using (var sink = new OverlaySink(video, 10, SegmentationTask.Semantic, new Dictionary<int, string> { [1] = "one", [2] = "two" }, [], new OverlayOptions()))
        {
            for (var seed = 0; seed < 3; seed++)
            {
                await sink.WriteAsync(Frame(seed), $"f{seed}", new SegmentStreamResponse { Result = TestPictures.Semantic(TestPictures.TwoClasses(Width, Height, 10), Width, Height) }, CancellationToken.None);
            }
        }

        var frames = await FrameSource.RunAsync("ffprobe", ["-v", "error", "-count_frames", "-select_streams", "v:0", "-show_entries", "stream=nb_read_frames", "-of", "csv=p=0", video], CancellationToken.None);
        Assert.Equal("3", frames.Trim());
    }

    public void Dispose() => Directory.Delete(_out, recursive: true);

    private OverlaySink Sink(IReadOnlyList<LegendEntry> legend) =>
        new(_out, 10, SegmentationTask.Semantic, new Dictionary<int, string> { [1] = "one", [2] = "two" }, legend, new OverlayOptions());

    private static Contracts.V1.Image Frame(int seed)
    {
        using var image = TestPictures.Gradient(Width, Height, seed);
        var pixels = new byte[Width * Height * 3];
        image.CopyPixelDataTo(pixels);
        return new Contracts.V1.Image { Raw = new RawFrame { Width = Width, Height = Height, PixelFormat = PixelFormat.Rgb24, Data = Google.Protobuf.ByteString.CopyFrom(pixels) } };
    }

    private static byte[] Pixels(Image<Rgb24> image)
    {
        var pixels = new byte[image.Width * image.Height * 3];
        image.CopyPixelDataTo(pixels);
        return pixels;
    }
}
