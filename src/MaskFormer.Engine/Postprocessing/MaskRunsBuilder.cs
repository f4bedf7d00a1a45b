namespace MaskFormer.Engine.Postprocessing;

/// <summary>
/// Collects the runs of consecutive rows of a mask, left to right, into pooled buffers; a run that
/// touches the one before it in its row extends it. Bands of rows built apart (on different threads)
/// are joined by <see cref="Build(ReadOnlySpan{MaskRunsBuilder}, int, int)"/>.
/// </summary>
internal sealed class MaskRunsBuilder : IDisposable
{
    private readonly int _firstRow;
    private int[] _rowEnds;
    private int[] _runs;
    private int _length;
    private int _rowStart;
    private int _rows;
    private bool _disposed;

    /// <summary>A builder for rows <paramref name="firstRow"/> on, one <see cref="EndRow"/> each.</summary>
    public MaskRunsBuilder(int firstRow, int rowCount)
    {
        _firstRow = firstRow;
        _rowEnds = EngineArrayPool<int>.Shared.Rent(rowCount);
        _runs = EngineArrayPool<int>.Shared.Rent(Math.Max(16, 4 * rowCount));
    }

    /// <summary>Pixels in the runs added so far.</summary>
    public long Area { get; private set; }

    /// <summary>Adds pixels [<paramref name="start"/>, <paramref name="end"/>) of the current row, right of every run added to it before.</summary>
    public void Add(int start, int end)
    {
        Area += end - start;
        if (_length > _rowStart && _runs[_length - 1] == start)
        {
            _runs[_length - 1] = end;
            return;
        }

        if (_length + 2 > _runs.Length)
        {
            var larger = EngineArrayPool<int>.Shared.Rent(2 * _runs.Length);
            _runs.AsSpan(0, _length).CopyTo(larger);
            EngineArrayPool<int>.Shared.Return(_runs);
            _runs = larger;
        }

        _runs[_length] = start;
        _runs[_length + 1] = end;
        _length += 2;
    }

    /// <summary>Ends the current row; <paramref name="y"/> is its index in the image (checked).</summary>
    public void EndRow(int y)
    {
        if (y != _firstRow + _rows)
        {
            throw new InvalidOperationException($"Row {y} ended; row {_firstRow + _rows} was expected.");
        }

        _rowEnds[_rows++] = _length / 2;
        _rowStart = _length;
    }

    /// <summary>A single builder of every row.</summary>
    public MaskRuns Build(int width, int height) => Build([this], width, height);

    /// <summary>Joins bands that together cover rows [0, <paramref name="height"/>) in order.</summary>
    public static MaskRuns Build(ReadOnlySpan<MaskRunsBuilder> bands, int width, int height)
    {
        var total = 0;
        foreach (var band in bands)
        {
            total += band._length;
        }

        var rowStarts = EngineArrayPool<int>.Shared.Rent(height + 1);
        var runs = EngineArrayPool<int>.Shared.Rent(Math.Max(1, total));
        var (row, offset) = (0, 0);
        rowStarts[0] = 0;
        foreach (var band in bands)
        {
            if (band._firstRow != row)
            {
                EngineArrayPool<int>.Shared.Return(rowStarts);
                EngineArrayPool<int>.Shared.Return(runs);
                throw new InvalidOperationException($"A band starts at row {band._firstRow}; row {row} was expected.");
            }

            band._runs.AsSpan(0, band._length).CopyTo(runs.AsSpan(offset));
            for (var r = 0; r < band._rows; r++)
            {
                rowStarts[row + r + 1] = (offset / 2) + band._rowEnds[r];
            }

            (row, offset) = (row + band._rows, offset + band._length);
        }

        if (row != height)
        {
            EngineArrayPool<int>.Shared.Return(rowStarts);
            EngineArrayPool<int>.Shared.Return(runs);
            throw new InvalidOperationException($"The bands end at row {row} of {height}.");
        }

        return new MaskRuns(width, height, rowStarts, runs);
    }

    public void Dispose()
    {
        if (!_disposed)
        {
            _disposed = true;
            EngineArrayPool<int>.Shared.Return(_rowEnds);
            EngineArrayPool<int>.Shared.Return(_runs);
        }
    }
}
