using System.Buffers;
using System.Numerics;
using MaskFormer.Engine.Postprocessing;

namespace MaskFormer.Engine.Tracking;

/// <summary>
/// A <see cref="RunMask"/> unpacked into one bit per pixel of its box, for as long as one frame's
/// matching compares it with many others: counting another mask's pixels in it then costs a few word
/// reads per run of the other mask, not a merge of both masks' runs. Rents its words; dispose it.
/// </summary>
internal sealed class MaskBits : IDisposable
{
    private readonly int _wordsPerRow;
    private ulong[]? _words;

    public MaskBits(RunMask mask)
    {
        Box = mask.Box;
        _wordsPerRow = (Box.Width + 63) >> 6;
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
                SetRange(row, runs[i] - Box.X, runs[i + 1] - Box.X);
            }
        }
    }

    public PixelBox Box { get; }

    /// <summary>Pixels set in row <paramref name="y"/> from <paramref name="start"/> (inclusive) to <paramref name="end"/> (exclusive), both inside the box.</summary>
    public long Count(int y, int start, int end)
    {
        var row = _words.AsSpan((y - Box.Y) * _wordsPerRow, _wordsPerRow);
        var (a, b) = (start - Box.X, end - Box.X - 1);
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

    public void Dispose()
    {
        if (_words is { } words)
        {
            _words = null;
            ArrayPool<ulong>.Shared.Return(words);
        }
    }

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
