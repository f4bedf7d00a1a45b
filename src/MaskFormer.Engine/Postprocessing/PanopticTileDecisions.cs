namespace MaskFormer.Engine.Postprocessing;

/// <summary>
/// What panoptic pass 0 decided of each tile from the bounds alone, kept row by row so that pass 1 reads
/// it back instead of deciding every tile again: per tile, its winner where the bounds decide one and that
/// query's mask state there, and for a tile decided per pixel the kept queries its pixels read, each with
/// its mask state. Pass 1 reads a few numbers per tile where deciding reads three bounds per kept query.
/// </summary>
internal sealed class PanopticTileDecisions : IDisposable
{
    /// <summary>The winner entry of a tile whose winner the bounds leave open.</summary>
    public const int NoWinner = -1;

    private readonly int _columns;
    private readonly int[] _winners;
    private readonly byte[] _winnerStates;
    private readonly int[] _relevantCounts;

    // Per tile row, its per-pixel tiles' queries in tile order, each packed as (k << 2) | mask state.
    private readonly int[]?[] _relevant;

    public PanopticTileDecisions(int rows, int columns)
    {
        _columns = columns;
        _winners = EngineArrayPool<int>.Shared.Rent(rows * columns);
        _winnerStates = EngineArrayPool<byte>.Shared.Rent(rows * columns);
        _relevantCounts = EngineArrayPool<int>.Shared.Rent(rows * columns);
        _relevant = new int[]?[rows];
    }

    /// <summary>Each tile's winner in row <paramref name="row"/>, or <see cref="NoWinner"/>.</summary>
    public Span<int> Winners(int row) => _winners.AsSpan(row * _columns, _columns);

    /// <summary>Each tile's winner's mask state there, where it has a winner.</summary>
    public Span<byte> WinnerStates(int row) => _winnerStates.AsSpan(row * _columns, _columns);

    /// <summary>How many packed queries each tile of the row holds in <see cref="Relevant"/> (0 for a tile not decided per pixel).</summary>
    public Span<int> RelevantCounts(int row) => _relevantCounts.AsSpan(row * _columns, _columns);

    /// <summary>The row's packed queries, tile after tile; empty until <see cref="RentRelevant"/>.</summary>
    public ReadOnlySpan<int> Relevant(int row) => _relevant[row];

    /// <summary>
    /// Room for <paramref name="count"/> packed queries of row <paramref name="row"/>: once per row, by the
    /// pass 0 thread that decides it (pass 1 reads the rows after pass 0 has joined).
    /// </summary>
    public Span<int> RentRelevant(int row, int count) => (_relevant[row] = EngineArrayPool<int>.Shared.Rent(count)).AsSpan(0, count);

    public void Dispose()
    {
        EngineArrayPool<int>.Shared.Return(_winners);
        EngineArrayPool<byte>.Shared.Return(_winnerStates);
        EngineArrayPool<int>.Shared.Return(_relevantCounts);
        foreach (var buffer in _relevant)
        {
            if (buffer is not null)
            {
                EngineArrayPool<int>.Shared.Return(buffer);
            }
        }
    }
}
