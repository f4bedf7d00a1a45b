using System.IO.Compression;
using System.Runtime.InteropServices;
using MaskFormer.Engine.Encoding;
using MaskFormer.Engine.Postprocessing;
using SixLabors.ImageSharp;
using SixLabors.ImageSharp.PixelFormats;

namespace MaskFormer.Engine.Tests.Encoding;

public sealed class LabelPngWriterTests
{
    public static TheoryData<int, int, CompressionLevel> Settings()
    {
        var data = new TheoryData<int, int, CompressionLevel>();
        foreach (var bits in new[] { 8, 16, 24 })
        {
            foreach (var filter in Enum.GetValues<PngRowFilter>())
            {
                foreach (var level in new[] { CompressionLevel.Fastest, CompressionLevel.Optimal, CompressionLevel.NoCompression })
                {
                    data.Add(bits, (int)filter, level);
                }
            }
        }

        return data;
    }

    [Theory]
    [MemberData(nameof(Settings))]
    public void Write_BlobsAndNoise_DecodesToTheSameIds(int bits, int filterType, CompressionLevel level)
    {
        var filter = (PngRowFilter)filterType;
        var maxId = bits == 8 ? 255 : 65535;
        using var map = Map(203, 67, maxId, seed: bits + (int)filter);

        var png = LabelPngWriter.Write(map, bits, filter, level);

        Assert.Equal(map.Values.ToArray(), Decode(png, bits));
    }

    [Fact]
    public void Write_OnePixel_DecodesToIt()
    {
        using var map = new LabelMap(1, 1);
        map.Values[0] = 300;

        Assert.Equal([300], Decode(LabelPngWriter.Write(map, 16), 16));
    }

    // Runs of a few ids (like label maps) with a noisy band (like boundaries), every extreme id present.
    private static LabelMap Map(int width, int height, int maxId, int seed)
    {
        var random = new Random(seed);
        var map = new LabelMap(width, height);
        var ids = Enumerable.Range(0, 6).Select(_ => (ushort)random.Next(maxId + 1)).ToArray();
        for (var y = 0; y < height; y++)
        {
            for (var x = 0; x < width; x++)
            {
                map.Row(y)[x] = y > height / 2 && y < (height / 2) + 5 ? (ushort)random.Next(maxId + 1) : ids[((x / 17) + (y / 9)) % ids.Length];
            }
        }

        map.Values[0] = (ushort)maxId;
        map.Values[1] = 0;
        return map;
    }

    // Shared with RunDeflaterTests: decodes with ImageSharp and checks the header says what was asked for.
    internal static ushort[] Decode(byte[] png, int bits)
    {
        var values = new List<ushort>();
        if (bits == 24)
        {
            using var rgb = Image.Load<Rgb24>(png);
            rgb.ProcessPixelRows(rows =>
            {
                for (var y = 0; y < rows.Height; y++)
                {
                    foreach (var p in rows.GetRowSpan(y))
                    {
                        Assert.Equal(0, p.B);
                        values.Add((ushort)(p.R + (256 * p.G)));
                    }
                }
            });
            return [.. values];
        }

        Assert.Equal(bits, png[24]); // IHDR bit depth
        Assert.Equal(0, png[25]); // IHDR colour type: grey
        using var grey = Image.Load<L16>(png);
        grey.ProcessPixelRows(rows =>
        {
            for (var y = 0; y < rows.Height; y++)
            {
                // ImageSharp widens 8-bit grey v to v * 257.
                values.AddRange(MemoryMarshal.Cast<L16, ushort>(rows.GetRowSpan(y)).ToArray().Select(v => bits == 8 ? (ushort)(v / 257) : v));
            }
        });
        return [.. values];
    }
}
