using System.Buffers;
using System.Buffers.Binary;
using System.IO.Compression;
using System.Runtime.InteropServices;
using MaskFormer.Engine.Postprocessing;

namespace MaskFormer.Engine.Encoding;

/// <summary>How a label PNG's rows are filtered before deflate (PNG filter types 0, 1 and 2).</summary>
internal enum PngRowFilter
{
    None = 0,
    Sub = 1,
    Up = 2,
}

/// <summary>
/// A PNG writer for id maps (8/16-bit grey, 8-bit RGB), written for label data rather than photos: one
/// fixed row filter instead of trying all five per row (ImageSharp's adaptive filtering), then zlib.
/// Label maps are long runs of few values and most rows repeat the one above, so the Up filter turns
/// them into zeros that deflate's default level (Optimal) squeezes quickly: measured by
/// <c>MaskFormer.Benchmarks encode</c>, Up + Optimal takes 1.3 ms for a 1920x1080 8-bit map against
/// ImageSharp's 24-40 ms, and writes a third of the bytes. One IDAT chunk; any PNG decoder reads it.
/// </summary>
internal static class LabelPngWriter
{
    private static readonly byte[] s_signature = [0x89, (byte)'P', (byte)'N', (byte)'G', 0x0D, 0x0A, 0x1A, 0x0A];
    private static readonly uint[] s_crcTable = BuildCrcTable();

    /// <summary>Grey 8-bit (<paramref name="bitsPerPixel"/> 8), grey 16-bit (16), or COCO panoptic RGB ids (24).</summary>
    public static byte[] Write(LabelMap map, int bitsPerPixel, PngRowFilter filter = PngRowFilter.Up, CompressionLevel level = CompressionLevel.Optimal)
    {
        var bytesPerPixel = bitsPerPixel / 8;
        var rowLength = map.Width * bytesPerPixel;
        var current = EngineArrayPool<byte>.Shared.Rent(rowLength + 1);
        var previous = EngineArrayPool<byte>.Shared.Rent(rowLength);
        var filtered = EngineArrayPool<byte>.Shared.Rent(rowLength + 1);
        try
        {
            using var output = new MemoryStream(Math.Max(1024, map.Width * map.Height / 16));
            output.Write(s_signature);
            Span<byte> header = stackalloc byte[13];
            BinaryPrimitives.WriteInt32BigEndian(header, map.Width);
            BinaryPrimitives.WriteInt32BigEndian(header[4..], map.Height);
            header[8] = bitsPerPixel == 24 ? (byte)8 : (byte)bitsPerPixel;
            header[9] = bitsPerPixel == 24 ? (byte)2 : (byte)0; // colour type: RGB or grey
            WriteChunk(output, "IHDR"u8, header);

            var idatStart = output.Position;
            output.Write(stackalloc byte[8]); // length and type, filled in below
            using (var zlib = new ZLibStream(output, level, leaveOpen: true))
            {
                previous.AsSpan(0, rowLength).Clear();
                for (var y = 0; y < map.Height; y++)
                {
                    var row = current.AsSpan(0, rowLength);
                    Pack(map.Row(y), row, bitsPerPixel);
                    var line = filtered.AsSpan(0, rowLength + 1);
                    line[0] = (byte)filter;
                    Filter(row, previous.AsSpan(0, rowLength), line[1..], filter, bytesPerPixel);
                    zlib.Write(line);
                    (current, previous) = (previous, current);
                }
            }

            var dataLength = output.Position - idatStart - 8;
            var buffer = output.GetBuffer();
            BinaryPrimitives.WriteInt32BigEndian(buffer.AsSpan((int)idatStart), checked((int)dataLength));
            "IDAT"u8.CopyTo(buffer.AsSpan((int)idatStart + 4));
            Span<byte> crc = stackalloc byte[4];
            BinaryPrimitives.WriteUInt32BigEndian(crc, Crc(buffer.AsSpan((int)idatStart + 4, (int)dataLength + 4)));
            output.Write(crc);
            WriteChunk(output, "IEND"u8, []);
            return output.ToArray();
        }
        finally
        {
            EngineArrayPool<byte>.Shared.Return(current);
            EngineArrayPool<byte>.Shared.Return(previous);
            EngineArrayPool<byte>.Shared.Return(filtered);
        }
    }

    private static void Pack(ReadOnlySpan<ushort> ids, Span<byte> row, int bitsPerPixel)
    {
        switch (bitsPerPixel)
        {
            case 8:
                for (var x = 0; x < ids.Length; x++)
                {
                    row[x] = (byte)ids[x];
                }

                break;
            case 16:
                // PNG samples are big-endian.
                var wide = MemoryMarshal.Cast<byte, ushort>(row);
                if (BitConverter.IsLittleEndian)
                {
                    BinaryPrimitives.ReverseEndianness(ids, wide);
                }
                else
                {
                    ids.CopyTo(wide);
                }

                break;
            default:
                // COCO panoptic: id = R + 256 G + 65536 B; ids are 16-bit here, so B is 0.
                for (int x = 0, i = 0; x < ids.Length; x++, i += 3)
                {
                    row[i] = (byte)ids[x];
                    row[i + 1] = (byte)(ids[x] >> 8);
                    row[i + 2] = 0;
                }

                break;
        }
    }

    private static void Filter(ReadOnlySpan<byte> row, ReadOnlySpan<byte> previous, Span<byte> target, PngRowFilter filter, int bytesPerPixel)
    {
        switch (filter)
        {
            case PngRowFilter.Up:
                System.Numerics.Tensors.TensorPrimitives.Subtract(row, previous, target);
                break;
            case PngRowFilter.Sub:
                row[..bytesPerPixel].CopyTo(target);
                System.Numerics.Tensors.TensorPrimitives.Subtract(row[bytesPerPixel..], row[..^bytesPerPixel], target[bytesPerPixel..]);
                break;
            default:
                row.CopyTo(target);
                break;
        }
    }

    private static void WriteChunk(Stream output, ReadOnlySpan<byte> type, ReadOnlySpan<byte> data)
    {
        Span<byte> word = stackalloc byte[4];
        BinaryPrimitives.WriteInt32BigEndian(word, data.Length);
        output.Write(word);
        var typed = new byte[4 + data.Length];
        type.CopyTo(typed);
        data.CopyTo(typed.AsSpan(4));
        output.Write(typed);
        BinaryPrimitives.WriteUInt32BigEndian(word, Crc(typed));
        output.Write(word);
    }

    // The CRC-32 of PNG (ISO 3309), over chunk type and data.
    private static uint Crc(ReadOnlySpan<byte> data)
    {
        var crc = 0xFFFFFFFFu;
        foreach (var b in data)
        {
            crc = s_crcTable[(crc ^ b) & 0xFF] ^ (crc >> 8);
        }

        return crc ^ 0xFFFFFFFFu;
    }

    private static uint[] BuildCrcTable()
    {
        var table = new uint[256];
        for (var n = 0u; n < 256; n++)
        {
            var c = n;
            for (var k = 0; k < 8; k++)
            {
                c = (c & 1) != 0 ? 0xEDB88320u ^ (c >> 1) : c >> 1;
            }

            table[n] = c;
        }

        return table;
    }
}
