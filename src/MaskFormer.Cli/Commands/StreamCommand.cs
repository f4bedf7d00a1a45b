using System.Diagnostics;
using Grpc.Core;
using Grpc.Net.Client;
using MaskFormer.Cli.Rendering;
using MaskFormer.Contracts.V1;
using SixLabors.ImageSharp;
using SixLabors.ImageSharp.PixelFormats;
using Spectre.Console;

namespace MaskFormer.Cli.Commands;

/// <summary>
/// <c>maskformer stream INPUT</c>: streams a video (decoded by ffmpeg) or a folder of images through
/// SegmentStream, shows frames per second, latency and skipped frames live, and writes an overlay
/// video (ffmpeg, when --out ends in .mp4/.mkv/.webm) or overlay PNGs (otherwise).
/// </summary>
internal static class StreamCommand
{
    public const string Usage = "maskformer stream INPUT(video|folder) [--server URL] [--out out.mp4|DIR] [--policy queue|drop-oldest|latest-only] [--in-flight N] [--fps N] [--panoptic]";

    public static async Task<int> RunAsync(CommandArguments args, CancellationToken cancellationToken)
    {
        if (args.Positional.Count != 1)
        {
            await Console.Error.WriteLineAsync($"usage: {Usage}").ConfigureAwait(false);
            return 2;
        }

        var policy = args.Get("policy", "queue") switch
        {
            "queue" => OverloadPolicy.Queue,
            "drop-oldest" => OverloadPolicy.DropOldest,
            "latest-only" => OverloadPolicy.LatestOnly,
            var other => throw new FormatException($"--policy {other}: use queue, drop-oldest or latest-only."),
        };
        var panoptic = args.Get("panoptic", "false") == "true";
        var pacing = args.GetDouble("fps", 0);
        await using var source = await FrameSource.OpenAsync(args.Positional[0], cancellationToken).ConfigureAwait(false);
        await using var sink = new OverlaySink(args.Get("out", "stream-out"), source.FramesPerSecond);

        using var channel = GrpcChannel.ForAddress(args.ServerAddress);
        var client = new SegmentationService.SegmentationServiceClient(channel);
        using var call = client.SegmentStream(cancellationToken: cancellationToken);
        var config = new StreamConfig { OverloadPolicy = policy, MaxInFlight = (uint)args.GetDouble("in-flight", 4) };
        config.Tasks.Add(panoptic ? SegmentationTask.Panoptic : SegmentationTask.Semantic);
        await call.RequestStream.WriteAsync(new SegmentStreamRequest { Config = config }, cancellationToken).ConfigureAwait(false);

        var stats = new StreamStats();
        var sentAt = new Dictionary<ulong, (long Timestamp, Contracts.V1.Image Image, string Name)>();
        var sync = new Lock();
        var clock = Stopwatch.StartNew();

        await AnsiConsole.Progress()
            .AutoClear(false)
            .Columns(new TaskDescriptionColumn(), new ProgressBarColumn(), new PercentageColumn(), new ElapsedTimeColumn())
            .StartAsync(async progress =>
            {
                var task = progress.AddTask("streaming", maxValue: source.Count > 0 ? source.Count : 1);
                var sending = Task.Run(
                    async () =>
                    {
                        ulong id = 0;
                        while (await source.NextAsync(cancellationToken).ConfigureAwait(false) is { } frame)
                        {
                            lock (sync)
                            {
                                sentAt[id] = (Stopwatch.GetTimestamp(), frame.Image, frame.Name);
                            }

                            await call.RequestStream.WriteAsync(new SegmentStreamRequest { Frame = new StreamFrame { FrameId = id++, Image = frame.Image } }, cancellationToken).ConfigureAwait(false);
                            if (pacing > 0)
                            {
                                await Task.Delay(TimeSpan.FromSeconds(1 / pacing), cancellationToken).ConfigureAwait(false);
                            }
                        }

                        await call.RequestStream.CompleteAsync().ConfigureAwait(false);
                    },
                    cancellationToken);

                await foreach (var response in call.ResponseStream.ReadAllAsync(cancellationToken).ConfigureAwait(false))
                {
                    (long Timestamp, Contracts.V1.Image Image, string Name) sent;
                    lock (sync)
                    {
                        sent = sentAt[response.FrameId];
                        sentAt.Remove(response.FrameId);
                    }

                    stats.Record(response, Stopwatch.GetElapsedTime(sent.Timestamp));
                    await sink.WriteAsync(sent.Image, sent.Name, response, cancellationToken).ConfigureAwait(false);
                    task.Increment(1);
                    task.Description = stats.Describe(clock.Elapsed);
                }

                await sending.ConfigureAwait(false);
                task.Value = task.MaxValue;
            }).ConfigureAwait(false);

        AnsiConsole.MarkupLineInterpolated($"[green]{stats.Describe(clock.Elapsed)}[/]; overlays in {sink.Destination}");
        return stats.Errors == 0 ? 0 : 1;
    }

    private sealed class StreamStats
    {
        private readonly List<double> _latencies = [];

        public int Results { get; private set; }

        public int Errors { get; private set; }

        public int Skipped { get; private set; }

        public void Record(SegmentStreamResponse response, TimeSpan latency)
        {
            switch (response.OutcomeCase)
            {
                case SegmentStreamResponse.OutcomeOneofCase.Result:
                    Results++;
                    _latencies.Add(latency.TotalMilliseconds);
                    break;
                case SegmentStreamResponse.OutcomeOneofCase.Error:
                    Errors++;
                    break;
                default:
                    Skipped++;
                    break;
            }
        }

        public string Describe(TimeSpan elapsed)
        {
            var sorted = _latencies.Order().ToArray();
            var p50 = sorted.Length > 0 ? sorted[sorted.Length / 2] : 0;
            var p95 = sorted.Length > 0 ? sorted[(int)(sorted.Length * 0.95)] : 0;
            return $"{Results} done, {Skipped} skipped, {Errors} errors | {Results / Math.Max(elapsed.TotalSeconds, 1e-3):F1} fps | latency p50 {p50:F0} ms p95 {p95:F0} ms";
        }
    }

    /// <summary>Writes overlays: to an ffmpeg-encoded video, or as PNGs in a folder.</summary>
    private sealed class OverlaySink(string destination, double fps) : IAsyncDisposable
    {
        private static readonly string[] s_videoExtensions = [".mp4", ".mkv", ".webm", ".avi"];
        private Process? _ffmpeg;
        private (int Width, int Height) _size;

        public string Destination { get; } = destination;

        public async Task WriteAsync(Contracts.V1.Image image, string name, SegmentStreamResponse response, CancellationToken cancellationToken)
        {
            using var frame = ToImage(image);
            using var overlay = response.Result is { } result ? Overlay(frame, result) : frame.Clone();
            if (!s_videoExtensions.Contains(Path.GetExtension(Destination).ToLowerInvariant()))
            {
                Directory.CreateDirectory(Destination);
                await overlay.SaveAsPngAsync(Path.Combine(Destination, $"{name}.overlay.png"), cancellationToken).ConfigureAwait(false);
                return;
            }

            _ffmpeg ??= StartEncoder(overlay.Width, overlay.Height);
            if ((overlay.Width, overlay.Height) != _size)
            {
                throw new InvalidDataException($"Frame {name} is {overlay.Width}x{overlay.Height}; the video is {_size.Width}x{_size.Height}.");
            }

            var pixels = new byte[overlay.Width * overlay.Height * 3];
            overlay.CopyPixelDataTo(pixels);
            await _ffmpeg.StandardInput.BaseStream.WriteAsync(pixels, cancellationToken).ConfigureAwait(false);
        }

        public async ValueTask DisposeAsync()
        {
            if (_ffmpeg is not null)
            {
                _ffmpeg.StandardInput.Close();
                await _ffmpeg.WaitForExitAsync().ConfigureAwait(false);
                _ffmpeg.Dispose();
            }
        }

        private Process StartEncoder(int width, int height)
        {
            _size = (width, height);
            return Process.Start(new ProcessStartInfo("ffmpeg", ["-v", "error", "-y", "-f", "rawvideo", "-pix_fmt", "rgb24", "-s", $"{width}x{height}", "-r", fps.ToString(System.Globalization.CultureInfo.InvariantCulture), "-i", "-", "-pix_fmt", "yuv420p", Destination])
            {
                RedirectStandardInput = true,
                UseShellExecute = false,
            }) ?? throw new IOException("ffmpeg could not be started.");
        }

        private static Image<Rgb24> ToImage(Contracts.V1.Image image) => image.SourceCase == Contracts.V1.Image.SourceOneofCase.Raw
            ? SixLabors.ImageSharp.Image.LoadPixelData<Rgb24>(image.Raw.Data.Span, (int)image.Raw.Width, (int)image.Raw.Height)
            : SixLabors.ImageSharp.Image.Load<Rgb24>(image.Encoded.Span);

        // Semantic maps are coloured by class; panoptic segments by track id, so an object keeps its colour.
        private static Image<Rgb24> Overlay(Image<Rgb24> frame, SegmentResponse result)
        {
            ushort[] ids;
            if (result.Panoptic is { } panoptic)
            {
                using var png = SixLabors.ImageSharp.Image.Load<Rgb24>(panoptic.SegmentIdPng.Span);
                var trackBySegment = panoptic.Segments.ToDictionary(s => s.Id, s => (ushort)(s.IsThing ? 32 + s.TrackId : s.CategoryId));
                ids = new ushort[png.Width * png.Height];
                for (var y = 0; y < png.Height; y++)
                {
                    for (var x = 0; x < png.Width; x++)
                    {
                        var p = png[x, y];
                        var segment = (uint)(p.R + (256 * p.G) + (65536 * p.B));
                        ids[(y * png.Width) + x] = trackBySegment.GetValueOrDefault(segment, (ushort)0);
                    }
                }
            }
            else
            {
                ids = OverlayRenderer.DecodeLabelMap(result.Semantic.LabelMap.Data.ToByteArray(), (int)result.Semantic.LabelMap.BitsPerPixel, frame.Width, frame.Height);
            }

            return OverlayRenderer.Blend(frame, ids, 0.5f);
        }
    }
}
