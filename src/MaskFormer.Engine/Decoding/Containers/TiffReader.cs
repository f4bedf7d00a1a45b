using System.Buffers.Binary;

namespace MaskFormer.Engine.Decoding.Containers;

/// <summary>One directory entry: its type, value count and where the values are.</summary>
internal readonly record struct TiffEntry(ushort Type, ulong Count, ulong ValueAt);

/// <summary>A directory's entries by tag and the offset of the next directory (0 for none).</summary>
internal sealed class TiffDirectory(Dictionary<ushort, TiffEntry> entries, ulong next, ulong count)
{
    public ulong Next => next;

    /// <summary>The entries the directory declares (repeated tags included).</summary>
    public ulong Count => count;

    public bool TryGetValue(ushort tag, out TiffEntry entry) => entries.TryGetValue(tag, out entry);
}

/// <summary>Bounds-checked reads of a TIFF structure (TIFF 6.0 and BigTIFF); nothing is read outside the data.</summary>
internal readonly ref struct TiffReader
{
    private readonly ReadOnlySpan<byte> _data;
    private readonly bool _bigEndian;
    private readonly bool _big;

    private TiffReader(ReadOnlySpan<byte> data, bool bigEndian, bool big, ulong first)
    {
        _data = data;
        _bigEndian = bigEndian;
        _big = big;
        FirstDirectory = first;
    }

    public ulong FirstDirectory { get; }

    public int Length => _data.Length;

    public static bool TryCreate(ReadOnlySpan<byte> data, out TiffReader reader)
    {
        reader = default;
        if (data.Length < 8)
        {
            return false;
        }

        var bigEndian = data[0] == 'M';
        var big = (bigEndian ? data[3] : data[2]) == 43;
        if (big && data.Length < 16)
        {
            return false;
        }

        var probe = new TiffReader(data, bigEndian, big, 0);
        var first = big ? probe.U64(8) : probe.U32(4);
        reader = new TiffReader(data, bigEndian, big, first);
        return true;
    }

    public bool TryReadDirectory(ulong offset, out TiffDirectory directory)
    {
        directory = null!;
        var countSize = _big ? 8UL : 2UL;
        var entrySize = _big ? 20UL : 12UL;
        if (offset > (ulong)_data.Length || countSize > (ulong)_data.Length - offset)
        {
            return false;
        }

        var count = _big ? U64((int)offset) : U16((int)offset);
        var end = offset + countSize;
        if (count > ((ulong)_data.Length - end) / entrySize || (count * entrySize) + (_big ? 8UL : 4UL) > (ulong)_data.Length - end)
        {
            return false;
        }

        var entries = new Dictionary<ushort, TiffEntry>((int)Math.Min(count, 64));
        for (ulong i = 0; i < count; i++)
        {
            var at = (int)(end + (i * entrySize));
            var type = U16(at + 2);
            var values = _big ? U64(at + 4) : U32(at + 4);
            var inlineAt = (ulong)at + (_big ? 12UL : 8UL);
            var size = TypeSize(type);
            var inline = size != 0 && values <= (_big ? 8UL : 4UL) / size;
            entries.TryAdd(U16(at), new TiffEntry(type, values, inline ? inlineAt : (_big ? U64((int)inlineAt) : U32((int)inlineAt))));
        }

        var nextAt = (int)(end + (count * entrySize));
        directory = new TiffDirectory(entries, _big ? U64(nextAt) : U32(nextAt), count);
        return true;
    }

    /// <summary>Reads value <paramref name="index"/> of an integer entry; false when it is not an integer or lies outside the data.</summary>
    public bool TryReadValue(TiffEntry entry, ulong index, out ulong value)
    {
        value = 0;
        var size = TypeSize(entry.Type);
        if (index >= entry.Count || size == 0 || entry.Type is 5 or 10 or 12)
        {
            return false;
        }

        var at = entry.ValueAt + (index * size);
        if (at > (ulong)_data.Length || size > (ulong)_data.Length - at)
        {
            return false;
        }

        value = size switch
        {
            1 => _data[(int)at],
            2 => U16((int)at),
            4 => U32((int)at),
            _ => U64((int)at),
        };
        return true;
    }

    private static ulong TypeSize(ushort type) => type switch
    {
        1 or 2 or 6 or 7 => 1,
        3 or 8 => 2,
        4 or 9 or 11 or 13 => 4,
        5 or 10 or 12 or 16 or 17 or 18 => 8,
        _ => 0,
    };

    private ushort U16(int at) => _bigEndian ? BinaryPrimitives.ReadUInt16BigEndian(_data[at..]) : BinaryPrimitives.ReadUInt16LittleEndian(_data[at..]);

    private uint U32(int at) => _bigEndian ? BinaryPrimitives.ReadUInt32BigEndian(_data[at..]) : BinaryPrimitives.ReadUInt32LittleEndian(_data[at..]);

    private ulong U64(int at) => _bigEndian ? BinaryPrimitives.ReadUInt64BigEndian(_data[at..]) : BinaryPrimitives.ReadUInt64LittleEndian(_data[at..]);
}
