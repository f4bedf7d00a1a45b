using System.Diagnostics;
using System.Text.Json;
using MaskFormer.Cli.Commands;
using SixLabors.ImageSharp;
using SixLabors.ImageSharp.PixelFormats;

namespace MaskFormer.Server.Tests;

[Collection(ServerTestGroup.Name)]
public sealed class CliTests(ServerFixture server) : IDisposable
{
    private readonly string _out = Directory.CreateTempSubdirectory("maskformer-cli-").FullName;

    [Fact]
    public async Task Segment_HeldOutImage_WritesLabelMapOverlayAndSummary()
    {
        var image = Path.Combine(RepositoryPaths.HeldOut, HeldOutSet.ImageFiles[0]);
        using var output = new StringWriter();

        var exitCode = await SegmentCommand.RunAsync(new CommandArguments([image, "--server", server.Address.ToString(), "--out", _out]), output, CancellationToken.None);

        Assert.Equal(0, exitCode);
        var stem = Path.Combine(_out, Path.GetFileNameWithoutExtension(image));
        var truth = HeldOutSet.ReadLabels(Path.ChangeExtension(image, null) + "_semantic.png");
        var labels = HeldOutSet.ReadLabels($"{stem}.labels.png");
        Assert.True(truth.Zip(labels).Count(p => p.First == p.Second) > truth.Length * 0.8, "the saved label map does not match the ground truth");

        using var original = SixLabors.ImageSharp.Image.Load<Rgb24>(image);
        using var overlay = SixLabors.ImageSharp.Image.Load<Rgb24>($"{stem}.overlay.png");
        var factor = (int)Math.Ceiling(320.0 / Math.Min(original.Width, original.Height));
        Assert.True(overlay.Width > original.Width * factor, "the overlay carries no legend");
        for (var y = 0; y < original.Height; y++)
        {
            for (var x = 0; x < original.Width; x++)
            {
                // Each pixel is the image blended half and half with its class's colour.
                var colour = MaskFormer.Cli.Rendering.Palette.ForId(labels[(y * original.Width) + x]);
                var under = original[x, y];
                var expected = new Rgb24(Half(under.R, colour.R), Half(under.G, colour.G), Half(under.B, colour.B));
                Assert.Equal(expected, overlay[x * factor, y * factor]);
            }
        }

        using var summary = JsonDocument.Parse(await File.ReadAllTextAsync($"{stem}.json"));
        var classes = summary.RootElement.GetProperty("classes").EnumerateArray().ToArray();
        Assert.Equal(labels.Length, classes.Sum(c => c.GetProperty("area").GetInt64()));
        Assert.Contains("tiny-shapes", output.ToString(), StringComparison.Ordinal);
    }

    [Fact]
    public async Task Stream_VideoMadeWithFfmpeg_WritesOverlayVideoWithEveryFrame()
    {
        var clip = Path.Combine(RepositoryPaths.TinyShapes, "clip");
        var video = Path.Combine(_out, "clip.mp4");
        var overlay = Path.Combine(_out, "overlay.mp4");
        await FfmpegAsync("-v", "error", "-y", "-framerate", "8", "-i", Path.Combine(clip, "frame_%03d.png"), "-pix_fmt", "yuv420p", video);

        var exitCode = await StreamCommand.RunAsync(new CommandArguments([video, "--server", server.Address.ToString(), "--out", overlay, "--panoptic"]), CancellationToken.None);

        Assert.Equal(0, exitCode);
        var frames = await FfmpegAsync("ffprobe", "-v", "error", "-count_frames", "-select_streams", "v:0", "-show_entries", "stream=nb_read_frames,width,height", "-of", "csv=p=0", overlay);
        Assert.Equal("160,120,16", frames.Trim());
    }

    [Fact]
    public async Task Stream_FolderOfFrames_WritesOneOverlayPngPerFrame()
    {
        var clip = Path.Combine(RepositoryPaths.TinyShapes, "clip");

        var exitCode = await StreamCommand.RunAsync(new CommandArguments([clip, "--server", server.Address.ToString(), "--out", _out, "--policy", "queue"]), CancellationToken.None);

        Assert.Equal(0, exitCode);
        Assert.Equal(16, Directory.GetFiles(_out, "*.overlay.png").Length);
    }

    public void Dispose() => Directory.Delete(_out, recursive: true);

    private static byte Half(byte under, byte over) => (byte)Math.Round((under * 0.5f) + (over * 0.5f));

    private static async Task<string> FfmpegAsync(params string[] args)
    {
        var (program, rest) = args[0] == "ffprobe" ? ("ffprobe", args[1..]) : ("ffmpeg", args);
        var start = new ProcessStartInfo(program, rest) { RedirectStandardOutput = true, RedirectStandardError = true, UseShellExecute = false };
        using var process = Process.Start(start)!;
        var output = process.StandardOutput.ReadToEndAsync();
        var error = process.StandardError.ReadToEndAsync();
        await process.WaitForExitAsync();
        Assert.True(process.ExitCode == 0, $"{program} failed: {await error}");
        return await output;
    }
}
