using System.Numerics;
using System.Runtime.InteropServices;
using System.Runtime.Intrinsics;

namespace MaskFormer.Engine.Postprocessing;

/// <summary>
/// Block refinement of pass 1: a tile whose winner the tile bounds leave open is cut into blocks
/// (<see cref="BlockAxis"/>), each kept query still in the running is bounded over each block, and a
/// pixel is computed only for the queries still in the running in its block. At a large output a tile
/// covers many pixels of a slowly varying blend, so this keeps the per-pixel work near the boundaries
/// rather than over whole boundary tiles.
/// </summary>
internal sealed partial class PanopticTileRow
{
    // Below this many pixels a block, a block's bounds (four blends per candidate, sigmoids, the
    // candidate test) cost more than computing the tile's candidates per pixel, eight at a time
    // (measured: realistic-width at 1920x1080, blocks of about 8 pixels, 230 ms refined and 180 not).
    private const int MinimumBlockPixels = 16;

    private readonly bool[] _refined;
    private readonly int[] _blockBase;
    private readonly int[] _boundBase;
    private readonly int[] _cursor;
    private readonly float[] _blockLower;
    private readonly float[] _blockUpper;
    private readonly int[] _blockRelevant;
    private readonly int[] _blockRelevantCount;
    private readonly float[] _grid;

    private static (bool[], int[], int[], int[], float[], float[], int[], int[], float[]) RentBlocks(MaskTiles tiles, int kept)
    {
        var columns = tiles.TileColumns.Count;
        var (rowBlocks, gridRows) = (1, 1);
        for (var row = 0; row < tiles.TileRows.Count; row++)
        {
            rowBlocks = Math.Max(rowBlocks, tiles.BlockRows.BlockCount(row));
            gridRows = Math.Max(gridRows, tiles.TileRows.GridEnds[row] - tiles.TileRows.GridStarts[row] + 1);
        }

        var blocks = rowBlocks * (tiles.BlockColumns.Starts.Length - 1);
        return (
            EngineArrayPool<bool>.Shared.Rent(columns),
            EngineArrayPool<int>.Shared.Rent(columns),
            EngineArrayPool<int>.Shared.Rent(columns),
            EngineArrayPool<int>.Shared.Rent(columns),
            EngineArrayPool<float>.Shared.Rent((blocks * kept) + Vector256<float>.Count),
            EngineArrayPool<float>.Shared.Rent((blocks * kept) + Vector256<float>.Count),
            EngineArrayPool<int>.Shared.Rent(blocks * kept),
            EngineArrayPool<int>.Shared.Rent(blocks),
            EngineArrayPool<float>.Shared.Rent(gridRows * tiles.Upsampler.Columns.ResizedSize));
    }

    private void ReturnBlocks()
    {
        EngineArrayPool<bool>.Shared.Return(_refined);
        EngineArrayPool<int>.Shared.Return(_blockBase);
        EngineArrayPool<int>.Shared.Return(_boundBase);
        EngineArrayPool<int>.Shared.Return(_cursor);
        EngineArrayPool<float>.Shared.Return(_blockLower);
        EngineArrayPool<float>.Shared.Return(_blockUpper);
        EngineArrayPool<int>.Shared.Return(_blockRelevant);
        EngineArrayPool<int>.Shared.Return(_blockRelevantCount);
        EngineArrayPool<float>.Shared.Return(_grid);
    }

    // Cuts the row's open tiles that are large enough into blocks and lists, per block, the kept
    // queries still in the running there (ascending), by the tile code's test on block bounds.
    private bool RefineBlocks(int row, int mixedCount)
    {
        var (rowsAxis, columnsAxis) = (_tiles.BlockRows, _tiles.BlockColumns);
        var tileHeight = _tiles.TileRows.Length(row);
        var bandCount = rowsAxis.BlockCount(row);
        var kept = _kept.Count;
        var (blocks, bounds) = (0, 0);
        for (var i = 0; i < mixedCount; i++)
        {
            var t = _mixedTiles[i];
            var count = bandCount * columnsAxis.BlockCount(t);
            _refined[t] = !_winnerDecided[t] && count > 1 && tileHeight * _tiles.TileColumns.Length(t) >= MinimumBlockPixels * count;
            if (_refined[t])
            {
                (_blockBase[t], _boundBase[t], _cursor[t]) = (blocks, bounds, 0);
                blocks += count;
                bounds += count * _relevantCount[t];
            }
        }

        if (blocks == 0)
        {
            return false;
        }

        // Query by query (ascending, as each tile's list), its resized-grid rows under this tile row,
        // then its bounds over the blocks of each refined tile where it is in the running.
        var gridStart = _tiles.TileRows.GridStarts[row];
        var gridWidth = _tiles.Upsampler.Columns.ResizedSize;
        for (var k = 0; k < kept; k++)
        {
            var computed = false;
            for (var i = 0; i < mixedCount; i++)
            {
                var t = _mixedTiles[i];
                if (!_refined[t] || _cursor[t] >= _relevantCount[t] || _relevant[(t * kept) + _cursor[t]] != k)
                {
                    continue;
                }

                var query = _kept[k].Query;
                if (!computed)
                {
                    for (var r = gridStart; r <= _tiles.TileRows.GridEnds[row]; r++)
                    {
                        _tiles.Upsampler.ComputeGridRow(query, r, _grid.AsSpan((r - gridStart) * gridWidth, gridWidth), _blend);
                    }

                    computed = true;
                }

                BoundBlocks(row, t, _cursor[t]++, _tiles.Margin(query));
            }
        }

        SubnormalFloor.SigmoidBounds(_blockLower.AsSpan(0, bounds), _blockLower.AsSpan(0, bounds), _blockUpper.AsSpan(0, bounds), _blockUpper.AsSpan(0, bounds));
        for (var i = 0; i < mixedCount; i++)
        {
            var t = _mixedTiles[i];
            if (_refined[t])
            {
                ListBlockCandidates(t, bandCount * columnsAxis.BlockCount(t));
            }
        }

        return true;
    }

    // Bounds on the logits of the tile's j-th relevant query over each of its blocks, from the four
    // blends of the block's grid points at the ends of its weight ranges. Those blends round a few times
    // more than the grid values do; the query's margin (ten times the rounding of the per-pixel
    // arithmetic) covers both.
    private void BoundBlocks(int row, int t, int j, float margin)
    {
        var (rowsAxis, columnsAxis) = (_tiles.BlockRows, _tiles.BlockColumns);
        var (bandCount, blockColumns) = (rowsAxis.BlockCount(row), columnsAxis.BlockCount(t));
        var count = bandCount * blockColumns;
        var at = _boundBase[t] + (j * count);
        var gridStart = _tiles.TileRows.GridStarts[row];
        var gridWidth = _tiles.Upsampler.Columns.ResizedSize;
        for (var band = 0; band < bandCount; band++)
        {
            var rb = rowsAxis.TileFirst[row] + band;
            var r0 = rowsAxis.GridLower[rb];
            var top = _grid.AsSpan((r0 - gridStart) * gridWidth, gridWidth);
            var bottom = _grid.AsSpan((Math.Min(r0 + 1, rowsAxis.GridLast) - gridStart) * gridWidth, gridWidth);
            var (wy0, wy1) = (rowsAxis.WeightLow[rb], rowsAxis.WeightHigh[rb]);
            for (var b = 0; b < blockColumns; b++)
            {
                var cb = columnsAxis.TileFirst[t] + b;
                var c0 = columnsAxis.GridLower[cb];
                var c1 = Math.Min(c0 + 1, columnsAxis.GridLast);
                var (wx0, wx1) = (columnsAxis.WeightLow[cb], columnsAxis.WeightHigh[cb]);
                var (a0, a1) = (Blend(top[c0], top[c1], wx0), Blend(top[c0], top[c1], wx1));
                var (b0, b1) = (Blend(bottom[c0], bottom[c1], wx0), Blend(bottom[c0], bottom[c1], wx1));
                var (v0, v1, v2, v3) = (Blend(a0, b0, wy0), Blend(a0, b0, wy1), Blend(a1, b1, wy0), Blend(a1, b1, wy1));

                // MathF.Min and Max return NaN when either side is NaN: a NaN leaves the block open.
                _blockLower[at + (band * blockColumns) + b] = MathF.Min(MathF.Min(v0, v1), MathF.Min(v2, v3)) - margin;
                _blockUpper[at + (band * blockColumns) + b] = MathF.Max(MathF.Max(v0, v1), MathF.Max(v2, v3)) + margin;
            }
        }
    }

    private static float Blend(float low, float high, float weight) => ((1f - weight) * low) + (weight * high);

    // As DecideTiles over the tile's relevant queries, eight blocks at a time, on the sigmoid bounds.
    // Lanes past the tile's last block read whatever follows (the buffers are padded) and list nothing.
    private void ListBlockCandidates(int t, int count)
    {
        var kept = _kept.Count;
        var relevant = _relevant.AsSpan(t * kept, _relevantCount[t]);
        var at = _boundBase[t];
        ref var lower = ref MemoryMarshal.GetArrayDataReference(_blockLower);
        ref var upper = ref MemoryMarshal.GetArrayDataReference(_blockUpper);
        ref var lanes = ref MemoryMarshal.GetArrayDataReference(s_lanes);
        var listed = _blockRelevantCount.AsSpan(_blockBase[t], count);
        listed.Clear();
        for (var b0 = 0; b0 < count; b0 += Vector256<float>.Count)
        {
            var live = Vector256.LoadUnsafe(ref lanes, (nuint)Math.Max(0, Vector256<int>.Count - (count - b0)));

            // Written so that a NaN anywhere leaves every query in the running.
            var (winner, winnerLower) = (Vector256<int>.Zero, Vector256<float>.Zero);
            for (var j = 0; j < relevant.Length; j++)
            {
                var scoreLower = Vector256.LoadUnsafe(ref lower, (nuint)(at + (j * count) + b0)) * _kept[relevant[j]].Score;
                var take = j == 0 ? Vector256<int>.AllBitsSet : Vector256.GreaterThan(scoreLower, winnerLower).AsInt32();
                winnerLower = Vector256.ConditionalSelect(take.AsSingle(), scoreLower, winnerLower);
                winner = Vector256.ConditionalSelect(take, Vector256.Create(j), winner);
            }

            var threshold = (winnerLower * (1f - RelativeMargin)) - Vector256.Create(AbsoluteSlack);
            for (var j = 0; j < relevant.Length; j++)
            {
                var scoreUpper = Vector256.LoadUnsafe(ref upper, (nuint)(at + (j * count) + b0)) * _kept[relevant[j]].Score;
                var beaten = Vector256.LessThan((scoreUpper * (1f + RelativeMargin)) + Vector256.Create(AbsoluteSlack), threshold).AsInt32();
                var bits = ((Vector256.Equals(winner, Vector256.Create(j)) | ~beaten) & live).ExtractMostSignificantBits();
                while (bits != 0)
                {
                    var b = b0 + BitOperations.TrailingZeroCount(bits);
                    bits &= bits - 1;
                    _blockRelevant[at + (b * relevant.Length) + listed[b]++] = relevant[j];
                }
            }
        }
    }

    // Lists, per kept query, the runs of mixed pixels of this band of rows where it is computed: in a
    // refined tile the block's candidates, elsewhere the tile's relevant queries. A block with one
    // candidate whose own mask is decided there needs no pixel: its value is preset.
    private void Gather(int band, int mixedCount)
    {
        var kept = _kept.Count;
        var columns = _tiles.TileColumns;
        var columnsAxis = _tiles.BlockColumns;
        _runStart.AsSpan(0, kept + 1).Clear();
        _preset.AsSpan(0, _mixedStart[mixedCount]).Fill(PanopticInference.Unassigned);
        for (var pass = 0; pass < 2; pass++)
        {
            if (pass == 1)
            {
                // Counts to starts; _runStart[k + 1] then advances as query k's runs are written.
                var sum = 0;
                for (var k = 0; k < kept; k++)
                {
                    var count = _runStart[k + 1];
                    _runStart[k + 1] = sum;
                    sum += count;
                }
            }

            for (var i = 0; i < mixedCount; i++)
            {
                var t = _mixedTiles[i];
                var (x0, p0) = (columns.Starts[t], _mixedStart[i]);
                if (!_refined[t])
                {
                    var decided = _winnerDecided[t];
                    foreach (var k in _relevant.AsSpan(t * kept, _relevantCount[t]))
                    {
                        AddRun(pass, k, x0, columns.Starts[t + 1], p0, decided ? Assign : State(t, k));
                    }

                    continue;
                }

                var blockColumns = columnsAxis.BlockCount(t);
                for (var b = 0; b < blockColumns; b++)
                {
                    var block = (band * blockColumns) + b;
                    var cb = columnsAxis.TileFirst[t] + b;
                    var (bx0, bx1) = (columnsAxis.Starts[cb], columnsAxis.Starts[cb + 1]);
                    var list = _blockRelevant.AsSpan(_boundBase[t] + (block * _relevantCount[t]), _blockRelevantCount[_blockBase[t] + block]);
                    if (list.Length == 1 && State(t, list[0]) != Undecided)
                    {
                        if (pass == 1)
                        {
                            var k = list[0];
                            _preset.AsSpan(p0 + bx0 - x0, bx1 - bx0).Fill(State(t, k) == Inside ? k : k | PanopticInference.BelowHalf);
                        }

                        continue;
                    }

                    foreach (var k in list)
                    {
                        AddRun(pass, k, bx0, bx1, p0 + bx0 - x0, State(t, k));
                    }
                }
            }
        }

        _runStart[0] = 0;
        MergeRuns(kept);
    }

    // Merges each query's runs once for all the band's rows (SolvePixels visits them on each): adjacent
    // columns into one interpolation span (_spanX, _spanLength from _spanStart[k]), so that longer spans
    // stay on the vector path; adjacent positions into one comparison run, in place, where the sigmoid says
    // what the tile's bounds said of the query's own mask, with those that only assign the decided
    // winner's own mask apart.
    private void MergeRuns(int kept)
    {
        var countSeen = _drops is not null;
        var (spans, runs) = (0, 0);
        for (var k = 0; k < kept; k++)
        {
            // Merged runs are written at or before the ones read, and _runStart[k] once read: the runs and
            // starts of the queries after k stay as Gather wrote them.
            var (first, end) = (_runStart[k], _runStart[k + 1]);
            _spanStart[k] = spans;
            for (var r = first; r < end;)
            {
                var (x0, length) = (_runX[r], _runLength[r]);
                for (r++; r < end && _runX[r] == x0 + length; r++)
                {
                    length += _runLength[r];
                }

                (_spanX[spans], _spanLength[spans]) = (x0, length);
                spans++;
            }

            _runStart[k] = runs;
            for (var r = first; r < end;)
            {
                var (p0, length, kind) = (_runPosition[r], _runLength[r], _runKind[r]);
                var assign = kind == Assign;
                var undecided = countSeen && kind == Undecided;
                for (r++; r < end && _runPosition[r] == p0 + length && (_runKind[r] == Assign) == assign && (!countSeen || (_runKind[r] == Undecided) == undecided); r++)
                {
                    length += _runLength[r];
                }

                (_runPosition[runs], _runLength[runs], _runKind[runs]) = (p0, length, kind);
                runs++;
            }
        }

        (_spanStart[kept], _runStart[kept]) = (spans, runs);
    }

    private void AddRun(int pass, int k, int x0, int x1, int p0, int kind)
    {
        var at = _runStart[k + 1]++;
        if (pass == 1)
        {
            (_runX[at], _runPosition[at], _runLength[at], _runKind[at]) = (x0, p0, x1 - x0, (byte)kind);
        }
    }
}
