using System.Buffers;
using System.Buffers.Binary;
using System.IO.Compression;
using System.IO.Hashing;
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
/// fixed row filter instead of trying all five per row (ImageSharp's adaptive filtering). Label maps are
/// long runs of few values and most pixels repeat the one above, so the Up filter turns them into zeros.
/// By default the rows are deflated by <see cref="RunDeflater"/>, which only looks at the pixels that
/// differ from the row above and sends runs of zeros as a few matches: its time follows the boundaries,
/// not the area (<c>MaskFormer.Benchmarks encode</c>: about 0.3 ms for a 1920x1080 map, against 1.2-2 ms
/// for zlib at any level and 20-50 ms for ImageSharp). The zlib overloads are kept for comparison. One
/// IDAT chunk; any PNG decoder reads it.
/// </summary>
internal static class LabelPngWriter
{
    private static readonly byte[] s_signature = [0x89, (byte)'P', (byte)'N', (byte)'G', 0x0D, 0x0A, 0x1A, 0x0A];

    /// <summary>
    /// Grey 8-bit (<paramref name="bitsPerPixel"/> 8), grey 16-bit (16), or COCO panoptic RGB ids (24),
    /// deflated by <see cref="RunDeflater"/>.
    /// </summary>
    public static byte[] Write(LabelMap map, int bitsPerPixel, PngRowFilter filter = PngRowFilter.Up)
    {
        var bytesPerPixel = bitsPerPixel / 8;
        var rowLength = map.Width * bytesPerPixel;
        var line = EngineArrayPool<byte>.Shared.Rent(rowLength + 1);
        var packed = EngineArrayPool<byte>.Shared.Rent(rowLength);
        var previousPacked = EngineArrayPool<byte>.Shared.Rent(rowLength);
        var zeros = EngineArrayPool<ushort>.Shared.Rent(map.Width);
        using var deflater = new RunDeflater((rowLength / 64) * map.Height);
        try
        {
            zeros.AsSpan(0, map.Width).Clear();
            previousPacked.AsSpan(0, rowLength).Clear();
            for (var y = 0; y < map.Height; y++)
            {
                var target = line.AsSpan(0, rowLength + 1);
                target[0] = (byte)filter;
                if (filter == PngRowFilter.Up)
                {
                    WriteUp(map.Row(y), y == 0 ? zeros.AsSpan(0, map.Width) : map.Row(y - 1), target, bitsPerPixel, deflater);
                    continue;
                }

                Pack(map.Row(y), packed.AsSpan(0, rowLength), bitsPerPixel);
                Filter(packed.AsSpan(0, rowLength), previousPacked.AsSpan(0, rowLength), target[1..], filter, bytesPerPixel);
                (packed, previousPacked) = (previousPacked, packed);
                deflater.Write(target, 0, bytesPerPixel);
            }

            deflater.Finish();
            return Png(map.Width, map.Height, bitsPerPixel, deflater.Written);
        }
        finally
        {
            EngineArrayPool<byte>.Shared.Return(line);
            EngineArrayPool<byte>.Shared.Return(packed);
            EngineArrayPool<byte>.Shared.Return(previousPacked);
            EngineArrayPool<ushort>.Shared.Return(zeros);
        }
    }

    /// <summary>As <see cref="Write(LabelMap, int, PngRowFilter)"/>, deflated by zlib at <paramref name="level"/>.</summary>
    public static byte[] Write(LabelMap map, int bitsPerPixel, PngRowFilter filter, CompressionLevel level) =>
        Write(map, bitsPerPixel, filter, level switch
        {
            CompressionLevel.NoCompression => new ZLibCompressionOptions { CompressionLevel = 0 },
            CompressionLevel.Fastest => new ZLibCompressionOptions { CompressionLevel = 1 },
            CompressionLevel.SmallestSize => new ZLibCompressionOptions { CompressionLevel = 9 },
            _ => new ZLibCompressionOptions { CompressionLevel = 6 },
        });

    /// <summary>As the other overload, with zlib's level and strategy given.</summary>
    public static byte[] Write(LabelMap map, int bitsPerPixel, PngRowFilter filter, ZLibCompressionOptions options)
    {
        var bytesPerPixel = bitsPerPixel / 8;
        var rowLength = map.Width * bytesPerPixel;
        var current = EngineArrayPool<byte>.Shared.Rent(rowLength + 1);
        var previous = EngineArrayPool<byte>.Shared.Rent(rowLength);
        var filtered = EngineArrayPool<byte>.Shared.Rent(rowLength + 1);
        try
        {
            using var output = new MemoryStream(Math.Max(1024, map.Width * map.Height / 16));
            using (var zlib = new ZLibStream(output, options, leaveOpen: true))
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

            return Png(map.Width, map.Height, bitsPerPixel, output.GetBuffer().AsSpan(0, (int)output.Length));
        }
        finally
        {
            EngineArrayPool<byte>.Shared.Return(current);
            EngineArrayPool<byte>.Shared.Return(previous);
            EngineArrayPool<byte>.Shared.Return(filtered);
        }
    }

    private static byte[] Png(int width, int height, int bitsPerPixel, ReadOnlySpan<byte> zlibStream)
    {
        var png = new byte[s_signature.Length + (12 + 13) + (12 + zlibStream.Length) + 12];
        s_signature.CopyTo(png, 0);
        var at = s_signature.Length;
        Span<byte> header = stackalloc byte[13];
        BinaryPrimitives.WriteInt32BigEndian(header, width);
        BinaryPrimitives.WriteInt32BigEndian(header[4..], height);
        header[8] = bitsPerPixel == 24 ? (byte)8 : (byte)bitsPerPixel;
        header[9] = bitsPerPixel == 24 ? (byte)2 : (byte)0; // colour type: RGB or grey
        at += WriteChunk(png.AsSpan(at), "IHDR"u8, header);
        at += WriteChunk(png.AsSpan(at), "IDAT"u8, zlibStream);
        WriteChunk(png.AsSpan(at), "IEND"u8, []);
        return png;
    }

    private static int WriteChunk(Span<byte> target, ReadOnlySpan<byte> type, ReadOnlySpan<byte> data)
    {
        BinaryPrimitives.WriteInt32BigEndian(target, data.Length);
        type.CopyTo(target[4..]);
        data.CopyTo(target[8..]);
        // The CRC-32 of PNG (ISO 3309) over chunk type and data. The library's is vectorised: 4 µs for
        // 60 KB of IDAT (a 1920x1080 map's two PNGs), where a byte-by-byte table walk took 130 µs.
        BinaryPrimitives.WriteUInt32BigEndian(target[(8 + data.Length)..], Crc32.HashToUInt32(target.Slice(4, 4 + data.Length)));
        return 12 + data.Length;
    }

    // Deflates a row (filter type byte, then the Up filter of its packed ids) without filtering or
    // scanning the pixels that repeat the one above: their filtered bytes are zeros, handed to the
    // deflater as a count. Only the pixels that differ are packed, subtracted (per byte, mod 256) and
    // written, each stretch able to repeat the pixel before it, so the cost follows the boundaries.
    private static void WriteUp(ReadOnlySpan<ushort> ids, ReadOnlySpan<ushort> above, Span<byte> line, int bitsPerPixel, RunDeflater deflater)
    {
        var bytesPerPixel = bitsPerPixel / 8;
        var written = 0;
        for (var x = 0; x < ids.Length;)
        {
            var same = ids[x..].CommonPrefixLength(above[x..]);
            if (same > 0)
            {
                var start = 1 + (x * bytesPerPixel);
                deflater.Write(line[..start], written, bytesPerPixel);
                deflater.WriteZeros(same * bytesPerPixel);
                x += same;
                written = 1 + (x * bytesPerPixel);

                // The next stretch's matches may look one pixel back, at the last of these zeros.
                line[(written - bytesPerPixel)..written].Clear();
            }

            for (; x < ids.Length && ids[x] != above[x]; x++)
            {
                int id = ids[x], up = above[x], at = 1 + (x * bytesPerPixel);
                switch (bitsPerPixel)
                {
                    case 8:
                        line[at] = (byte)(id - up);
                        break;
                    case 16:
                        // PNG samples are big-endian.
                        line[at] = (byte)((id >> 8) - (up >> 8));
                        line[at + 1] = (byte)(id - up);
                        break;
                    default:
                        // COCO panoptic: id = R + 256 G + 65536 B; ids are 16-bit here, so B is 0.
                        line[at] = (byte)(id - up);
                        line[at + 1] = (byte)((id >> 8) - (up >> 8));
                        line[at + 2] = 0;
                        break;
                }
            }
        }

        deflater.Write(line[..(1 + (ids.Length * bytesPerPixel))], written, bytesPerPixel);
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
}
