using System.Buffers.Binary;
using System.Text;
using SixLabors.ImageSharp;
using SixLabors.ImageSharp.Formats;
using SixLabors.ImageSharp.Formats.Bmp;
using SixLabors.ImageSharp.Formats.Gif;
using SixLabors.ImageSharp.Formats.Jpeg;
using SixLabors.ImageSharp.Formats.Png;
using SixLabors.ImageSharp.Formats.Tga;
using SixLabors.ImageSharp.Formats.Tiff;
using SixLabors.ImageSharp.Formats.Webp;
using SixLabors.ImageSharp.PixelFormats;

namespace MaskFormer.Testing;

/// <summary>
/// Makes well-formed, cut-short, corrupt and oversized images, so the decoder tests, the gRPC catalogue
/// of bad inputs and the fuzzing corpus share one source of hostile files.
/// </summary>
internal static class HostileImages
{
    public static readonly string[] Formats = ["png", "jpeg", "bmp", "gif", "tga", "tiff", "webp", "webp-lossless"];

    /// <summary>An image whose every pixel differs from its neighbours, so any misplaced pixel shows.</summary>
    public static Image<Rgb24> Pattern(int width = 64, int height = 48)
    {
        var image = new Image<Rgb24>(width, height);
        for (var y = 0; y < height; y++)
        {
            for (var x = 0; x < width; x++)
            {
                image[x, y] = new Rgb24((byte)(x * 255 / width), (byte)(y * 255 / height), (byte)((x * 7) ^ (y * 13)));
            }
        }

        return image;
    }

    public static byte[] Encode(Image image, string format)
    {
        using var stream = new MemoryStream();
        image.Save(stream, Encoder(format));
        return stream.ToArray();
    }

    public static byte[] Encode(string format, int width = 64, int height = 48)
    {
        using var image = Pattern(width, height);
        return Encode(image, format);
    }

    public static IImageEncoder Encoder(string format) => format switch
    {
        "png" => new PngEncoder(),
        "jpeg" => new JpegEncoder { Quality = 95 },
        "bmp" => new BmpEncoder { BitsPerPixel = BmpBitsPerPixel.Pixel24 },
        "gif" => new GifEncoder(),
        "tga" => new TgaEncoder { BitsPerPixel = TgaBitsPerPixel.Pixel24, Compression = TgaCompression.None },
        "tga-rle" => new TgaEncoder { BitsPerPixel = TgaBitsPerPixel.Pixel24, Compression = TgaCompression.RunLength },
        "tiff" => new TiffEncoder(),
        "webp" => new WebpEncoder { FileFormat = WebpFileFormatType.Lossy },
        "webp-lossless" => new WebpEncoder { FileFormat = WebpFileFormatType.Lossless },
        _ => throw new ArgumentOutOfRangeException(nameof(format), format, "not a format"),
    };

    public static byte[] Truncate(byte[] data, double fraction) => data[..(int)(data.Length * fraction)];

    /// <summary>A classic little-endian TIFF of 8-bit grey pages, each with its declared size; only page data of 1 pixel per row is present.</summary>
    public static byte[] Tiff(params (int Width, int Height)[] pages)
    {
        using var stream = new MemoryStream();
        using var writer = new BinaryWriter(stream);
        writer.Write("II"u8);
        writer.Write((ushort)42);
        writer.Write(8u);
        for (var page = 0; page < pages.Length; page++)
        {
            var (width, height) = pages[page];
            var ifdAt = (uint)stream.Position;
            const ushort Entries = 8;
            var dataAt = ifdAt + 2 + (Entries * 12) + 4;
            var bytes = (uint)Math.Min((long)width * height, 1 << 16);
            writer.Write(Entries);
            Entry(writer, 256, 4, 1, (uint)width);
            Entry(writer, 257, 4, 1, (uint)height);
            Entry(writer, 258, 3, 1, 8);
            Entry(writer, 259, 3, 1, 1);
            Entry(writer, 262, 3, 1, 1);
            Entry(writer, 273, 4, 1, dataAt);
            Entry(writer, 278, 4, 1, (uint)height);
            Entry(writer, 279, 4, 1, bytes);
            writer.Write(page == pages.Length - 1 ? 0u : dataAt + bytes);
            for (var i = 0; i < bytes; i++)
            {
                writer.Write((byte)(i * 37));
            }
        }

        writer.Flush();
        return stream.ToArray();
    }

    /// <summary>
    /// A one-page TIFF, <paramref name="width"/> x <paramref name="height"/>, of 8-bit RGB (or grey),
    /// compressed with <paramref name="compression"/> (7: JPEG), whose one strip holds <paramref name="strip"/>;
    /// then <paramref name="extraEntries"/> private tags (40000 on, one SHORT each) in its directory, an Exif
    /// directory of <paramref name="exifEntries"/> such tags when more than 0, and <paramref name="rowsPerStrip"/>
    /// rows a strip (default: the height).
    /// </summary>
    public static byte[] TiffWithStrip(int width, int height, byte[] strip, ushort compression = 7, int extraEntries = 0, bool rgb = true, int exifEntries = 0, uint? rowsPerStrip = null)
    {
        using var stream = new MemoryStream();
        using var writer = new BinaryWriter(stream);
        writer.Write("II"u8);
        writer.Write((ushort)42);
        writer.Write(8u);
        var entries = (ushort)(9 + extraEntries + (exifEntries > 0 ? 1 : 0));
        var bitsAt = 8u + 2 + (entries * 12u) + 4;
        var dataAt = bitsAt + 6;
        var exifAt = dataAt + (uint)strip.Length;
        writer.Write(entries);
        Entry(writer, 256, 4, 1, (uint)width);
        Entry(writer, 257, 4, 1, (uint)height);
        if (rgb)
        {
            Entry(writer, 258, 3, 3, bitsAt);
        }
        else
        {
            Entry(writer, 258, 3, 1, 8);
        }

        Entry(writer, 259, 3, 1, compression);
        Entry(writer, 262, 3, 1, rgb ? 2u : 1u);
        Entry(writer, 273, 4, 1, dataAt);
        Entry(writer, 277, 3, 1, rgb ? 3u : 1u);
        Entry(writer, 278, 4, 1, rowsPerStrip ?? (uint)height);
        Entry(writer, 279, 4, 1, (uint)strip.Length);
        if (exifEntries > 0)
        {
            Entry(writer, 34665, 4, 1, exifAt);
        }

        for (var i = 0; i < extraEntries; i++)
        {
            Entry(writer, (ushort)(40000 + i), 3, 1, 1);
        }

        writer.Write(0u);
        writer.Write([8, 0, 8, 0, 8, 0]);
        writer.Write(strip);
        if (exifEntries > 0)
        {
            writer.Write((ushort)exifEntries);
            for (var i = 0; i < exifEntries; i++)
            {
                Entry(writer, (ushort)(40000 + i), 3, 1, 1);
            }

            writer.Write(0u);
        }

        writer.Flush();
        return stream.ToArray();
    }

    /// <summary>
    /// An 8x8 PNG of the pattern whose IHDR declares <paramref name="first"/>, with a second IHDR declaring
    /// <paramref name="second"/> after its first IDAT (ImageSharp 2.1 allocates the first, identifies the last).
    /// </summary>
    public static byte[] PngWithSecondHeader((uint Width, uint Height) first, (uint Width, uint Height) second)
    {
        var data = PngDeclaring(first.Width, first.Height);
        var idat = data.AsSpan().IndexOf("IDAT"u8) - 4;
        var idatEnd = idat + 12 + (int)BinaryPrimitives.ReadUInt32BigEndian(data.AsSpan(idat));
        var header = data.AsSpan(8, 25).ToArray();
        BinaryPrimitives.WriteUInt32BigEndian(header.AsSpan(8), second.Width);
        BinaryPrimitives.WriteUInt32BigEndian(header.AsSpan(12), second.Height);
        BinaryPrimitives.WriteUInt32BigEndian(header.AsSpan(21), Crc32(header.AsSpan(4, 17)));
        return [.. data.AsSpan(0, idatEnd), .. header, .. data.AsSpan(idatEnd)];
    }

    /// <summary>A mid-grey baseline JPEG of <paramref name="width"/> x <paramref name="height"/> whose frame header declares <paramref name="declared"/> instead.</summary>
    public static byte[] JpegDeclaring(int width, int height, (int Width, int Height) declared)
    {
        using var image = new Image<Rgb24>(width, height, new Rgb24(128, 128, 128));
        using var stream = new MemoryStream();
        image.Save(stream, new JpegEncoder { ColorType = JpegColorType.YCbCrRatio444, Quality = 90 });
        var jpeg = stream.ToArray();
        var sof = jpeg.AsSpan().IndexOf([(byte)0xFF, (byte)0xC0]);
        BinaryPrimitives.WriteUInt16BigEndian(jpeg.AsSpan(sof + 5), (ushort)declared.Height);
        BinaryPrimitives.WriteUInt16BigEndian(jpeg.AsSpan(sof + 7), (ushort)declared.Width);
        return jpeg;
    }

    /// <summary>A GIF with the given logical screen and, per frame, the declared size (each frame's data is one pixel).</summary>
    public static byte[] Gif(int screenWidth, int screenHeight, params (int Width, int Height)[] frames)
    {
        using var stream = new MemoryStream();
        using var writer = new BinaryWriter(stream);
        WriteGifScreen(writer, screenWidth, screenHeight, blackAndWhite: true);
        foreach (var (width, height) in frames)
        {
            writer.Write((byte)0x2C);
            writer.Write((ushort)0);
            writer.Write((ushort)0);
            writer.Write((ushort)width);
            writer.Write((ushort)height);
            writer.Write((byte)0);

            // LZW, 2-bit minimum code size: clear, index 1, end of information.
            writer.Write([2, 2, 0x4C, 0x01, 0]);
        }

        writer.Write((byte)0x3B);
        writer.Flush();
        return stream.ToArray();
    }

    /// <summary>A 24-bit BMP header declaring the size, with no pixel data.</summary>
    public static byte[] BmpHeader(int width, int height)
    {
        var data = new byte[54];
        "BM"u8.CopyTo(data);
        BinaryPrimitives.WriteUInt32LittleEndian(data.AsSpan(2), 54);
        BinaryPrimitives.WriteUInt32LittleEndian(data.AsSpan(10), 54);
        BinaryPrimitives.WriteUInt32LittleEndian(data.AsSpan(14), 40);
        BinaryPrimitives.WriteInt32LittleEndian(data.AsSpan(18), width);
        BinaryPrimitives.WriteInt32LittleEndian(data.AsSpan(22), height);
        BinaryPrimitives.WriteUInt16LittleEndian(data.AsSpan(26), 1);
        BinaryPrimitives.WriteUInt16LittleEndian(data.AsSpan(28), 24);
        return data;
    }

    /// <summary>A PNG of the pattern whose IHDR declares another size (with a correct CRC, so only the size is wrong).</summary>
    public static byte[] PngDeclaring(uint width, uint height)
    {
        var data = Encode("png", 8, 8);
        BinaryPrimitives.WriteUInt32BigEndian(data.AsSpan(16), width);
        BinaryPrimitives.WriteUInt32BigEndian(data.AsSpan(20), height);
        BinaryPrimitives.WriteUInt32BigEndian(data.AsSpan(29), Crc32(data.AsSpan(12, 17)));
        return data;
    }

    /// <summary>A JPEG of the pattern whose frame header (SOF) declares another size.</summary>
    public static byte[] JpegDeclaring(ushort width, ushort height)
    {
        var data = Encode("jpeg", 16, 16);
        for (var at = 2; at + 9 < data.Length;)
        {
            var marker = data[at + 1];
            var length = BinaryPrimitives.ReadUInt16BigEndian(data.AsSpan(at + 2));
            if (marker is 0xC0 or 0xC1 or 0xC2)
            {
                BinaryPrimitives.WriteUInt16BigEndian(data.AsSpan(at + 5), height);
                BinaryPrimitives.WriteUInt16BigEndian(data.AsSpan(at + 7), width);
                return data;
            }

            at += 2 + length;
        }

        throw new InvalidOperationException("no SOF marker");
    }

    /// <summary>An uncompressed 24-bit TGA header declaring the size, with the pixel data of an 8×8 image.</summary>
    public static byte[] TgaDeclaring(ushort width, ushort height)
    {
        var data = Encode("tga", 8, 8);
        BinaryPrimitives.WriteUInt16LittleEndian(data.AsSpan(12), width);
        BinaryPrimitives.WriteUInt16LittleEndian(data.AsSpan(14), height);
        return data;
    }

    /// <summary>A lossless WebP whose VP8L header declares another size (14 bits a side).</summary>
    public static byte[] WebpLosslessDeclaring(int width, int height)
    {
        var data = Encode("webp-lossless", 8, 8);
        var at = data.AsSpan().IndexOf("VP8L"u8) + 9;
        var bits = BinaryPrimitives.ReadUInt32LittleEndian(data.AsSpan(at));
        bits = (bits & 0xF0000000) | (uint)((width - 1) & 0x3FFF) | ((uint)((height - 1) & 0x3FFF) << 14);
        BinaryPrimitives.WriteUInt32LittleEndian(data.AsSpan(at), bits);
        return data;
    }

    public static byte[] Netpbm() => [.. Encoding.ASCII.GetBytes("P6\n2 2\n255\n"), .. new byte[12]];

    /// <summary>A JPEG with more scans than any encoder writes (the same scan repeated).</summary>
    public static byte[] JpegWithScans(int scans)
    {
        var data = Encode("jpeg", 8, 8);
        var sos = data.AsSpan().IndexOf([(byte)0xFF, (byte)0xDA]);
        var eoi = data.AsSpan().LastIndexOf([(byte)0xFF, (byte)0xD9]);
        var scan = data[sos..eoi];
        using var stream = new MemoryStream();
        stream.Write(data.AsSpan(0, sos));
        for (var i = 0; i < scans; i++)
        {
            stream.Write(scan);
        }

        stream.Write(data.AsSpan(eoi));
        return stream.ToArray();
    }

    /// <summary>
    /// <see cref="JpegWithScans"/> with every scan after the first hidden from a walk that skips marker
    /// segments by their length: each scan's header segment is wrapped in a segment of marker 0xFFF0, which
    /// ImageSharp 2.1 reads the length of and then parses the body of as more markers (it has no case for
    /// it), so it still decodes every scan; the scans' entropy data stays outside the wrappers.
    /// </summary>
    public static byte[] JpegWithHiddenScans(int scans)
    {
        var data = Encode("jpeg", 8, 8);
        var sos = data.AsSpan().IndexOf([(byte)0xFF, (byte)0xDA]);
        var eoi = data.AsSpan().LastIndexOf([(byte)0xFF, (byte)0xD9]);
        var scan = data[sos..eoi];
        var headerLength = BinaryPrimitives.ReadUInt16BigEndian(scan.AsSpan(2));
        using var stream = new MemoryStream();
        stream.Write(data.AsSpan(0, eoi));
        for (var i = 1; i < scans; i++)
        {
            stream.Write([0xFF, 0xF0]);
            stream.Write([(byte)((headerLength + 4) >> 8), (byte)(headerLength + 4)]);
            stream.Write(scan);
        }

        stream.Write(data.AsSpan(eoi));
        return stream.ToArray();
    }

    // The header and logical screen descriptor, with a two-colour global table (black, white) or none.
    private static void WriteGifScreen(BinaryWriter writer, int width, int height, bool blackAndWhite)
    {
        writer.Write("GIF89a"u8);
        writer.Write((ushort)width);
        writer.Write((ushort)height);
        writer.Write([(byte)(blackAndWhite ? 0x80 : 0x00), 0, 0]);
        if (blackAndWhite)
        {
            writer.Write([0, 0, 0, 255, 255, 255]);
        }
    }

    /// <summary>
    /// A GIF with neither a global nor any local colour table: a <paramref name="width"/> x
    /// <paramref name="height"/> screen and <paramref name="frames"/> one-pixel frames of 13 bytes each.
    /// </summary>
    public static byte[] GifWithoutColourTables(int width, int height, int frames)
    {
        using var stream = new MemoryStream();
        using var writer = new BinaryWriter(stream);
        WriteGifScreen(writer, width, height, blackAndWhite: false);
        for (var i = 0; i < frames; i++)
        {
            // Descriptor at 0,0, 1x1, no local table; LZW minimum code size 2, one 1-byte sub-block, terminator.
            writer.Write((byte)0x2C);
            writer.Write((ushort)0);
            writer.Write((ushort)0);
            writer.Write((ushort)1);
            writer.Write((ushort)1);
            writer.Write((byte)0);
            writer.Write([2, 1, 0x44, 0]);
        }

        writer.Write((byte)0x3B);
        writer.Flush();
        return stream.ToArray();
    }

    /// <summary>
    /// A <paramref name="side"/> x <paramref name="side"/> lossless WebP whose entropy image (a pixel per
    /// block of 2^<paramref name="prefixBits"/>) names prefix-code group <paramref name="groups"/> - 1 in
    /// every pixel, followed by that many groups of one-symbol codes (20 bits each). A colour cache of
    /// 2^<paramref name="colourCacheBits"/> entries (0: none) widens every group's green alphabet, and so its tables.
    /// </summary>
    public static byte[] WebpLosslessNamingGroups(int groups, int side = 1, int prefixBits = 9, int colourCacheBits = 0)
    {
        var bits = new LsbBitWriter();
        bits.Write(0x2F, 8);
        bits.Write((ulong)(side - 1), 14);
        bits.Write((ulong)(side - 1), 14);
        bits.Write(0, 4);
        bits.Write(0, 1); // no transform
        bits.Write(colourCacheBits > 0 ? 1UL : 0, 1);
        if (colourCacheBits > 0)
        {
            bits.Write((ulong)colourCacheBits, 4);
        }

        WriteGroupNamingStream(bits, groups, prefixBits);
        return Riff(("VP8L", bits.ToArray()));
    }

    /// <summary>The same stream as a 1x1 lossy WebP's alpha plane, compressed losslessly (ALPH method 1).</summary>
    public static byte[] WebpAlphaNamingGroups(int groups)
    {
        var bits = new LsbBitWriter();
        bits.Write(0x01, 8); // ALPH header: lossless, no filter, no preprocessing
        bits.Write(0, 1); // no transform
        bits.Write(0, 1); // no colour cache
        WriteGroupNamingStream(bits, groups, 9);
        var vp8x = new byte[10];
        vp8x[0] = 0x10; // alpha; canvas 1x1
        return Riff(("VP8X", vp8x), ("ALPH", bits.ToArray()), ("VP8 ", WebpChunk(Encode("webp", 1, 1), "VP8 ")));
    }

    /// <summary>A VP8X canvas of 1x1 with alpha holding a lossy 64x48 frame and an uncompressed alpha plane.</summary>
    public static byte[] WebpFrameLargerThanItsCanvas()
    {
        var vp8x = new byte[10];
        vp8x[0] = 0x10;
        return Riff(("VP8X", vp8x), ("ALPH", [0x00, 0xFF]), ("VP8 ", WebpChunk(Encode("webp", 64, 48), "VP8 ")));
    }

    /// <summary>
    /// A valid 1x1 lossless WebP (VP8X + VP8L) followed, past its RIFF end, by a lossy 256x256 image's VP8
    /// chunk cut to a tenth: ImageSharp reads on past the RIFF end and decodes the last image chunk.
    /// </summary>
    public static byte[] WebpWithImageAfterRiff()
    {
        var riff = Riff(("VP8X", new byte[10]), ("VP8L", WebpChunk(Encode("webp-lossless", 1, 1), "VP8L")));
        var vp8 = WebpChunk(Encode("webp", 256, 256), "VP8 ");
        var tail = new byte[8 + (vp8.Length / 10)];
        "VP8 "u8.CopyTo(tail);
        BinaryPrimitives.WriteUInt32LittleEndian(tail.AsSpan(4), (uint)vp8.Length);
        vp8.AsSpan(0, vp8.Length / 10).CopyTo(tail.AsSpan(8));
        return [.. riff, .. tail];
    }

    // After the colour cache bit: a meta prefix image whose every pixel names group `groups` - 1 (0 bits a
    // pixel), then the groups, each five one-symbol codes, then a few zero bytes of pixel data (0 bits a pixel).
    private static void WriteGroupNamingStream(LsbBitWriter bits, int groups, int prefixBits)
    {
        bits.Write(1, 1);
        bits.Write((ulong)(prefixBits - 2), 3);
        bits.Write(0, 1); // the entropy image's colour cache: none
        var last = (uint)(groups - 1);
        OneSymbolCode(bits, last & 0xFF); // green: the group's low byte
        OneSymbolCode(bits, (last >> 8) & 0xFF); // red: its high byte
        OneSymbolCode(bits, 0);
        OneSymbolCode(bits, 0);
        OneSymbolCode(bits, 0);
        for (var i = 0; i < 5 * groups; i++)
        {
            OneSymbolCode(bits, 0);
        }

        bits.Write(0, 64);
    }

    private static void OneSymbolCode(LsbBitWriter bits, uint symbol)
    {
        bits.Write(1, 1); // simple code
        bits.Write(0, 1); // one symbol
        if (symbol < 2)
        {
            bits.Write(0, 1);
            bits.Write(symbol, 1);
        }
        else
        {
            bits.Write(1, 1);
            bits.Write(symbol, 8);
        }
    }

    private static byte[] Riff(params (string Type, byte[] Body)[] chunks)
    {
        using var stream = new MemoryStream();
        stream.Write("RIFF\0\0\0\0WEBP"u8);
        foreach (var (type, body) in chunks)
        {
            stream.Write(Encoding.ASCII.GetBytes(type));
            stream.Write(BitConverter.GetBytes((uint)body.Length));
            stream.Write(body);
            if ((body.Length & 1) != 0)
            {
                stream.WriteByte(0);
            }
        }

        var riff = stream.ToArray();
        BinaryPrimitives.WriteUInt32LittleEndian(riff.AsSpan(4), (uint)(riff.Length - 8));
        return riff;
    }

    /// <summary>The body of the first chunk of type <paramref name="type"/> in a WebP's RIFF.</summary>
    public static byte[] WebpChunk(byte[] webp, string type)
    {
        for (var at = 12; at + 8 <= webp.Length;)
        {
            var size = (int)BinaryPrimitives.ReadUInt32LittleEndian(webp.AsSpan(at + 4));
            if (Encoding.ASCII.GetString(webp, at, 4) == type)
            {
                return webp.AsSpan(at + 8, size).ToArray();
            }

            at += 8 + size + (size & 1);
        }

        throw new InvalidOperationException($"no {type} chunk");
    }

    // Bits least significant first, as VP8L packs them.
    private sealed class LsbBitWriter
    {
        private readonly List<byte> _bytes = [];
        private int _used;

        public void Write(ulong value, int count)
        {
            for (var i = 0; i < count; i++, _used++)
            {
                if ((_used & 7) == 0)
                {
                    _bytes.Add(0);
                }

                _bytes[^1] |= (byte)(((value >> i) & 1) << (_used & 7));
            }
        }

        public byte[] ToArray() => [.. _bytes];
    }

    /// <summary>A 1x1 8-bit RLE8 BMP (58 bytes) whose info header declares a palette of <paramref name="colours"/> colours.</summary>
    public static byte[] BmpDeclaringColours(uint colours, bool array = false)
    {
        using var stream = new MemoryStream();
        using var writer = new BinaryWriter(stream);
        if (array)
        {
            // An OS/2 bitmap array's header: "BA", its size, the next array header (none), screen size.
            writer.Write("BA"u8);
            writer.Write(72u);
            writer.Write(0u);
            writer.Write(0u);
        }

        writer.Write("BM"u8);
        writer.Write(58u);
        writer.Write(0u);
        writer.Write(54u);
        writer.Write(40u);
        writer.Write(1);
        writer.Write(1);
        writer.Write((ushort)1);
        writer.Write((ushort)8);
        writer.Write(1u); // RLE8
        writer.Write(0u);
        writer.Write(0);
        writer.Write(0);
        writer.Write(colours);
        writer.Write(0u);
        writer.Write([1, 0, 0, 1]);
        writer.Flush();
        return stream.ToArray();
    }

    /// <summary>A run-length TGA's 18-byte header (type 10, 24 bits) declaring <paramref name="width"/> x <paramref name="height"/>, with <paramref name="runs"/> run packets of 128 grey pixels.</summary>
    public static byte[] TgaRunLength(int width, int height, int runs)
    {
        var header = new byte[18];
        header[2] = 10;
        BinaryPrimitives.WriteUInt16LittleEndian(header.AsSpan(12), (ushort)width);
        BinaryPrimitives.WriteUInt16LittleEndian(header.AsSpan(14), (ushort)height);
        header[16] = 24;
        header[17] = 0x20; // top-left origin
        var packets = new byte[4 * runs];
        for (var i = 0; i < runs; i++)
        {
            packets[4 * i] = 0xFF;
            packets.AsSpan((4 * i) + 1, 3).Fill(128);
        }

        return [.. header, .. packets];
    }

    /// <summary>An 8x8 uncompressed TIFF of <paramref name="samples"/> samples a pixel, each of <paramref name="bits"/> bits (one BitsPerSample value for all).</summary>
    public static byte[] TiffWithSamples(int samples, int bits)
    {
        using var stream = new MemoryStream();
        using var writer = new BinaryWriter(stream);
        writer.Write("II"u8);
        writer.Write((ushort)42);
        writer.Write(8u);
        const ushort Entries = 9;
        var dataAt = 8u + 2 + (Entries * 12) + 4;
        var bytes = (uint)(8 * 8 * samples * bits / 8);
        writer.Write(Entries);
        Entry(writer, 256, 4, 1, 8);
        Entry(writer, 257, 4, 1, 8);
        Entry(writer, 258, 3, 1, (uint)bits);
        Entry(writer, 259, 3, 1, 1);
        Entry(writer, 262, 3, 1, samples >= 3 ? 2u : 1u);
        Entry(writer, 273, 4, 1, dataAt);
        Entry(writer, 277, 3, 1, (uint)samples);
        Entry(writer, 278, 4, 1, 8);
        Entry(writer, 279, 4, 1, bytes);
        writer.Write(0u);
        writer.Write(new byte[bytes]);
        writer.Flush();
        return stream.ToArray();
    }

    /// <summary><see cref="JpegWithScans"/> whose frame header declares <paramref name="width"/> x <paramref name="height"/>.</summary>
    public static byte[] JpegWithScansDeclaring(int scans, int width, int height)
    {
        var data = JpegWithScans(scans);
        var frame = data.AsSpan().IndexOf([(byte)0xFF, (byte)0xC0]);
        BinaryPrimitives.WriteUInt16BigEndian(data.AsSpan(frame + 5), (ushort)height);
        BinaryPrimitives.WriteUInt16BigEndian(data.AsSpan(frame + 7), (ushort)width);
        return data;
    }

    public static uint Crc32(ReadOnlySpan<byte> bytes)
    {
        var crc = 0xFFFFFFFFu;
        foreach (var b in bytes)
        {
            crc ^= b;
            for (var k = 0; k < 8; k++)
            {
                crc = (crc & 1) != 0 ? (crc >> 1) ^ 0xEDB88320u : crc >> 1;
            }
        }

        return ~crc;
    }

    private static void Entry(BinaryWriter writer, ushort tag, ushort type, uint count, uint value)
    {
        writer.Write(tag);
        writer.Write(type);
        writer.Write(count);
        if (type == 3)
        {
            writer.Write((ushort)value);
            writer.Write((ushort)0);
        }
        else
        {
            writer.Write(value);
        }
    }
}
