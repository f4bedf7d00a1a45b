namespace MaskFormer.Engine.Postprocessing;

/// <summary>
/// A binary mask at the original image size as runs of set pixels row by row: what instance inference
/// produces and what COCO RLE and tracking read, so holding and encoding a mask cost its boundary, not
/// the image's area. Pooled; dispose to return.
/// </summary>
internal sealed class MaskRuns : IDisposable
{
    // Row y owns runs [_rowStarts[y], _rowStarts[y + 1]); run k is _runs[2k] (first x) to _runs[2k + 1]
    // (one past the last x). A row's runs ascend and never touch.
    private int[]? _rowStarts;
    private int[]? _runs;

    /// <summary>Takes over <paramref name="rowStarts"/> (Height + 1 entries) and <paramref name="runs"/>, both rented from <see cref="EngineArrayPool{T}"/>.</summary>
    public MaskRuns(int width, int height, int[] rowStarts, int[] runs)
    {
        Width = width;
        Height = height;
        _rowStarts = rowStarts;
        _runs = runs;
    }

    public int Width { get; }

    public int Height { get; }

    public int RunCount => RowStarts[Height];

    private int[] RowStarts => _rowStarts ?? throw new ObjectDisposedException(nameof(MaskRuns));

    /// <summary>Row <paramref name="y"/>'s runs as pairs of x: start inclusive, end exclusive.</summary>
    public ReadOnlySpan<int> Row(int y)
    {
        var starts = RowStarts;
        return _runs.AsSpan(2 * starts[y], 2 * (starts[y + 1] - starts[y]));
    }

    /// <summary>The set pixels of <paramref name="mask"/>.</summary>
    public static MaskRuns FromBinary(BinaryMask mask) => FromBinary(mask, new PixelBox(0, 0, mask.Width, mask.Height));

    /// <summary>The set pixels of <paramref name="mask"/> inside <paramref name="box"/> (outside it every pixel is 0, as an instance's box says): reads only the box.</summary>
    public static MaskRuns FromBinary(BinaryMask mask, PixelBox box)
    {
        using var builder = new MaskRunsBuilder(0, mask.Height);
        for (var y = 0; y < mask.Height; y++)
        {
            if (y < box.Y || y >= box.Y + box.Height || box.Width <= 0)
            {
                builder.EndRow(y);
                continue;
            }

            ReadOnlySpan<byte> row = mask.Row(y)[..(box.X + box.Width)];
            var x = box.X;
            while (x < row.Length)
            {
                var start = row[x..].IndexOfAnyExcept((byte)0);
                if (start < 0)
                {
                    break;
                }

                start += x;
                var length = row[start..].IndexOf((byte)0);
                x = length < 0 ? row.Length : start + length;
                builder.Add(start, x);
            }

            builder.EndRow(y);
        }

        return builder.Build(mask.Width, mask.Height);
    }

    public MaskRuns Copy()
    {
        var rowStarts = EngineArrayPool<int>.Shared.Rent(Height + 1);
        var runs = EngineArrayPool<int>.Shared.Rent(Math.Max(1, 2 * RunCount));
        RowStarts.AsSpan(0, Height + 1).CopyTo(rowStarts);
        _runs.AsSpan(0, 2 * RunCount).CopyTo(runs);
        return new MaskRuns(Width, Height, rowStarts, runs);
    }

    /// <summary>The mask one byte a pixel: costs the image's area, for callers that need pixels.</summary>
    public BinaryMask ToBinaryMask()
    {
        var mask = new BinaryMask(Width, Height);
        for (var y = 0; y < Height; y++)
        {
            var row = mask.Row(y);
            var runs = Row(y);
            for (var i = 0; i < runs.Length; i += 2)
            {
                row[runs[i]..runs[i + 1]].Fill(1);
            }
        }

        return mask;
    }

    public void Dispose()
    {
        var rowStarts = Interlocked.Exchange(ref _rowStarts, null);
        if (rowStarts is not null)
        {
            EngineArrayPool<int>.Shared.Return(rowStarts);
            EngineArrayPool<int>.Shared.Return(Interlocked.Exchange(ref _runs, null)!);
        }
    }
}
