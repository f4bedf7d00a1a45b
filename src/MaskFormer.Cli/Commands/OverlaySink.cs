using System.Diagnostics;
using System.Globalization;
using MaskFormer.Cli.Rendering;
using MaskFormer.Contracts.V1;
using SixLabors.ImageSharp;
using SixLabors.ImageSharp.PixelFormats;
using SixLabors.ImageSharp.Processing;

namespace MaskFormer.Cli.Commands;

/// <summary>
/// Writes one overlay per frame: into an ffmpeg-encoded video (when the destination ends in
/// .mp4/.mkv/.webm/.avi) or as PNGs in a folder. A frame skipped under the overload policy repeats the
/// last overlay, so the video does not flash raw frames; a failed frame gets no PNG, and in a video
/// repeats the last overlay to keep the timing. A video takes the size of its first overlay: one of
/// another size is scaled to fit it, and <paramref name="note"/> says so once.
/// <paramref name="interrupted"/> is called when ffmpeg stopped on a signal, which interrupts the command.
/// </summary>
internal sealed class OverlaySink(string destination, double fps, SegmentationTask task, IReadOnlyDictionary<int, string> labelNames, IReadOnlyList<LegendEntry> legend, OverlayOptions options, Action<string>? note = null, Action? interrupted = null) : IAsyncDisposable
{
    /// <summary>What ffmpeg exits with after a signal (SIGINT, SIGTERM), once it has ended its output file.</summary>
    internal const int InterruptedExitCode = 255;

    // How long a sink disposed without CompleteAsync (the command failed) lets ffmpeg finish the video.
    private static readonly TimeSpan s_finishOnDisposeTimeout = TimeSpan.FromSeconds(5);

    private static readonly string[] s_videoExtensions = [".mp4", ".mkv", ".webm", ".avi"];
    private Process? _ffmpeg;
    private (int Width, int Height) _size;
    private Image<Rgb24>? _last;
    private Task<string>? _ffmpegErrors;
    private bool _scaledBefore;

    public string Destination { get; } = destination;

    private bool IsVideo => s_videoExtensions.Contains(Path.GetExtension(Destination).ToLowerInvariant());

    /// <summary>Draws one frame's overlay; false when there was nothing to draw for it.</summary>
    public async Task<bool> WriteAsync(Contracts.V1.Image image, string name, SegmentStreamResponse response, CancellationToken cancellationToken)
    {
        if (response.OutcomeCase == SegmentStreamResponse.OutcomeOneofCase.Error && (!IsVideo || _last is null))
        {
            // Its error is printed; an overlay file would pass the frame off as drawn. A video with no
            // overlay yet has nothing to repeat, and the server could not read the frame itself.
            return false;
        }

        if (response.Result is { } result || _last is null)
        {
            if (response.Result is null && !CanDecode(image))
            {
                // Skipped before any result, and not an image this client reads either: nothing to draw.
                return false;
            }

            using var frame = ToImage(image);
            var map = response.Result is { } answer ? Map(answer) : SegmentMap.Empty(frame.Width, frame.Height);
            _last?.Dispose();
            _last = OverlayRenderer.Render(frame, map, legend, options);
        }

        if (!IsVideo)
        {
            // Whole files only, even when the stream is interrupted.
            cancellationToken.ThrowIfCancellationRequested();
            Directory.CreateDirectory(Destination);
            await _last.SaveAsPngAsync(Path.Combine(Destination, $"{name}.overlay.png"), CancellationToken.None).ConfigureAwait(false);
            return true;
        }

        _ffmpeg ??= StartEncoder(_last.Width, _last.Height);
        if ((_last.Width, _last.Height) != _size)
        {
            FitToVideo(_last, name);
        }

        var pixels = new byte[_last.Width * _last.Height * 3];
        _last.CopyPixelDataTo(pixels);
        try
        {
            // Whole frames only, even when the stream is interrupted: the video is then finished with the
            // frames written (CompleteAsync), and a cut frame would end it with a broken one.
            cancellationToken.ThrowIfCancellationRequested();
            await _ffmpeg.StandardInput.BaseStream.WriteAsync(pixels, CancellationToken.None).ConfigureAwait(false);
            return true;
        }
        catch (IOException)
        {
            await _ffmpeg.WaitForExitAsync(cancellationToken).ConfigureAwait(false);
            if (_ffmpeg.ExitCode == InterruptedExitCode && interrupted is not null)
            {
                // ffmpeg had a signal: a terminal's Ctrl+C goes to the whole process group, and ffmpeg can
                // stop reading before this process hears of it. The command is interrupted, not failed.
                interrupted();
                cancellationToken.ThrowIfCancellationRequested();
            }

            throw new IOException($"ffmpeg stopped writing {Destination} (exit code {_ffmpeg.ExitCode}): {(await _ffmpegErrors!.ConfigureAwait(false)).Trim()}");
        }
    }

    /// <summary>
    /// Finishes the video; throws with ffmpeg's message when it could not write it. After an interruption
    /// (<paramref name="interrupted"/>) ffmpeg may have had the same Ctrl+C (a terminal signals the whole
    /// process group): it then stops reading, ends the file itself and exits 255, which is not a failure.
    /// </summary>
    public async Task CompleteAsync(CancellationToken cancellationToken, bool interrupted = false)
    {
        if (_ffmpeg is null)
        {
            return;
        }

        try
        {
            _ffmpeg.StandardInput.Close();
        }
        catch (IOException) when (interrupted)
        {
            // ffmpeg stopped reading: it was interrupted too.
        }

        await _ffmpeg.WaitForExitAsync(cancellationToken).ConfigureAwait(false);
        if (_ffmpeg.ExitCode != 0 && !(interrupted && _ffmpeg.ExitCode == InterruptedExitCode))
        {
            throw new IOException($"ffmpeg could not write {Destination}: {(await _ffmpegErrors!.ConfigureAwait(false)).Trim()}");
        }
    }

    /// <summary>
    /// Without <see cref="CompleteAsync"/> first (the command failed), ends ffmpeg's input so that it still
    /// finishes the video with the frames written: killed, it would leave a file without its index (an mp4's
    /// moov atom) that plays nothing. Killed only if it does not exit within a few seconds.
    /// </summary>
    public async ValueTask DisposeAsync()
    {
        _last?.Dispose();
        if (_ffmpeg is not null)
        {
            if (!_ffmpeg.HasExited)
            {
                try
                {
                    _ffmpeg.StandardInput.Close();
                }
                catch (IOException)
                {
                    // ffmpeg stopped reading; it exits by itself or is killed below.
                }

                using var finishing = new CancellationTokenSource(s_finishOnDisposeTimeout);
                try
                {
                    await _ffmpeg.WaitForExitAsync(finishing.Token).ConfigureAwait(false);
                }
                catch (OperationCanceledException)
                {
                    _ffmpeg.Kill();
                    await _ffmpeg.WaitForExitAsync().ConfigureAwait(false);
                }
            }

            _ffmpeg.Dispose();
        }
    }

    // Scaled keeping its aspect ratio and padded, so that the stream goes on; the first time, a note says
    // so, since those frames are then shown smaller (or larger) than drawn.
    private void FitToVideo(Image<Rgb24> overlay, string name)
    {
        if (!_scaledBefore)
        {
            note?.Invoke($"note: frame {name} gives a {overlay.Width}x{overlay.Height} overlay; the video is {_size.Width}x{_size.Height}, the size of the first: it and every other overlay of another size are scaled to fit.");
        }

        _scaledBefore = true;
        _last = overlay.Clone(context => context.Resize(new ResizeOptions { Size = new Size(_size.Width, _size.Height), Mode = ResizeMode.Pad, PadColor = Color.Black }));
        overlay.Dispose();
    }

    private SegmentMap Map(SegmentResponse result) => task switch
    {
        SegmentationTask.Panoptic => ResultPictures.Panoptic(result, streaming: true),
        SegmentationTask.Instance => ResultPictures.Instances(result, streaming: true),
        _ => ResultPictures.Semantic(result, labelNames),
    };

    private Process StartEncoder(int width, int height)
    {
        _size = (width, height);
        var folder = Path.GetDirectoryName(Path.GetFullPath(Destination));
        if (folder is not null)
        {
            Directory.CreateDirectory(folder);
        }

        var ffmpeg = Process.Start(new ProcessStartInfo("ffmpeg", ["-v", "error", "-y", "-f", "rawvideo", "-pix_fmt", "rgb24", "-s", $"{width}x{height}", "-r", fps.ToString(CultureInfo.InvariantCulture), "-i", "-", "-pix_fmt", "yuv420p", Destination])
        {
            RedirectStandardInput = true,
            RedirectStandardError = true,
            UseShellExecute = false,
        }) ?? throw new IOException("ffmpeg could not be started.");
        _ffmpegErrors = ffmpeg.StandardError.ReadToEndAsync();
        return ffmpeg;
    }

    private static bool CanDecode(Contracts.V1.Image image) =>
        image.SourceCase == Contracts.V1.Image.SourceOneofCase.Raw || SixLabors.ImageSharp.Image.DetectFormat(image.Encoded.Span) is not null;

    private static Image<Rgb24> ToImage(Contracts.V1.Image image) => image.SourceCase == Contracts.V1.Image.SourceOneofCase.Raw
        ? SixLabors.ImageSharp.Image.LoadPixelData<Rgb24>(image.Raw.Data.Span, (int)image.Raw.Width, (int)image.Raw.Height)
        : DisplayedImage.Load(image.Encoded.Span);
}
