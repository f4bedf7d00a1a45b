using System.Buffers;
using System.Numerics;
using System.Runtime.CompilerServices;
using System.Runtime.InteropServices;
using System.Runtime.Intrinsics;

namespace MaskFormer.Engine.Postprocessing;

/// <summary>
/// Pass 1 of panoptic inference over one row of tiles at a time, with its scratch space and area
/// counts (one per worker thread).
/// </summary>
internal sealed partial class PanopticTileRow : IDisposable
{
    /// <summary>The tile value of a tile decided per pixel.</summary>
    public const ushort Mixed = ushort.MaxValue;

    private const int Outside = 0;
    private const int Inside = 1;
    private const int Undecided = 2;

    // A run's kind besides the three mask states: the tile's winner is decided and only its own mask is computed.
    private const int Assign = 3;

    // Eight live lanes, then eight dead: the mask for the last r lanes of a run starts at 8 - r.
    private static readonly int[] s_lanes = [-1, -1, -1, -1, -1, -1, -1, -1, 0, 0, 0, 0, 0, 0, 0, 0];

    // A logit this far from 0 has a float32 sigmoid clearly on its side of 0.5.
    private const float SignMargin = 1e-3f;

    // score · sigmoid in float32 is within a few ulps of the true product, and so are the bounds:
    // four times the sum of both, relative, plus slack for denormals.
    private const float RelativeMargin = 4e-6f;
    private const float AbsoluteSlack = 1e-30f;

    private readonly MaskTiles _tiles;
    private readonly List<(int Query, int Label, float Score)> _kept;
    // Per kept query k and tile t of the row, at [k * tiles + t]: its mask state, and whether it can
    // win there (all bits set) by the bounds.
    private readonly int[] _state;
    private readonly int[] _canWin;
    private readonly int[] _winner;
    private readonly bool[] _winnerDecided;
    private readonly float[] _winnerLower;
    private readonly int[] _inRunning;
    private readonly int[] _widths;
    private readonly int[] _mixedTiles;

    // Per mixed tile, the kept queries (ascending) a pixel's decision reads: undecided masks, queries
    // still in the running, the decided winner. The others are on one side everywhere in the tile and
    // cannot win there, so skipping them changes nothing and keeps the per-pixel work to the boundary.
    private readonly int[] _relevant;
    private readonly int[] _relevantCount;

    // Mixed tile i's pixels are at positions [_mixedStart[i], _mixedStart[i + 1]) of the row's mixed pixels.
    private readonly int[] _mixedStart;
    private readonly int[] _gathered;
    private readonly float[] _values;
    private readonly float[] _blend;

    // Per kept query, the runs of the row's mixed pixels it is computed at (first output column,
    // position among the mixed pixels, length, what its value says of its own mask), for one band of
    // output rows: as Gather lists them, one per tile or block, then merged by MergeRuns (positions,
    // lengths and kinds in place; the columns into the interpolation spans, _span*); and per mixed pixel
    // the running first strict maximum over the queries.
    private readonly int[] _runStart;
    private readonly int[] _runX;
    private readonly int[] _runPosition;
    private readonly int[] _runLength;
    private readonly byte[] _runKind;
    private readonly int[] _spanStart;
    private readonly int[] _spanX;
    private readonly int[] _spanLength;
    private readonly float[] _best;
    private readonly int[] _assigned;
    private readonly int[] _preset;

    // Whether a pixel's value must say if the winner's own mask covers it (Mask2Former's rule); for
    // MaskFormer only the winner matters, so a tile with a decided winner is decided whatever its mask.
    private readonly bool _winnerMaskMatters;

    // Queries sure to be dropped (null: none known), the row's tiles left void because only such queries
    // can win them, and per kept query the pixels of this row's solved tiles it could have won and did not.
    private readonly PanopticDropBounds? _drops;
    private readonly bool[] _skipped;
    private readonly long[] _notWon;
    private readonly long[] _ownMaskSeen;

    // Pass 0's tile decisions: written by AddWonBounds, read back by Solve (null: each decides its own).
    private readonly PanopticTileDecisions? _decisions;

    public PanopticTileRow(MaskTiles tiles, List<(int Query, int Label, float Score)> kept, PanopticInference.AreaCounts counts, bool winnerMaskMatters, PanopticDropBounds? drops = null, PanopticTileDecisions? decisions = null)
    {
        _tiles = tiles;
        _kept = kept;
        _winnerMaskMatters = winnerMaskMatters;
        _drops = drops;
        _decisions = decisions;
        Counts = counts;
        var columns = tiles.TileColumns.Count;
        var width = tiles.Upsampler.Width;
        _state = EngineArrayPool<int>.Shared.Rent(columns * kept.Count);
        _canWin = EngineArrayPool<int>.Shared.Rent(columns * kept.Count);
        _widths = EngineArrayPool<int>.Shared.Rent(columns);
        for (var t = 0; t < columns; t++)
        {
            _widths[t] = tiles.TileColumns.Length(t);
        }
        _winner = EngineArrayPool<int>.Shared.Rent(columns);
        _winnerDecided = EngineArrayPool<bool>.Shared.Rent(columns);
        _winnerLower = EngineArrayPool<float>.Shared.Rent(columns);
        _inRunning = EngineArrayPool<int>.Shared.Rent(columns);
        _mixedTiles = EngineArrayPool<int>.Shared.Rent(columns);
        _relevant = EngineArrayPool<int>.Shared.Rent(columns * kept.Count);
        _relevantCount = EngineArrayPool<int>.Shared.Rent(columns);
        _mixedStart = EngineArrayPool<int>.Shared.Rent(columns + 1);
        _gathered = EngineArrayPool<int>.Shared.Rent(width);
        _values = EngineArrayPool<float>.Shared.Rent(Math.Max(width, 16) + Vector256<float>.Count);
        _blend = EngineArrayPool<float>.Shared.Rent(tiles.Upsampler.ScratchLength);
        _runStart = EngineArrayPool<int>.Shared.Rent(kept.Count + 1);
        _runX = EngineArrayPool<int>.Shared.Rent(kept.Count * width);
        _runPosition = EngineArrayPool<int>.Shared.Rent(kept.Count * width);
        _runLength = EngineArrayPool<int>.Shared.Rent(kept.Count * width);
        _runKind = EngineArrayPool<byte>.Shared.Rent(kept.Count * width);
        _spanStart = EngineArrayPool<int>.Shared.Rent(kept.Count + 1);
        _spanX = EngineArrayPool<int>.Shared.Rent(kept.Count * width);
        _spanLength = EngineArrayPool<int>.Shared.Rent(kept.Count * width);
        _best = EngineArrayPool<float>.Shared.Rent(width + Vector256<float>.Count);
        _assigned = EngineArrayPool<int>.Shared.Rent(width + Vector256<int>.Count);
        _preset = EngineArrayPool<int>.Shared.Rent(width);
        _skipped = EngineArrayPool<bool>.Shared.Rent(columns);
        _notWon = EngineArrayPool<long>.Shared.Rent(kept.Count);
        _notWon.AsSpan(0, kept.Count).Clear();
        _ownMaskSeen = EngineArrayPool<long>.Shared.Rent(kept.Count);
        _ownMaskSeen.AsSpan(0, kept.Count).Clear();
        (_refined, _blockBase, _boundBase, _cursor, _blockLower, _blockUpper, _blockRelevant, _blockRelevantCount, _grid) = RentBlocks(tiles, kept.Count);
    }

    public PanopticInference.AreaCounts Counts { get; }

    /// <summary>
    /// Adds to <paramref name="wonUpper"/>[k] the pixels of tile row <paramref name="row"/> that kept
    /// query k can win by the tile bounds, and its own mask area known from them to <see cref="Counts"/>;
    /// returns the row's undecided pixels times the queries in the running on each: the per-pixel work
    /// pass 1 has there before any query is dropped. With decisions given, keeps the row's for pass 1.
    /// </summary>
    public long AddWonBounds(int row, long[] wonUpper)
    {
        var columns = _tiles.TileColumns;
        var tileHeight = _tiles.TileRows.Length(row);
        DecideTiles(row, tileHeight);
        if (_decisions is not null)
        {
            Record(row);
        }

        var work = 0L;
        for (var t = 0; t < columns.Count; t++)
        {
            var pixels = (long)tileHeight * columns.Length(t);
            if (_winnerDecided[t])
            {
                wonUpper[_winner[t]] += pixels;
                continue;
            }

            foreach (var k in _relevant.AsSpan(t * _kept.Count, _relevantCount[t]))
            {
                wonUpper[k] += pixels;
            }

            work += pixels * _relevantCount[t];
        }

        return work;
    }

    /// <summary>
    /// Decides tile row <paramref name="row"/>: a decided tile's assignment goes to
    /// <paramref name="tileValues"/>, a mixed tile's pixels' assignments to <paramref name="ids"/>. With
    /// decisions given, the tiles' are pass 0's, and the own mask areas known from the bounds are left to
    /// pass 0's counts.
    /// </summary>
    public void Solve(int row, LabelMap ids, ushort[] tileValues)
    {
        var columns = _tiles.TileColumns;
        var rows = _tiles.TileRows;
        var tileHeight = rows.Starts[row + 1] - rows.Starts[row];
        var mixedCount = _decisions is null ? DecideTiles(row, tileHeight) : Restore(row);
        for (var t = 0; t < columns.Count; t++)
        {
            if (_winnerDecided[t])
            {
                var winner = _winner[t];
                var pixels = (long)tileHeight * columns.Length(t);
                Counts.Won[winner] += pixels;
                if (State(t, winner) == Inside)
                {
                    Counts.WonInsideMask[winner] += pixels;
                }
            }

            tileValues[(row * columns.Count) + t] = Mixed;
        }

        var pixelCount = 0;
        for (var i = 0; i < mixedCount; i++)
        {
            _mixedStart[i] = pixelCount;
            pixelCount += columns.Length(_mixedTiles[i]);
        }

        _mixedStart[mixedCount] = pixelCount;

        for (var t = 0; t < columns.Count; t++)
        {
            if (_winnerDecided[t] && !IsMixed(t))
            {
                var winner = _winner[t];
                tileValues[(row * columns.Count) + t] = (ushort)(State(t, winner) == Inside ? winner : winner | PanopticInference.BelowHalf);
            }
            else if (_skipped[t])
            {
                // Any of its candidates: all are dropped, so the tile's pixels end void.
                tileValues[(row * columns.Count) + t] = (ushort)_relevant[t * _kept.Count];
                Counts.SkippedPixels += (long)tileHeight * columns.Length(t);
            }
        }

        if (pixelCount == 0)
        {
            return;
        }

        if (_drops is not null)
        {
            for (var i = 0; i < mixedCount; i++)
            {
                var t = _mixedTiles[i];
                if (!_winnerDecided[t])
                {
                    var pixels = (long)tileHeight * columns.Length(t);
                    foreach (var k in _relevant.AsSpan(t * _kept.Count, _relevantCount[t]))
                    {
                        _notWon[k] += pixels;
                    }
                }
            }
        }

        // Bands of output rows: the row blocks where some tile is cut into blocks, else the whole row.
        var refined = RefineBlocks(row, mixedCount);
        var blockRows = _tiles.BlockRows;
        var bands = refined ? blockRows.BlockCount(row) : 1;
        for (var band = 0; band < bands; band++)
        {
            var (y0, y1) = refined
                ? (blockRows.Starts[blockRows.TileFirst[row] + band], blockRows.Starts[blockRows.TileFirst[row] + band + 1])
                : (rows.Starts[row], rows.Starts[row + 1]);
            Gather(band, mixedCount);
            for (var y = y0; y < y1; y++)
            {
                SolvePixels(y, mixedCount, ids.Row(y));
            }
        }

        _drops?.Settle(_notWon.AsSpan(0, _kept.Count), _ownMaskSeen.AsSpan(0, _kept.Count));
    }

    /// <summary>
    /// Adds to <paramref name="counts"/>[i] the pixels of tile row <paramref name="row"/> where kept query
    /// <paramref name="queries"/>[i]'s mask is undecided by the bounds and its sigmoid, computed as the
    /// dense computation does, is at least 0.5.
    /// </summary>
    public void CountMask(int row, ReadOnlySpan<int> queries, long[] counts)
    {
        var columns = _tiles.TileColumns;
        var rows = _tiles.TileRows;
        var width = _tiles.Upsampler.Width;
        for (var i = 0; i < queries.Length; i++)
        {
            var k = queries[i];
            var query = _kept[k].Query;
            var lower = _tiles.Lower(query, row);
            var upper = _tiles.Upper(query, row);
            var count = 0;
            for (var t = 0; t < columns.Count; t++)
            {
                if (!(lower[t] > SignMargin) && !(upper[t] < -SignMargin))
                {
                    for (var x = columns.Starts[t]; x < columns.Starts[t + 1]; x++)
                    {
                        _gathered[count++] = x;
                    }
                }
            }

            if (count == 0)
            {
                continue;
            }

            var padded = PixelBatch.PaddedLength(count, width);
            var values = _values.AsSpan(0, padded);
            for (var y = rows.Starts[row]; y < rows.Starts[row + 1]; y++)
            {
                _tiles.Upsampler.ComputePixels(query, y, _gathered.AsSpan(0, count), values, _blend);
                values[count..].Clear();
                LibrarySigmoid.Compute(values, values);
                var inside = 0L;
                foreach (var sigmoid in values[..count])
                {
                    inside += sigmoid >= 0.5f ? 1 : 0;
                }

                counts[i] += inside;
            }
        }
    }

    public void Dispose()
    {
        EngineArrayPool<int>.Shared.Return(_state);
        EngineArrayPool<int>.Shared.Return(_canWin);
        EngineArrayPool<int>.Shared.Return(_widths);
        EngineArrayPool<int>.Shared.Return(_winner);
        EngineArrayPool<bool>.Shared.Return(_winnerDecided);
        EngineArrayPool<float>.Shared.Return(_winnerLower);
        EngineArrayPool<int>.Shared.Return(_inRunning);
        EngineArrayPool<int>.Shared.Return(_mixedTiles);
        EngineArrayPool<int>.Shared.Return(_relevant);
        EngineArrayPool<int>.Shared.Return(_relevantCount);
        EngineArrayPool<int>.Shared.Return(_mixedStart);
        EngineArrayPool<int>.Shared.Return(_gathered);
        EngineArrayPool<float>.Shared.Return(_values);
        EngineArrayPool<float>.Shared.Return(_blend);
        EngineArrayPool<int>.Shared.Return(_runStart);
        EngineArrayPool<int>.Shared.Return(_runX);
        EngineArrayPool<int>.Shared.Return(_runPosition);
        EngineArrayPool<int>.Shared.Return(_runLength);
        EngineArrayPool<byte>.Shared.Return(_runKind);
        EngineArrayPool<int>.Shared.Return(_spanStart);
        EngineArrayPool<int>.Shared.Return(_spanX);
        EngineArrayPool<int>.Shared.Return(_spanLength);
        EngineArrayPool<float>.Shared.Return(_best);
        EngineArrayPool<int>.Shared.Return(_assigned);
        EngineArrayPool<int>.Shared.Return(_preset);
        EngineArrayPool<bool>.Shared.Return(_skipped);
        EngineArrayPool<long>.Shared.Return(_notWon);
        EngineArrayPool<long>.Shared.Return(_ownMaskSeen);
        ReturnBlocks();
    }

    private int State(int t, int k) => _state[(k * _tiles.TileColumns.Count) + t];

    private bool IsMixed(int t) => !_winnerDecided[t] || (_winnerMaskMatters && State(t, _winner[t]) == Undecided);

    // Query by query over the row's tiles, eight tiles at a time: each tile's winner (the first
    // greatest score · lower sigmoid), each query's mask state and own mask area known from the
    // bounds, then which queries can still beat the winner. Written so that a NaN anywhere leaves
    // every query undecided and in the running.
    private int DecideTiles(int row, int tileHeight)
    {
        var columns = _tiles.TileColumns.Count;
        var kept = _kept.Count;
        var lanes = Vector256<float>.Count;
        ref var winner = ref MemoryMarshal.GetArrayDataReference(_winner);
        ref var winnerLower = ref MemoryMarshal.GetArrayDataReference(_winnerLower);
        ref var widths = ref MemoryMarshal.GetArrayDataReference(_widths);
        var (inside, outside) = (Vector256.Create(SignMargin), Vector256.Create(-SignMargin));
        for (var k = 0; k < kept; k++)
        {
            var (query, _, score) = _kept[k];
            ref var lower = ref MemoryMarshal.GetReference(_tiles.Lower(query, row));
            ref var upper = ref MemoryMarshal.GetReference(_tiles.Upper(query, row));
            ref var sigmoidLower = ref MemoryMarshal.GetReference(_tiles.SigmoidLower(query, row));
            ref var state = ref _state[k * columns];
            var (insideWidth, undecidedWidth) = (Vector256<int>.Zero, Vector256<int>.Zero);
            var t = 0;
            for (; t + lanes <= columns; t += lanes)
            {
                var at = (nuint)t;
                var isInside = Vector256.GreaterThan(Vector256.LoadUnsafe(ref lower, at), inside).AsInt32();
                var isUndecided = ~(isInside | Vector256.LessThan(Vector256.LoadUnsafe(ref upper, at), outside).AsInt32());
                ((isInside & Vector256.Create(Inside)) | (isUndecided & Vector256.Create(Undecided))).StoreUnsafe(ref state, at);
                var width = Vector256.LoadUnsafe(ref widths, at);
                (insideWidth, undecidedWidth) = (insideWidth + (isInside & width), undecidedWidth + (isUndecided & width));
                var scoreLower = Vector256.LoadUnsafe(ref sigmoidLower, at) * score;
                var best = Vector256.LoadUnsafe(ref winnerLower, at);
                var take = k == 0 ? Vector256<int>.AllBitsSet : Vector256.GreaterThan(scoreLower, best).AsInt32();
                Vector256.ConditionalSelect(take.AsSingle(), scoreLower, best).StoreUnsafe(ref winnerLower, at);
                Vector256.ConditionalSelect(take, Vector256.Create(k), Vector256.LoadUnsafe(ref winner, at)).StoreUnsafe(ref winner, at);
            }

            var (insideSum, undecidedSum) = (Vector256.Sum(insideWidth), Vector256.Sum(undecidedWidth));
            for (; t < columns; t++)
            {
                var tileState = Unsafe.Add(ref lower, t) > SignMargin ? Inside : Unsafe.Add(ref upper, t) < -SignMargin ? Outside : Undecided;
                Unsafe.Add(ref state, t) = tileState;
                insideSum += tileState == Inside ? _widths[t] : 0;
                undecidedSum += tileState == Undecided ? _widths[t] : 0;
                var scoreLower = score * Unsafe.Add(ref sigmoidLower, t);
                if (k == 0 || scoreLower > _winnerLower[t])
                {
                    (_winner[t], _winnerLower[t]) = (k, scoreLower);
                }
            }

            // Own mask areas from the bounds; the undecided pixels are counted only for the queries
            // whose keep-or-drop the bounds leave open (CountMask).
            Counts.Mask[k] += (long)tileHeight * insideSum;
            Counts.MaskUndecided[k] += (long)tileHeight * undecidedSum;
        }

        for (var t = 0; t < columns; t++)
        {
            _winnerLower[t] = (_winnerLower[t] * (1f - RelativeMargin)) - AbsoluteSlack;
        }

        var inRunning = _inRunning.AsSpan(0, columns);
        inRunning.Clear();
        ref var running = ref MemoryMarshal.GetArrayDataReference(_inRunning);
        for (var k = 0; k < kept; k++)
        {
            var (query, _, score) = _kept[k];
            ref var sigmoidUpper = ref MemoryMarshal.GetReference(_tiles.SigmoidUpper(query, row));
            ref var canWin = ref _canWin[k * columns];
            var t = 0;
            for (; t + lanes <= columns; t += lanes)
            {
                var at = (nuint)t;
                var scoreUpper = Vector256.LoadUnsafe(ref sigmoidUpper, at) * score;
                var beaten = Vector256.LessThan((scoreUpper * (1f + RelativeMargin)) + Vector256.Create(AbsoluteSlack), Vector256.LoadUnsafe(ref winnerLower, at)).AsInt32();
                var can = Vector256.Equals(Vector256.LoadUnsafe(ref winner, at), Vector256.Create(k)) | ~beaten;
                can.StoreUnsafe(ref canWin, at);
                (Vector256.LoadUnsafe(ref running, at) - can).StoreUnsafe(ref running, at);
            }

            for (; t < columns; t++)
            {
                var scoreUpper = score * Unsafe.Add(ref sigmoidUpper, t);
                var can = k == _winner[t] || !((scoreUpper * (1f + RelativeMargin)) + AbsoluteSlack < _winnerLower[t]);
                Unsafe.Add(ref canWin, t) = can ? -1 : 0;
                inRunning[t] += can ? 1 : 0;
            }
        }

        var mixed = 0;
        for (var t = 0; t < columns; t++)
        {
            _winnerDecided[t] = inRunning[t] == 1;
            _skipped[t] = false;
            if (IsMixed(t))
            {
                // A kept query needs its per-pixel sigmoid in a mixed tile when it is still in the
                // running for a winner the bounds left open, or when it is the decided winner and its
                // own mask, undecided there, matters.
                if (_winnerDecided[t])
                {
                    (_relevant[t * kept], _relevantCount[t]) = (_winner[t], 1);
                }
                else
                {
                    // The winner can always win. Written whole and kept by the count (can-win is all bits
                    // or none): about half the queries are in the running, so a branch would guess wrong often.
                    var count = 0;
                    ref var relevant = ref _relevant[t * kept];
                    for (var k = 0; k < kept; k++)
                    {
                        Unsafe.Add(ref relevant, count) = k;
                        count -= _canWin[(k * columns) + t];
                    }

                    _relevantCount[t] = count;
                }

                // Where only queries sure to be dropped can win, the pixels end void whoever wins.
                _skipped[t] = _drops is not null && _drops.AllDropped(_relevant.AsSpan(t * kept, _relevantCount[t]));
                if (!_skipped[t])
                {
                    _mixedTiles[mixed++] = t;
                }
            }
        }

        return mixed;
    }

    // Keeps what DecideTiles found of tile row `row` for Restore: each tile's winner and its mask state, and
    // each mixed tile's relevant queries with their mask states (the only states pass 1 reads).
    private void Record(int row)
    {
        var (columns, kept) = (_tiles.TileColumns.Count, _kept.Count);
        var winners = _decisions!.Winners(row);
        var winnerStates = _decisions.WinnerStates(row);
        var counts = _decisions.RelevantCounts(row);
        var total = 0;
        for (var t = 0; t < columns; t++)
        {
            (winners[t], winnerStates[t]) = _winnerDecided[t] ? (_winner[t], (byte)State(t, _winner[t])) : (PanopticTileDecisions.NoWinner, (byte)0);
            counts[t] = IsMixed(t) ? _relevantCount[t] : 0;
            total += counts[t];
        }

        var relevant = _decisions.RentRelevant(row, total);
        var at = 0;
        for (var t = 0; t < columns; t++)
        {
            foreach (var k in _relevant.AsSpan(t * kept, counts[t]))
            {
                relevant[at++] = (k << 2) | State(t, k);
            }
        }
    }

    // DecideTiles from pass 0's decisions (Record): the same winners, mixed tiles, relevant lists and the
    // mask states read of them; which mixed tiles are skipped is decided now, by the drops known so far.
    private int Restore(int row)
    {
        var (columns, kept) = (_tiles.TileColumns.Count, _kept.Count);
        var winners = _decisions!.Winners(row);
        var winnerStates = _decisions.WinnerStates(row);
        var counts = _decisions.RelevantCounts(row);
        var relevant = _decisions.Relevant(row);
        var (mixed, at) = (0, 0);
        for (var t = 0; t < columns; t++)
        {
            var winner = winners[t];
            _winnerDecided[t] = winner != PanopticTileDecisions.NoWinner;
            _skipped[t] = false;
            if (_winnerDecided[t])
            {
                _winner[t] = winner;
                _state[(winner * columns) + t] = winnerStates[t];
            }

            // A tile is mixed exactly where it lists queries: an open winner has two in the running at
            // least, a decided one whose own mask matters lists itself.
            var count = counts[t];
            if (count == 0)
            {
                continue;
            }

            var list = _relevant.AsSpan(t * kept, count);
            for (var i = 0; i < count; i++)
            {
                var packed = relevant[at++];
                var k = packed >> 2;
                list[i] = k;
                _state[(k * columns) + t] = packed & 3;
            }

            _relevantCount[t] = count;
            _skipped[t] = _drops is not null && _drops.AllDropped(list);
            if (!_skipped[t])
            {
                _mixedTiles[mixed++] = t;
            }
        }

        return mixed;
    }

    // The dense computation's operations on the mixed pixels of row y: each kept query's sigmoid on
    // its runs, in query order, keeping each pixel's first strict maximum (as torch.argmax), then the
    // area counts. A merged run joins only tiles or blocks that agree on what is read of its kind here
    // (whether it only assigns the decided winner's own mask, and, where drop bounds count, whether that
    // mask is undecided); eight pixels at a time, the same float32 products and comparisons as per pixel.
    private void SolvePixels(int y, int mixedCount, Span<ushort> assignment)
    {
        var width = _tiles.Upsampler.Width;
        var kept = _kept.Count;
        var pixelCount = _mixedStart[mixedCount];
        _best.AsSpan(0, pixelCount).Fill(float.NegativeInfinity);
        _preset.AsSpan(0, pixelCount).CopyTo(_assigned);
        ref var best = ref MemoryMarshal.GetArrayDataReference(_best);
        ref var assigned = ref MemoryMarshal.GetArrayDataReference(_assigned);
        ref var values = ref MemoryMarshal.GetArrayDataReference(_values);
        ref var lanes = ref MemoryMarshal.GetArrayDataReference(s_lanes);
        var half = Vector256.Create(0.5f);
        var countSeen = _drops is not null;
        for (var k = 0; k < kept; k++)
        {
            var (first, end) = (_runStart[k], _runStart[k + 1]);
            if (first == end)
            {
                continue;
            }

            var blended = _tiles.Upsampler.BlendRow(_kept[k].Query, y, _blend);
            var count = 0;
            for (var s = _spanStart[k]; s < _spanStart[k + 1]; s++)
            {
                _tiles.InterpolatePixels(_kept[k].Query, blended, _spanX[s], _values.AsSpan(count, _spanLength[s]));
                count += _spanLength[s];
            }

            var sigmoids = _values.AsSpan(0, PixelBatch.PaddedLength(count, width));
            sigmoids[count..].Clear();
            var score = Vector256.Create(_kept[k].Score);
            var slackScore = LibrarySigmoid.WithProductSlack(score);
            var plain = _tiles.IsPlain(_kept[k].Query);

            // Most vectors of a query's pixels change nothing (nine in ten on the realistic-width model):
            // where the library's sigmoid takes its vector lanes, a plain query's sigmoids are taken eight
            // at a time, and only where a cheap upper bound on them says that some pixel could take.
            var lazy = plain && LibrarySigmoid.TakesVectorLanes(sigmoids.Length);
            if (!lazy)
            {
                LibrarySigmoid.Compute(sigmoids, sigmoids);
            }

            var (inside, outside) = (Vector256.Create(k), Vector256.Create(k | PanopticInference.BelowHalf));
            var at = 0;

            // Where the tile bounds left this query's own mask undecided, its computed pixels above
            // the half raise the least own mask the drop bounds use: a logit above 0 (lazy, before the
            // sigmoid) or a sigmoid of at least 0.5 is in the mask (detectron2's sigmoid >= 0.5).
            var seen = 0;
            for (var r = first; r < end; r++)
            {
                var (p0, length, kind) = (_runPosition[r], _runLength[r], _runKind[r]);
                var assign = kind == Assign;
                var undecided = countSeen && kind == Undecided;

                for (var i = 0; i < length; i += Vector256<float>.Count)
                {
                    // Lanes past the span's end are read and written back unchanged.
                    var live = Vector256.LoadUnsafe(ref lanes, (nuint)Math.Max(0, Vector256<int>.Count - (length - i)));
                    var sigmoid = Vector256.LoadUnsafe(ref values, (nuint)(at + i));
                    var p = (nuint)(p0 + i);
                    var bestSoFar = Vector256.LoadUnsafe(ref best, p);
                    if (undecided)
                    {
                        var above = lazy ? Vector256.GreaterThan(sigmoid, Vector256<float>.Zero) : Vector256.GreaterThanOrEqual(sigmoid, half);
                        seen += BitOperations.PopCount((above.AsInt32() & live).ExtractMostSignificantBits());
                    }

                    if (lazy)
                    {
                        // Where score · σ cannot exceed the best so far in any live lane, no pixel
                        // takes this query.
                        if (!assign && (LibrarySigmoid.CannotExceedWithSlack(sigmoid, slackScore, bestSoFar) | ~live) == Vector256<int>.AllBitsSet)
                        {
                            continue;
                        }

                        sigmoid = LibrarySigmoid.Of(sigmoid);
                    }

                    var value = Vector256.ConditionalSelect(Vector256.GreaterThanOrEqual(sigmoid, half).AsInt32(), inside, outside);
                    var previous = Vector256.LoadUnsafe(ref assigned, p);
                    if (assign)
                    {
                        // Only the decided winner runs here, for its own mask.
                        Vector256.ConditionalSelect(live, value, previous).StoreUnsafe(ref assigned, p);
                        continue;
                    }

                    var probability = score * sigmoid;
                    var greater = Vector256.GreaterThan(probability, bestSoFar);
                    if (!plain)
                    {
                        // torch.argmax takes NaN as greater than any number (the first NaN wins); only a mask
                        // that is not plain gives NaN probabilities (kept queries' scores are numbers).
                        greater |= Vector256.AndNot(~Vector256.Equals(probability, probability), ~Vector256.Equals(bestSoFar, bestSoFar));
                    }

                    var take = greater.AsInt32() & live;
                    Vector256.ConditionalSelect(take.AsSingle(), probability, bestSoFar).StoreUnsafe(ref best, p);
                    Vector256.ConditionalSelect(take, value, previous).StoreUnsafe(ref assigned, p);
                }

                at += length;
            }

            _ownMaskSeen[k] += seen;
        }

        var columns = _tiles.TileColumns;
        for (var i = 0; i < mixedCount; i++)
        {
            var t = _mixedTiles[i];
            var (p0, p1, x0) = (_mixedStart[i], _mixedStart[i + 1], columns.Starts[t]);
            var won = _assigned.AsSpan(p0, p1 - p0);
            if (!_winnerDecided[t])
            {
                for (var j = 0; j < won.Length;)
                {
                    var value = won[j];
                    var end = won[j..].IndexOfAnyExcept(value);
                    end = end < 0 ? won.Length : j + end;
                    Counts.Won[value & ~PanopticInference.BelowHalf] += end - j;
                    if (_drops is not null)
                    {
                        _notWon[value & ~PanopticInference.BelowHalf] -= end - j;
                    }
                    if ((value & PanopticInference.BelowHalf) == 0)
                    {
                        Counts.WonInsideMask[value] += end - j;
                    }

                    j = end;
                }
            }
            else if (State(t, _winner[t]) == Undecided)
            {
                // Won was counted for the whole tile; inside-the-mask only now that the pixels are known.
                Counts.WonInsideMask[_winner[t]] += won.Count(_winner[t]);
            }

            var pixels = assignment.Slice(x0, won.Length);
            for (var j = 0; j < won.Length; j++)
            {
                pixels[j] = (ushort)won[j];
            }
        }
    }
}
