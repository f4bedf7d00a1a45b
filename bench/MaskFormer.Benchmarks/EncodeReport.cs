using System.Diagnostics;
using System.IO.Compression;
using MaskFormer.Engine.Encoding;
using MaskFormer.Engine.Postprocessing;
using SixLabors.ImageSharp;
using SixLabors.ImageSharp.Formats.Png;
using SixLabors.ImageSharp.PixelFormats;
using SixLabors.ImageSharp.Processing;

namespace MaskFormer.Benchmarks;

/// <summary>
/// PNG settings for label data, side by side: ImageSharp as the service used it (adaptive filter,
/// BestSpeed) against the label writer's fixed filters at zlib's fastest and default levels (and its RLE
/// strategy) and against the run deflater the service uses, on real
/// ground-truth maps (held-out 0000, nearest-neighbour scaled) at 512x512 and 1920x1080.
/// </summary>
internal static class EncodeReport
{
    public static IReadOnlyList<string> Run(int repeats)
    {
        var lines = new List<string>
        {
            "| map | size | encoder | filter | level | median ms | KiB |",
            "| --- | --- | --- | --- | --- | ---: | ---: |",
        };
        foreach (var (width, height) in new[] { (512, 512), (1920, 1080) })
        {
            foreach (var panoptic in new[] { false, true })
            {
                using var map = GroundTruth(panoptic, width, height);
                var bits = panoptic ? 24 : 8;
                var name = panoptic ? "panoptic ids (RGB)" : "semantic labels (8-bit)";
                var imageSharp = Measure(() => ImageSharpPng(map, panoptic), repeats);
                lines.Add($"| {name} | {width}x{height} | ImageSharp 2.1 (before) | adaptive | BestSpeed | {imageSharp.Ms:F2} | {imageSharp.Bytes / 1024.0:F1} |");
                foreach (var filter in Enum.GetValues<PngRowFilter>())
                {
                    foreach (var level in new[] { CompressionLevel.Fastest, CompressionLevel.Optimal })
                    {
                        var own = Measure(() => LabelPngWriter.Write(map, bits, filter, level), repeats);
                        lines.Add($"| {name} | {width}x{height} | label writer | {filter} | {level} | {own.Ms:F2} | {own.Bytes / 1024.0:F1} |");
                    }

                    foreach (var (zlevel, strategy) in new[] { (1, ZLibCompressionStrategy.RunLengthEncoding), (6, ZLibCompressionStrategy.RunLengthEncoding) })
                    {
                        var zoptions = new ZLibCompressionOptions { CompressionLevel = zlevel, CompressionStrategy = strategy };
                        var own = Measure(() => LabelPngWriter.Write(map, bits, filter, zoptions), repeats);
                        lines.Add($"| {name} | {width}x{height} | label writer | {filter} | zlib {zlevel} {strategy} | {own.Ms:F2} | {own.Bytes / 1024.0:F1} |");
                    }

                    var runs = Measure(() => LabelPngWriter.Write(map, bits, filter), repeats);
                    lines.Add($"| {name} | {width}x{height} | label writer | {filter} | run deflater | {runs.Ms:F2} | {runs.Bytes / 1024.0:F1} |");
                }
            }
        }

        return lines;
    }

    private static (double Ms, int Bytes) Measure(Func<byte[]> encode, int repeats)
    {
        var bytes = encode().Length;
        var times = new List<double>();
        for (var i = 0; i < repeats; i++)
        {
            var started = Stopwatch.GetTimestamp();
            encode();
            times.Add(Stopwatch.GetElapsedTime(started).TotalMilliseconds);
        }

        times.Sort();
        return (times[times.Count / 2], bytes);
    }

    private static byte[] ImageSharpPng(LabelMap map, bool panoptic)
    {
        using var stream = new MemoryStream();
        if (panoptic)
        {
            using var image = new Image<Rgb24>(map.Width, map.Height);
            image.ProcessPixelRows(rows =>
            {
                for (var y = 0; y < rows.Height; y++)
                {
                    var source = map.Row(y);
                    var target = rows.GetRowSpan(y);
                    for (var x = 0; x < source.Length; x++)
                    {
                        target[x] = new Rgb24((byte)source[x], (byte)(source[x] >> 8), 0);
                    }
                }
            });
            image.Save(stream, new PngEncoder { ColorType = PngColorType.Rgb, BitDepth = PngBitDepth.Bit8, CompressionLevel = PngCompressionLevel.BestSpeed });
        }
        else
        {
            using var image = new Image<L8>(map.Width, map.Height);
            image.ProcessPixelRows(rows =>
            {
                for (var y = 0; y < rows.Height; y++)
                {
                    var source = map.Row(y);
                    var target = rows.GetRowSpan(y);
                    for (var x = 0; x < source.Length; x++)
                    {
                        target[x] = new L8((byte)source[x]);
                    }
                }
            });
            image.Save(stream, new PngEncoder { ColorType = PngColorType.Grayscale, BitDepth = PngBitDepth.Bit8, CompressionLevel = PngCompressionLevel.BestSpeed });
        }

        return stream.ToArray();
    }

    private static LabelMap GroundTruth(bool panoptic, int width, int height)
    {
        var file = Path.Combine(RepositoryPaths.HeldOut, panoptic ? "0000_panoptic.png" : "0000_semantic.png");
        using var image = Image.Load<Rgb24>(file);
        image.Mutate(x => x.Resize(width, height, KnownResamplers.NearestNeighbor));
        var map = new LabelMap(width, height);
        image.ProcessPixelRows(rows =>
        {
            for (var y = 0; y < rows.Height; y++)
            {
                var source = rows.GetRowSpan(y);
                var target = map.Row(y);
                for (var x = 0; x < source.Length; x++)
                {
                    target[x] = panoptic ? (ushort)(source[x].R + (256 * source[x].G)) : source[x].R;
                }
            }
        });
        return map;
    }
}
