using System.Runtime.CompilerServices;

namespace MaskFormer.Engine.Encoding;

/// <summary>
/// A zlib stream (RFC 1950) of one fixed-Huffman deflate block (RFC 1951) built for filtered label rows,
/// whose bytes are mostly long runs of zeros: a run costs one match per 258 bytes and its Adler-32 is
/// updated in closed form, so the time follows the non-zero bytes (segment boundaries), not the area.
/// Matches reach back one pixel at most (distance 1 to 3), so any inflater reads it. Larger than what
/// zlib's own matcher writes, since no dictionary or dynamic code is built; several times faster.
/// </summary>
internal sealed class RunDeflater : IDisposable
{
    private const uint AdlerModulus = 65521;

    // The most bytes the 32-bit Adler sums can take before b may overflow (zlib's NMAX).
    private const int AdlerBlock = 5552;
    private const int MinMatch = 3;
    private const int MaxMatch = 258;

    private static readonly (ushort Code, byte Bits)[] s_literals = BuildLiterals();
    private static readonly (ushort Code, byte Bits, byte ExtraBits, ushort ExtraValue)[] s_lengths = BuildLengths();

    // The fixed distance codes of distances 1 to 4: five bits, bit-reversed.
    private static readonly uint[] s_distances = [Reverse(0, 5), Reverse(1, 5), Reverse(2, 5), Reverse(3, 5)];

    // A match of 258 bytes at distance 1 to 4: its length code (8 bits, no extra) and distance code (5 bits).
    private static readonly uint[] s_longestMatches = [.. s_distances.Select(d => s_lengths[MaxMatch].Code | (d << s_lengths[MaxMatch].Bits))];

    private byte[] _buffer;
    private int _length;
    private ulong _bits;
    private int _bitCount;
    private uint _a = 1;
    private uint _b;
    private int _pending;
    private int _last = -1;

    /// <summary>Starts the stream: zlib header, then the block header (final, fixed codes).</summary>
    public RunDeflater(int capacity)
    {
        _buffer = EngineArrayPool<byte>.Shared.Rent(Math.Max(256, capacity));

        // CMF 0x78 (deflate, 32 KiB window), FLG 0x01: (0x78 * 256 + 0x01) % 31 == 0, fastest level.
        _buffer[_length++] = 0x78;
        _buffer[_length++] = 0x01;
        WriteBits(1 | (1 << 1), 3);
    }

    /// <summary>Bytes written so far (the stream is complete after <see cref="Finish"/>).</summary>
    public ReadOnlySpan<byte> Written => _buffer.AsSpan(0, _length);

    /// <summary>
    /// Deflates <paramref name="data"/>, whose repeats are looked for <paramref name="period"/> bytes back
    /// (a pixel's size) within it, and as runs of zeros.
    /// </summary>
    public void Write(ReadOnlySpan<byte> data, int period) => Write(data, 0, period);

    /// <summary>
    /// Deflates <paramref name="data"/> from <paramref name="from"/> on; the bytes before it were
    /// written already (or are their equal) and may be repeated.
    /// </summary>
    public void Write(ReadOnlySpan<byte> data, int from, int period)
    {
        var i = from;
        while (i < data.Length)
        {
            if (data[i] == 0)
            {
                // A lone zero (an RGB id's blue byte) without the span search.
                var zeros = i + 1 < data.Length && data[i + 1] != 0 ? 1 : data[i..].IndexOfAnyExcept((byte)0);
                var run = zeros < 0 ? data.Length - i : zeros;
                WriteZeros(run);
                i += run;
                continue;
            }

            // Most bytes at a boundary differ from the pixel before: tested here before the span compare.
            var repeat = i >= period && data[i] == data[i - period] ? data[i..].CommonPrefixLength(data[(i - period)..]) : 0;
            if (repeat >= MinMatch)
            {
                foreach (var value in data.Slice(i, repeat))
                {
                    AddToChecksum(value);
                }

                WriteMatches(repeat, period);
                _last = data[i + repeat - 1];
                i += repeat;
                continue;
            }

            WriteLiteral(data[i]);
            i++;
        }
    }

    /// <summary>Ends the block and appends the Adler-32 of everything written.</summary>
    public void Finish()
    {
        WriteSymbol(256);
        if (_bitCount > 0)
        {
            WriteBits(0, (8 - (_bitCount % 8)) % 8);
        }

        Flush();
        var adler = ((_b % AdlerModulus) << 16) | (_a % AdlerModulus);
        Ensure(4);
        _buffer[_length++] = (byte)(adler >> 24);
        _buffer[_length++] = (byte)(adler >> 16);
        _buffer[_length++] = (byte)(adler >> 8);
        _buffer[_length++] = (byte)adler;
    }

    /// <inheritdoc />
    public void Dispose()
    {
        if (_buffer.Length > 0)
        {
            EngineArrayPool<byte>.Shared.Return(_buffer);
            _buffer = [];
            _length = 0;
        }
    }

    /// <summary>Deflates <paramref name="run"/> zero bytes, as matches: the cost of the count, not of the bytes.</summary>
    public void WriteZeros(int run)
    {
        if (run <= 0)
        {
            return;
        }

        // Adler-32 of n zeros: a stays, b grows by n · a; reduced only when as many bytes as zlib's
        // bound allows have been added since the last reduction.
        if (_pending + run < AdlerBlock)
        {
            _b += (uint)run * _a;
            _pending += run;
        }
        else
        {
            _a %= AdlerModulus;
            _b = (uint)((_b + ((ulong)run * _a)) % AdlerModulus);
            _pending = 0;
        }

        if (_last != 0)
        {
            WriteSymbol(0);
            _last = 0;
            run--;
        }

        if (run < MinMatch)
        {
            for (; run > 0; run--)
            {
                WriteSymbol(0);
            }

            return;
        }

        WriteMatches(run, 1);
    }

    // A run of at least three bytes that repeat the byte(s) `distance` back, as matches of 3 to 258.
    private void WriteMatches(int run, int distance)
    {
        // Longest matches two per write (2 x 13 bits): an unchanged row is mostly these.
        var longest = s_longestMatches[distance - 1];
        while (run >= (2 * MaxMatch) + MinMatch)
        {
            WriteBits(longest | (longest << 13), 26);
            run -= 2 * MaxMatch;
        }

        while (run > 0)
        {
            // Never leave a rest of one or two bytes, which no match could cover.
            var length = run > MaxMatch && run - MaxMatch < MinMatch ? run - MinMatch : Math.Min(run, MaxMatch);
            var (code, bits, extraBits, extraValue) = s_lengths[length];
            WriteBits(code | ((uint)extraValue << bits) | (s_distances[distance - 1] << (bits + extraBits)), bits + extraBits + 5);
            run -= length;
        }
    }

    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    private void WriteLiteral(byte value)
    {
        AddToChecksum(value);
        WriteSymbol(value);
        _last = value;
    }

    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    private void AddToChecksum(byte value)
    {
        _a += value;
        _b += _a;
        if (++_pending == AdlerBlock)
        {
            _a %= AdlerModulus;
            _b %= AdlerModulus;
            _pending = 0;
        }
    }

    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    private void WriteSymbol(int symbol)
    {
        var (code, bits) = s_literals[symbol];
        WriteBits(code, bits);
    }

    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    private void WriteBits(uint value, int count)
    {
        _bits |= (ulong)value << _bitCount;
        _bitCount += count;
        if (_bitCount >= 32)
        {
            Ensure(4);
            System.Buffers.Binary.BinaryPrimitives.WriteUInt32LittleEndian(_buffer.AsSpan(_length), (uint)_bits);
            _length += 4;
            _bits >>= 32;
            _bitCount -= 32;
        }
    }

    private void Flush()
    {
        Ensure(8);
        while (_bitCount > 0)
        {
            _buffer[_length++] = (byte)_bits;
            _bits >>= 8;
            _bitCount -= 8;
        }

        _bitCount = 0;
        _bits = 0;
    }

    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    private void Ensure(int more)
    {
        if (_length + more > _buffer.Length)
        {
            Grow(more);
        }
    }

    [MethodImpl(MethodImplOptions.NoInlining)]
    private void Grow(int more)
    {
        var larger = EngineArrayPool<byte>.Shared.Rent(Math.Max(_buffer.Length * 2, _length + more));
        _buffer.AsSpan(0, _length).CopyTo(larger);
        EngineArrayPool<byte>.Shared.Return(_buffer);
        _buffer = larger;
    }

    private static uint Reverse(uint code, int bits)
    {
        var reversed = 0u;
        for (var i = 0; i < bits; i++)
        {
            reversed = (reversed << 1) | ((code >> i) & 1);
        }

        return reversed;
    }

    // RFC 1951 3.2.6: the fixed literal/length code, bit-reversed for an LSB-first stream.
    private static (ushort Code, byte Bits)[] BuildLiterals()
    {
        var table = new (ushort Code, byte Bits)[288];
        for (var symbol = 0; symbol < 288; symbol++)
        {
            var (code, bits) = symbol switch
            {
                < 144 => (0x30 + symbol, 8),
                < 256 => (0x190 + symbol - 144, 9),
                < 280 => (symbol - 256, 7),
                _ => (0xC0 + symbol - 280, 8),
            };
            table[symbol] = ((ushort)Reverse((uint)code, bits), (byte)bits);
        }

        return table;
    }

    // RFC 1951 3.2.5: each match length's symbol (as its fixed code) and extra bits.
    private static (ushort Code, byte Bits, byte ExtraBits, ushort ExtraValue)[] BuildLengths()
    {
        int[] bases = [3, 4, 5, 6, 7, 8, 9, 10, 11, 13, 15, 17, 19, 23, 27, 31, 35, 43, 51, 59, 67, 83, 99, 115, 131, 163, 195, 227, 258];
        int[] extras = [0, 0, 0, 0, 0, 0, 0, 0, 1, 1, 1, 1, 2, 2, 2, 2, 3, 3, 3, 3, 4, 4, 4, 4, 5, 5, 5, 5, 0];
        var literals = BuildLiterals();
        var table = new (ushort Code, byte Bits, byte ExtraBits, ushort ExtraValue)[MaxMatch + 1];
        for (var length = MinMatch; length <= MaxMatch; length++)
        {
            var index = length == MaxMatch ? bases.Length - 1 : Array.FindLastIndex(bases, b => b <= length);
            var (code, bits) = literals[257 + index];
            table[length] = (code, bits, (byte)extras[index], (ushort)(length - bases[index]));
        }

        return table;
    }
}
