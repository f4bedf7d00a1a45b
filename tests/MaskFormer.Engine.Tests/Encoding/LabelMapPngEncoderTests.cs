using System.Buffers.Binary;
using System.Runtime.InteropServices;
using MaskFormer.Engine.Encoding;
using MaskFormer.Engine.Postprocessing;
using SixLabors.ImageSharp;
using SixLabors.ImageSharp.PixelFormats;

namespace MaskFormer.Engine.Tests.Encoding;

public sealed class LabelMapPngEncoderTests
{
    [Theory]
    [InlineData(1, 8)]
    [InlineData(150, 8)]
    [InlineData(256, 8)]
    [InlineData(257, 16)]
    [InlineData(4000, 16)]
    public void BitsPerPixel_ByTheModelsLabelCount_EightUpTo256Labels(int labelCount, int bits)
    {
        Assert.Equal(bits, LabelMapPngEncoder.BitsPerPixel(labelCount));
    }

    [Theory]
    [InlineData(8, 255)]
    [InlineData(16, 4000)]
    public void EncodePng_RandomMap_DecodesToTheSameIdsAtThatDepth(int bits, int maxId)
    {
        using var map = RandomMap(37, 23, maxId, seed: bits);

        var png = LabelMapPngEncoder.EncodePng(map, bits);

        Assert.Equal(bits, png[24]); // IHDR bit depth
        Assert.Equal(0, png[25]); // IHDR colour type: grey
        using var decoded = SixLabors.ImageSharp.Image.Load<L16>(png);
        var values = new List<ushort>();
        decoded.ProcessPixelRows(rows =>
        {
            for (var y = 0; y < rows.Height; y++)
            {
                // ImageSharp widens 8-bit grey v to v * 257.
                values.AddRange(MemoryMarshal.Cast<L16, ushort>(rows.GetRowSpan(y)).ToArray().Select(v => bits == 8 ? (ushort)(v / 257) : v));
            }
        });
        Assert.Equal(map.Values.ToArray(), values);
    }

    [Fact]
    public void EncodeRaw_SixteenBit_RowMajorLittleEndian()
    {
        using var map = RandomMap(5, 3, 60000, seed: 3);

        var raw = LabelMapPngEncoder.EncodeRaw(map, 16);

        Assert.Equal(map.Values.Length * 2, raw.Length);
        for (var i = 0; i < map.Values.Length; i++)
        {
            Assert.Equal(map.Values[i], BinaryPrimitives.ReadUInt16LittleEndian(raw.AsSpan(i * 2)));
        }
    }

    private static LabelMap RandomMap(int width, int height, int maxId, int seed)
    {
        var random = new Random(seed);
        var map = new LabelMap(width, height);
        for (var i = 0; i < map.Values.Length; i++)
        {
            map.Values[i] = (ushort)random.Next(maxId + 1);
        }

        map.Values[0] = (ushort)maxId;
        return map;
    }
}
