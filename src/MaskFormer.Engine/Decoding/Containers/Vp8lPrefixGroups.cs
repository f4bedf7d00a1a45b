namespace MaskFormer.Engine.Decoding.Containers;

/// <summary>
/// The prefix-code groups a lossless WebP (VP8L) bitstream makes its decoder build: the transforms'
/// sub-images are read past symbol by symbol, then the entropy image is read, whose pixels' red and green
/// name each block's group.
/// </summary>
/// <remarks>
/// ImageSharp 2.1 allocates the tables of every group up to the largest group number the entropy image
/// names, outside the decoder's memory limits: 40 KB a group, 64 KB with an 11-bit colour cache (measured).
/// A 164 KB file declaring 1x1 whose one entropy pixel named group 65535 took 1.5 GB and 6 s; a 10 KB
/// 256x256 one naming 4,096 groups took 164 MB (263 MB with the cache). Every pixel of the entropy image is
/// a literal or a copy of an earlier one (a backward reference, the colour cache), so the largest literal
/// read names the largest group (<see cref="Vp8lGroups.Named"/>), and the largest red and green literal
/// its codes can give bound it whatever the pixels (<see cref="Vp8lGroups.CodeBound"/>, the check that
/// does not lean on reading the pixels right). Real encoders use few groups: libwebp and ImageSharp's
/// encoder, from least to most effort, wrote at most 36 (photos, screenshots, charts, label maps, noise,
/// 64x64 to 16.7 megapixels; 6 at 256x256), so <see cref="MaxGroupsFor"/> keeps the tables about the size
/// of the decoded pixels. The layout is RFC 9649's.
/// </remarks>
internal static class Vp8lPrefixGroups
{
    /// <summary>The most groups a stream's codes may be able to name, however large the image.</summary>
    public const int MaxGroups = 4096;

    /// <summary>
    /// Groups any image may name: up to 16 MB of tables, no more than a megapixel's decoding costs anyway,
    /// and every group number the green byte alone can give.
    /// </summary>
    public const int FloorGroups = 256;

    /// <summary>Pixels a group past the floor: 64 KB of tables at most for 16,384 pixels, 4 bytes a pixel like the decoded image.</summary>
    public const int PixelsPerGroup = 16_384;

    /// <summary>The most groups a stream of <paramref name="pixels"/> pixels may be able to name.</summary>
    public static int MaxGroupsFor(long pixels) => (int)Math.Clamp(pixels / PixelsPerGroup, FloorGroups, MaxGroups);

    private const int NumLiteralCodes = 256;
    private const int NumLengthCodes = 24;
    private const int NumDistanceCodes = 40;
    private const int MaxCodeLength = 15;

    private static readonly int[] s_codeLengthOrder = [17, 18, 0, 1, 2, 3, 4, 5, 16, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15];

    /// <summary>
    /// The groups the VP8L chunk body <paramref name="chunk"/> (its 5-byte header first) names.
    /// Throws <see cref="SegmentationException"/> for a stream that ends early or holds an invalid code.
    /// </summary>
    public static Vp8lGroups Read(ReadOnlySpan<byte> chunk)
    {
        if (chunk.Length < 5 || chunk[0] != 0x2F)
        {
            throw Corrupt("the lossless bitstream has no VP8L signature");
        }

        var reader = new BitReader(chunk[1..]);
        var width = (int)reader.Read(14) + 1;
        var height = (int)reader.Read(14) + 1;
        reader.Read(1);
        if (reader.Read(3) != 0)
        {
            throw Corrupt("the lossless bitstream's version is not 0");
        }

        return Groups(ref reader, width, height);
    }

    /// <summary>The same for a lossless alpha plane (an ALPH chunk's data after its 1-byte header): a VP8L stream without the header.</summary>
    public static Vp8lGroups ReadAlpha(ReadOnlySpan<byte> stream, int width, int height)
    {
        var reader = new BitReader(stream);
        return Groups(ref reader, width, height);
    }

    private static Vp8lGroups Groups(ref BitReader reader, int width, int height)
    {
        var xSize = width;
        var seen = 0;
        while (reader.Read(1) == 1)
        {
            var type = (int)reader.Read(2);
            if ((seen & (1 << type)) != 0)
            {
                throw Corrupt("a lossless transform appears twice");
            }

            seen |= 1 << type;
            switch (type)
            {
                case 0 or 1:
                    // Predictor or colour transform: a sub-image of one pixel per block.
                    var bits = (int)reader.Read(3) + 2;
                    ReadImage(ref reader, DivRoundUp(xSize, bits), DivRoundUp(height, bits));
                    break;
                case 3:
                    // Colour indexing: the palette as a sub-image; narrow palettes pack pixels.
                    var colours = (int)reader.Read(8) + 1;
                    ReadImage(ref reader, colours, 1);
                    xSize = DivRoundUp(xSize, colours > 16 ? 0 : colours > 4 ? 1 : colours > 2 ? 2 : 3);
                    break;
            }
        }

        if (reader.Read(1) == 1 && reader.Read(4) is 0 or > 11)
        {
            throw Corrupt("the lossless colour cache size is out of range");
        }

        if (reader.Read(1) == 0)
        {
            return new Vp8lGroups(1, 1, 1, (long)width * height);
        }

        // The entropy image, a pixel per block of 2^bits pixels, whose red and green name each block's group.
        var prefixBits = (int)reader.Read(3) + 2;
        var (tileColumns, tileRows) = (DivRoundUp(xSize, prefixBits), DivRoundUp(height, prefixBits));
        var (codeBound, largestLiteral) = ReadImage(ref reader, tileColumns, tileRows);
        return new Vp8lGroups(codeBound, largestLiteral + 1, (long)tileColumns * tileRows, (long)width * height);
    }

    private static int DivRoundUp(int size, int bits) => (size + (1 << bits) - 1) >> bits;

    private static int ReadCacheSize(ref BitReader reader)
    {
        if (reader.Read(1) == 0)
        {
            return 0;
        }

        var bits = (int)reader.Read(4);
        return bits is >= 1 and <= 11 ? 1 << bits : throw Corrupt("the lossless colour cache size is out of range");
    }

    // Reads an entropy-coded sub-image of width x height pixels: its colour cache and five codes, then its
    // symbols (a literal's four, a backward reference's length and distance, a cache index). Returns what its
    // pixels can name as groups by the codes alone (the largest red and green literals they can give), and
    // the largest any literal read names (0 without one): every other pixel copies an earlier one.
    private static (int CodeBound, int LargestLiteral) ReadImage(ref BitReader reader, int width, int height)
    {
        var cacheSize = ReadCacheSize(ref reader);
        var green = ReadCode(ref reader, NumLiteralCodes + NumLengthCodes + cacheSize);
        var red = ReadCode(ref reader, NumLiteralCodes);
        var blue = ReadCode(ref reader, NumLiteralCodes);
        var alpha = ReadCode(ref reader, NumLiteralCodes);
        var distance = ReadCode(ref reader, NumDistanceCodes);
        var codeBound = ((Math.Max(0, red.LargestSymbolBelow(NumLiteralCodes)) << 8) | Math.Max(0, green.LargestSymbolBelow(NumLiteralCodes))) + 1;
        var largestLiteral = 0;
        var pixels = (long)width * height;
        for (var at = 0L; at < pixels;)
        {
            // A symbol read with no bits (every code it took has one symbol and no extra bits) is read the
            // same way to the end: the position no longer moves, so stop rather than count to the end.
            var before = reader.Position;
            var symbol = green.Decode(ref reader);
            if (symbol < NumLiteralCodes)
            {
                largestLiteral = Math.Max(largestLiteral, (red.Decode(ref reader) << 8) | symbol);
                blue.Decode(ref reader);
                alpha.Decode(ref reader);
                at++;
            }
            else if (symbol < NumLiteralCodes + NumLengthCodes)
            {
                at += PrefixValue(ref reader, symbol - NumLiteralCodes);
                PrefixValue(ref reader, distance.Decode(ref reader));
            }
            else
            {
                at++;
            }

            if (reader.Position == before)
            {
                break;
            }
        }

        return (codeBound, largestLiteral);
    }

    private static int PrefixValue(ref BitReader reader, int prefix)
    {
        if (prefix < 4)
        {
            return prefix + 1;
        }

        var extraBits = (prefix - 2) >> 1;
        var offset = (2 + (prefix & 1)) << extraBits;
        return offset + (int)reader.Read(extraBits) + 1;
    }

    private static PrefixCode ReadCode(ref BitReader reader, int alphabetSize)
    {
        var lengths = new byte[alphabetSize];
        if (reader.Read(1) == 1)
        {
            // A simple code: one or two symbols.
            var symbols = (int)reader.Read(1) + 1;
            var first = (int)reader.Read(reader.Read(1) == 1 ? 8 : 1);
            SetSimple(lengths, first);
            if (symbols == 2)
            {
                SetSimple(lengths, (int)reader.Read(8));
            }

            return new PrefixCode(lengths);
        }

        var codeLengthLengths = new byte[s_codeLengthOrder.Length];
        var count = (int)reader.Read(4) + 4;
        for (var i = 0; i < count; i++)
        {
            codeLengthLengths[s_codeLengthOrder[i]] = (byte)reader.Read(3);
        }

        var codeLengthCode = new PrefixCode(codeLengthLengths);
        var maxSymbol = alphabetSize;
        if (reader.Read(1) == 1)
        {
            var lengthBits = 2 + (2 * (int)reader.Read(3));
            maxSymbol = 2 + (int)reader.Read(lengthBits);
            if (maxSymbol > alphabetSize)
            {
                throw Corrupt("a lossless code declares more symbols than its alphabet");
            }
        }

        var (symbol, previous) = (0, 8);
        while (symbol < alphabetSize && maxSymbol-- > 0)
        {
            var length = codeLengthCode.Decode(ref reader);
            if (length < 16)
            {
                lengths[symbol++] = (byte)length;
                previous = length != 0 ? length : previous;
                continue;
            }

            var repeat = length switch
            {
                16 => (int)reader.Read(2) + 3,
                17 => (int)reader.Read(3) + 3,
                _ => (int)reader.Read(7) + 11,
            };
            if (symbol + repeat > alphabetSize)
            {
                throw Corrupt("a lossless code's lengths run past its alphabet");
            }

            lengths.AsSpan(symbol, repeat).Fill((byte)(length == 16 ? previous : 0));
            symbol += repeat;
        }

        return new PrefixCode(lengths);
    }

    // A simple code's symbol outside a small alphabet (the distance code's 40) weighs nothing; a sound
    // bound must not drop it from the literal alphabets, which hold 256 or more.
    private static void SetSimple(byte[] lengths, int symbol)
    {
        if (symbol < lengths.Length)
        {
            lengths[symbol] = 1;
        }
    }

    private static SegmentationException Corrupt(string detail) => ContainerInspector.Truncated("WebP", detail);

    /// <summary>A canonical prefix code from its code lengths, decoded a bit at a time (codes start with their most significant bit).</summary>
    private sealed class PrefixCode
    {
        private readonly int[] _counts = new int[MaxCodeLength + 1];
        private readonly int[] _symbols;
        private readonly int _single = -1;
        private readonly byte[] _lengths;

        public PrefixCode(byte[] lengths)
        {
            _lengths = lengths;
            var used = 0;
            foreach (var length in lengths)
            {
                if (length > 0)
                {
                    _counts[length]++;
                    used++;
                }
            }

            if (used == 0)
            {
                throw Corrupt("a lossless code has no symbol");
            }

            // One symbol is read with no bits, whatever its length.
            if (used == 1)
            {
                _single = Array.FindIndex(lengths, l => l > 0);
                _symbols = [];
                return;
            }

            // A complete code: every code of every length used (as libwebp requires).
            var left = 1;
            for (var length = 1; length <= MaxCodeLength; length++)
            {
                left = (left << 1) - _counts[length];
                if (left < 0)
                {
                    throw Corrupt("a lossless code is over-subscribed");
                }
            }

            if (left != 0)
            {
                throw Corrupt("a lossless code is incomplete");
            }

            var offsets = new int[MaxCodeLength + 2];
            for (var length = 1; length <= MaxCodeLength; length++)
            {
                offsets[length + 1] = offsets[length] + _counts[length];
            }

            _symbols = new int[used];
            for (var symbol = 0; symbol < lengths.Length; symbol++)
            {
                if (lengths[symbol] > 0)
                {
                    _symbols[offsets[lengths[symbol]]++] = symbol;
                }
            }
        }

        /// <summary>The largest symbol below <paramref name="limit"/> the code can give, or -1.</summary>
        public int LargestSymbolBelow(int limit)
        {
            for (var symbol = Math.Min(limit, _lengths.Length) - 1; symbol >= 0; symbol--)
            {
                if (_lengths[symbol] > 0)
                {
                    return symbol;
                }
            }

            return -1;
        }

        public int Decode(ref BitReader reader)
        {
            if (_single >= 0)
            {
                return _single;
            }

            var (code, first, index) = (0, 0, 0);
            for (var length = 1; length <= MaxCodeLength; length++)
            {
                code |= (int)reader.Read(1);
                var count = _counts[length];
                if (code - count < first)
                {
                    return _symbols[index + (code - first)];
                }

                index += count;
                first = (first + count) << 1;
                code <<= 1;
            }

            throw Corrupt("a lossless code's symbol is invalid");
        }
    }

    /// <summary>Bits least significant first, as VP8L packs them; reading past the end throws.</summary>
    private ref struct BitReader(ReadOnlySpan<byte> data)
    {
        private readonly ReadOnlySpan<byte> _data = data;
        private long _position;

        public readonly long Position => _position;

        public uint Read(int count)
        {
            if (_position + count > (long)_data.Length * 8)
            {
                throw Corrupt("the lossless bitstream ends early");
            }

            var value = 0u;
            for (var i = 0; i < count; i++, _position++)
            {
                value |= (uint)((_data[(int)(_position >> 3)] >> (int)(_position & 7)) & 1) << i;
            }

            return value;
        }
    }
}

/// <summary>
/// What a lossless WebP stream names as prefix-code groups: <see cref="CodeBound"/>, the most its entropy
/// image's codes allow (a sound bound whatever its pixels); <see cref="Named"/>, the largest group number its
/// pixels name, plus one (what ImageSharp allocates tables for); <see cref="Tiles"/>, its pixels. An encoder
/// numbers the groups it uses from 0, so it never names more than it has pixels. <see cref="Pixels"/>: the
/// image's (or alpha plane's) pixels, which bound the groups (<see cref="Vp8lPrefixGroups.MaxGroupsFor"/>).
/// </summary>
internal readonly record struct Vp8lGroups(int CodeBound, int Named, long Tiles, long Pixels);
