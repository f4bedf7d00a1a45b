using System.IO.Compression;
using MaskFormer.Engine.Encoding;
using MaskFormer.Engine.Postprocessing;

namespace MaskFormer.Engine.Tests.Encoding;

public sealed class RunDeflaterTests
{
    public static TheoryData<int> Periods() => [1, 2, 3];

    [Theory]
    [MemberData(nameof(Periods))]
    public void Write_ZeroRunsRepeatsAndNoise_ZlibInflatesTheSameBytesWithAValidChecksum(int period)
    {
        var random = new Random(period);
        var chunks = new List<byte[]>();
        foreach (var run in new[] { 1, 2, 3, 4, 257, 258, 259, 260, 261, 262, 516, 517, 6000, 70000 })
        {
            chunks.Add(new byte[run]);
            chunks.Add([.. Enumerable.Range(0, run % 7).Select(_ => (byte)random.Next(1, 256))]);
            var pixel = Enumerable.Range(0, period).Select(_ => (byte)random.Next(256)).ToArray();
            chunks.Add([.. Enumerable.Range(0, run).Select(i => pixel[i % period])]);
            var noise = new byte[run % 300];
            random.NextBytes(noise);
            chunks.Add(noise);
        }

        using var deflater = new RunDeflater(64);
        foreach (var chunk in chunks)
        {
            deflater.Write(chunk, period);
        }

        deflater.Finish();

        Assert.Equal(chunks.SelectMany(c => c).ToArray(), Inflate(deflater.Written.ToArray()));
    }

    [Fact]
    public void Write_Nothing_InflatesToNothing()
    {
        using var deflater = new RunDeflater(0);
        deflater.Finish();

        Assert.Empty(Inflate(deflater.Written.ToArray()));
    }

    [Fact]
    public void Write_OnlyZeros_ChecksumOfTheWholeRunStillRight()
    {
        // Over 5552 bytes the checksum's sums are reduced in closed form, never byte by byte.
        var data = new byte[1 << 20];
        data[^1] = 9;
        using var deflater = new RunDeflater(16);
        deflater.Write(data.AsSpan(0, 100), 1);
        deflater.Write(data.AsSpan(100), 1);
        deflater.Finish();

        Assert.Equal(data, Inflate(deflater.Written.ToArray()));
        // One 13-bit match (length 258, distance 1) per 258 zeros.
        Assert.True(deflater.Written.Length < ((1 << 20) / 258 * 13 / 8) + 64, $"a megabyte of zeros took {deflater.Written.Length} bytes");
    }

    [Fact]
    public void Write_ManyShortZeroRunsBetweenFewBytes_ChecksumStillRight()
    {
        // Runs of zeros, each shorter than the checksum's reduction bound but together far over it,
        // between too few other bytes to reduce the sums on their own: a label map's unchanged pixels
        // between boundaries.
        using var deflater = new RunDeflater(16);
        var written = new List<byte>();
        for (var i = 0; i < 4000; i++)
        {
            byte[] chunk = [(byte)(250 - (i % 7)), .. new byte[200 + (i % 13)]];
            deflater.Write(chunk, 1);
            written.AddRange(chunk);
        }

        deflater.Finish();

        Assert.Equal(written.ToArray(), Inflate(deflater.Written.ToArray()));
    }

    public static TheoryData<int, int> Settings()
    {
        var data = new TheoryData<int, int>();
        foreach (var bits in new[] { 8, 16, 24 })
        {
            foreach (var filter in Enum.GetValues<PngRowFilter>())
            {
                data.Add(bits, (int)filter);
            }
        }

        return data;
    }

    [Theory]
    [MemberData(nameof(Settings))]
    public void LabelPngWriter_BlocksBoundariesAndNoise_DecodesToTheSameIds(int bits, int filterType)
    {
        var filter = (PngRowFilter)filterType;
        var maxId = bits == 8 ? 255 : 65535;
        using var map = Blocks(777, 131, maxId, seed: bits + filterType);

        var png = LabelPngWriter.Write(map, bits, filter);

        Assert.Equal(map.Values.ToArray(), LabelPngWriterTests.Decode(png, bits));
        AssertChunkCrcs(png);
    }

    [Theory]
    [InlineData(8)]
    [InlineData(16)]
    [InlineData(24)]
    public void LabelPngWriter_UniformAndEmptyRows_DecodesToTheSameIds(int bits)
    {
        using var zero = new LabelMap(1031, 9);
        using var uniform = new LabelMap(1, 300);
        uniform.Values.Fill(bits == 8 ? (ushort)200 : (ushort)40000);

        Assert.Equal(zero.Values.ToArray(), LabelPngWriterTests.Decode(LabelPngWriter.Write(zero, bits), bits));
        Assert.Equal(uniform.Values.ToArray(), LabelPngWriterTests.Decode(LabelPngWriter.Write(uniform, bits), bits));
    }

    [Theory]
    [InlineData(8)]
    [InlineData(16)]
    [InlineData(24)]
    public void LabelPngWriter_ChangeRightOfAPixelThatChangedOnlyInTheRowAbove_DecodesToTheSameIds(int bits)
    {
        // Row 1 changes columns 4-11 by v; row 2 keeps column 4 and changes 5-11 by v again. Row 2's
        // filtered bytes repeat the pixel before them only if that unchanged pixel counts as zeros,
        // not as what row 1 filtered there.
        var v = bits == 8 ? (ushort)7 : (ushort)0x0101;
        using var map = new LabelMap(16, 3);
        map.Row(1)[4..12].Fill(v);
        map.Row(2)[4] = v;
        map.Row(2)[5..12].Fill((ushort)(2 * v));

        Assert.Equal(map.Values.ToArray(), LabelPngWriterTests.Decode(LabelPngWriter.Write(map, bits), bits));
    }

    // Large blocks of a few ids with slanted edges (as label maps are), a noisy band, every extreme id.
    private static LabelMap Blocks(int width, int height, int maxId, int seed)
    {
        var random = new Random(seed);
        var map = new LabelMap(width, height);
        var ids = Enumerable.Range(0, 5).Select(_ => (ushort)random.Next(maxId + 1)).Append((ushort)0).ToArray();
        for (var y = 0; y < height; y++)
        {
            for (var x = 0; x < width; x++)
            {
                map.Row(y)[x] = y > 40 && y < 43 ? (ushort)random.Next(maxId + 1) : ids[((x + y) / 300) % ids.Length];
            }
        }

        map.Values[0] = (ushort)maxId;
        map.Values[1] = 0;
        return map;
    }

    private static byte[] Inflate(byte[] zlib)
    {
        using var input = new ZLibStream(new MemoryStream(zlib), CompressionMode.Decompress);
        using var output = new MemoryStream();
        input.CopyTo(output);
        return output.ToArray();
    }

    private static void AssertChunkCrcs(byte[] png)
    {
        for (var at = 8; at < png.Length;)
        {
            var length = System.Buffers.Binary.BinaryPrimitives.ReadInt32BigEndian(png.AsSpan(at));
            var expected = System.Buffers.Binary.BinaryPrimitives.ReadUInt32BigEndian(png.AsSpan(at + 8 + length));
            Assert.Equal(expected, BitwiseCrc32(png.AsSpan(at + 4, 4 + length)));
            at += 12 + length;
        }
    }

    // CRC-32 (ISO 3309) bit by bit, as PNG's specification defines it.
    private static uint BitwiseCrc32(ReadOnlySpan<byte> data)
    {
        var crc = 0xFFFFFFFFu;
        foreach (var b in data)
        {
            crc ^= b;
            for (var k = 0; k < 8; k++)
            {
                crc = (crc & 1) != 0 ? 0xEDB88320u ^ (crc >> 1) : crc >> 1;
            }
        }

        return ~crc;
    }
}
