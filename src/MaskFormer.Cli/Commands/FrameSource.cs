using System.Diagnostics;
using System.Globalization;
using Google.Protobuf;
using MaskFormer.Contracts.V1;

namespace MaskFormer.Cli.Commands;

/// <summary>
/// Frames to stream: the images of a folder (sent encoded, in name order), or a video decoded by
/// ffmpeg into raw RGB24 frames (sent raw, as a camera pipeline would).
/// </summary>
internal sealed class FrameSource : IAsyncDisposable
{
    private static readonly string[] s_imageExtensions = [".png", ".jpg", ".jpeg", ".bmp", ".webp", ".tga", ".tif", ".tiff"];
    private readonly string[]? _files;
    private readonly Process? _ffmpeg;
    private readonly Action? _interrupted;
    private int _next;

    private FrameSource(string[] files)
    {
        _files = files;
        Count = files.Length;
    }

    private FrameSource(Process ffmpeg, int width, int height, int count, double fps, Action? interrupted)
    {
        _ffmpeg = ffmpeg;
        _interrupted = interrupted;
        Width = width;
        Height = height;
        Count = count;
        FramesPerSecond = fps;
    }

    /// <summary>Frames expected; -1 when unknown.</summary>
    public int Count { get; }

    /// <summary>The video's width (0 for a folder).</summary>
    public int Width { get; }

    /// <summary>The video's height (0 for a folder).</summary>
    public int Height { get; }

    /// <summary>The video's frame rate, or 10 for a folder.</summary>
    public double FramesPerSecond { get; } = 10;

    /// <summary>A folder's images or a video's frames; <paramref name="interrupted"/> is called when the video's ffmpeg stopped on a signal rather than at the end of the video. A folder with a frame that cannot be sent (a broken symbolic link, a file of 2 GiB or more) throws <see cref="IOException"/> naming it.</summary>
    public static async Task<FrameSource> OpenAsync(string input, Action? interrupted, CancellationToken cancellationToken)
    {
        if (Directory.Exists(input))
        {
            var files = Directory.EnumerateFiles(input)
                .Where(IsFrame)
                .Order(StringComparer.Ordinal)
                .ToArray();
            foreach (var file in files)
            {
                CheckCanBeSent(file);
            }

            return files.Length > 0 ? new FrameSource(files) : throw new IOException($"No images in {input}.");
        }

        if (!File.Exists(input))
        {
            throw new IOException($"{input} is neither a folder of images nor a video file.");
        }

        var probe = await RunAsync("ffprobe", ["-v", "error", "-select_streams", "v:0", "-count_packets", "-show_entries", "stream=width,height,r_frame_rate,nb_read_packets", "-of", "csv=p=0", input], cancellationToken).ConfigureAwait(false);
        var fields = probe.Trim().Split(',');
        if (fields.Length < 4)
        {
            throw new IOException($"ffprobe could not read a video stream from {input}: {probe}");
        }

        var rate = fields[2].Split('/');
        var fps = double.Parse(rate[0], CultureInfo.InvariantCulture) / (rate.Length > 1 ? double.Parse(rate[1], CultureInfo.InvariantCulture) : 1);
        var ffmpeg = Process.Start(new ProcessStartInfo("ffmpeg", ["-v", "error", "-i", input, "-f", "rawvideo", "-pix_fmt", "rgb24", "-"])
        {
            RedirectStandardOutput = true,
            RedirectStandardError = false,
            UseShellExecute = false,
        }) ?? throw new IOException("ffmpeg could not be started.");
        return new FrameSource(ffmpeg, int.Parse(fields[0], CultureInfo.InvariantCulture), int.Parse(fields[1], CultureInfo.InvariantCulture), int.Parse(fields[3], CultureInfo.InvariantCulture), fps, interrupted);
    }

    /// <summary>The next frame as a contract image, with its RGB24 pixels for overlays; null at the end.</summary>
    public async Task<(Image Image, string Name)?> NextAsync(CancellationToken cancellationToken)
    {
        if (_files is not null)
        {
            if (_next >= _files.Length)
            {
                return null;
            }

            var file = _files[_next++];
            var bytes = await File.ReadAllBytesAsync(file, cancellationToken).ConfigureAwait(false);
            return (new Image { Encoded = ByteString.CopyFrom(bytes) }, Path.GetFileNameWithoutExtension(file));
        }

        var frame = new byte[Width * Height * 3];
        var read = 0;
        var output = _ffmpeg!.StandardOutput.BaseStream;
        while (read < frame.Length)
        {
            var n = await output.ReadAsync(frame.AsMemory(read), cancellationToken).ConfigureAwait(false);
            if (n == 0)
            {
                // The end of the video, or ffmpeg had a signal (a terminal's Ctrl+C reaches it too, perhaps
                // before this process): then the command is interrupted, not at the end of its input.
                await _ffmpeg.WaitForExitAsync(cancellationToken).ConfigureAwait(false);
                if (_ffmpeg.ExitCode == OverlaySink.InterruptedExitCode && _interrupted is { } interrupted)
                {
                    interrupted();
                    cancellationToken.ThrowIfCancellationRequested();
                }

                return null;
            }

            read += n;
        }

        var name = $"frame_{_next++:D6}";
        return (new Image { Raw = new RawFrame { Width = (uint)Width, Height = (uint)Height, PixelFormat = PixelFormat.Rgb24, Data = UnsafeByteOperations.UnsafeWrap(frame) } }, name);
    }

    public async ValueTask DisposeAsync()
    {
        if (_ffmpeg is not null)
        {
            if (!_ffmpeg.HasExited)
            {
                _ffmpeg.Kill();
            }

            await _ffmpeg.WaitForExitAsync().ConfigureAwait(false);
            _ffmpeg.Dispose();
        }
    }

    // A frame that can be seen now not to go is refused before any is sent, as the examples do, rather than
    // ending the stream when its turn comes. Directory.EnumerateFiles lists a broken symbolic link as a file
    // (and File.Exists says it is one), so its target is looked for here.
    private static void CheckCanBeSent(string file)
    {
        var info = new FileInfo(file);
        if (info.LinkTarget is { } target)
        {
            FileSystemInfo? final;
            try
            {
                final = info.ResolveLinkTarget(returnFinalTarget: true);
            }
            catch (IOException)
            {
                // A loop of links ("Too many levels of symbolic links"); a missing target comes back as one
                // that does not exist.
                final = null;
            }

            info = final is FileInfo { Exists: true } found ? found : throw new IOException($"{file} is a broken symbolic link (to {target})");
        }

        // A frame is read into one array and sent as one protobuf message: neither holds 2 GiB.
        if (info.Length > Array.MaxLength)
        {
            throw new IOException($"{file} is {info.Length} bytes: a frame is sent as one message, which holds less than 2 GiB");
        }
    }

    // Ground truth and predictions kept beside frames (frame_000_semantic.png, 0000_pred_semantic.png)
    // are not frames.
    private static bool IsFrame(string file)
    {
        var stem = Path.GetFileNameWithoutExtension(file);
        return s_imageExtensions.Contains(Path.GetExtension(file).ToLowerInvariant())
            && !stem.EndsWith("_semantic", StringComparison.Ordinal)
            && !stem.EndsWith("_panoptic", StringComparison.Ordinal)
            && !stem.Contains("_pred", StringComparison.Ordinal);
    }

    internal static async Task<string> RunAsync(string program, IEnumerable<string> args, CancellationToken cancellationToken)
    {
        using var process = Process.Start(new ProcessStartInfo(program, args) { RedirectStandardOutput = true, RedirectStandardError = true, UseShellExecute = false })
            ?? throw new IOException($"{program} could not be started.");
        var output = process.StandardOutput.ReadToEndAsync(cancellationToken);
        var error = process.StandardError.ReadToEndAsync(cancellationToken);
        await process.WaitForExitAsync(cancellationToken).ConfigureAwait(false);
        return process.ExitCode == 0 ? await output.ConfigureAwait(false) : throw new IOException($"{program} failed: {await error.ConfigureAwait(false)}");
    }
}
