using System.Buffers;
using System.Numerics;
using MaskFormer.Engine.Postprocessing;

namespace MaskFormer.Engine.Tracking;

/// <summary>
/// A <see cref="RunMask"/> unpacked into one bit per pixel of its box, for as long as one frame's
/// matching compares it with many others: two unpacked masks then share pixels at a word per 64
/// pixels of the rows and columns their boxes share, and a packed one at a few word reads per run.
/// Words sit at absolute positions (bit x of a row is bit x % 64 of word x / 64), so any two masks'
/// words line up. Rents its words; dispose it.
/// </summary>
internal sealed class MaskBits : IDisposable
{
    private readonly int _firstWord;
    private readonly int _wordsPerRow;
    private ulong[]? _words;

    public MaskBits(RunMask mask)
    {
        Box = mask.Box;
        _firstWord = Box.X >> 6;
        _wordsPerRow = Box.Width == 0 ? 0 : ((Box.X + Box.Width - 1) >> 6) - _firstWord + 1;
        var length = _wordsPerRow * Box.Height;
        _words = ArrayPool<ulong>.Shared.Rent(Math.Max(length, 1));
        var words = _words.AsSpan(0, length);
        words.Clear();
        for (var r = 0; r < Box.Height; r++)
        {
            var row = words.Slice(r * _wordsPerRow, _wordsPerRow);
            var runs = mask.RowRuns(Box.Y + r);
            for (var i = 0; i < runs.Length; i += 2)
            {
                SetRange(row, runs[i] - (_firstWord << 6), runs[i + 1] - (_firstWord << 6));
            }
        }
    }

    public PixelBox Box { get; }

    /// <summary>Pixels set in row <paramref name="y"/> from <paramref name="start"/> (inclusive) to <paramref name="end"/> (exclusive), both inside the box.</summary>
    public long Count(int y, int start, int end)
    {
        var row = Row(y);
        var (a, b) = (start - (_firstWord << 6), end - (_firstWord << 6) - 1);
        var (first, last) = (a >> 6, b >> 6);
        var low = ~0UL << (a & 63);
        var high = ~0UL >> (63 - (b & 63));
        if (first == last)
        {
            return BitOperations.PopCount(row[first] & low & high);
        }

        long count = BitOperations.PopCount(row[first] & low) + BitOperations.PopCount(row[last] & high);
        for (var w = first + 1; w < last; w++)
        {
            count += BitOperations.PopCount(row[w]);
        }

        return count;
    }

    /// <summary>Pixels set in both masks.</summary>
    public long Intersection(MaskBits other)
    {
        var (top, bottom) = (Math.Max(Box.Y, other.Box.Y), Math.Min(Box.Y + Box.Height, other.Box.Y + other.Box.Height));
        var (first, last) = (Math.Max(_firstWord, other._firstWord), Math.Min(_firstWord + _wordsPerRow, other._firstWord + other._wordsPerRow));
        long count = 0;
        for (var y = top; y < bottom && first < last; y++)
        {
            var mine = Row(y)[(first - _firstWord)..(last - _firstWord)];
            var theirs = other.Row(y)[(first - other._firstWord)..(last - other._firstWord)];
            for (var w = 0; w < mine.Length; w++)
            {
                count += BitOperations.PopCount(mine[w] & theirs[w]);
            }
        }

        return count;
    }

    public void Dispose()
    {
        if (_words is { } words)
        {
            _words = null;
            ArrayPool<ulong>.Shared.Return(words);
        }
    }

    private ReadOnlySpan<ulong> Row(int y) => _words.AsSpan((y - Box.Y) * _wordsPerRow, _wordsPerRow);

    private static void SetRange(Span<ulong> row, int start, int end)
    {
        var (a, b) = (start, end - 1);
        var (first, last) = (a >> 6, b >> 6);
        var low = ~0UL << (a & 63);
        var high = ~0UL >> (63 - (b & 63));
        if (first == last)
        {
            row[first] |= low & high;
            return;
        }

        row[first] |= low;
        row[(first + 1)..last].Fill(~0UL);
        row[last] |= high;
    }
}
