using System.Buffers;
using System.Numerics.Tensors;

namespace MaskFormer.Engine.Postprocessing;

/// <summary>
/// Pass 1 of panoptic inference over one row of tiles at a time, with its scratch space and area
/// counts (one per worker thread).
/// </summary>
internal sealed partial class PanopticTileRow : IDisposable
{
    /// <summary>The tile value of a tile decided per pixel.</summary>
    public const ushort Mixed = ushort.MaxValue;

    private const byte Outside = 0;
    private const byte Inside = 1;
    private const byte Undecided = 2;

    // A logit this far from 0 has a float32 sigmoid clearly on its side of 0.5.
    private const float SignMargin = 1e-3f;

    // score · sigmoid in float32 is within a few ulps of the true product, and so are the bounds:
    // four times the sum of both, relative, plus slack for denormals.
    private const float RelativeMargin = 4e-6f;
    private const float AbsoluteSlack = 1e-30f;

    private readonly MaskTiles _tiles;
    private readonly List<(int Query, int Label, float Score)> _kept;
    private readonly byte[] _state;
    private readonly bool[] _canWin;
    private readonly int[] _winner;
    private readonly bool[] _winnerDecided;
    private readonly int[] _mixedTiles;

    // Per mixed tile, the kept queries (ascending) a pixel's decision reads: undecided masks, queries
    // still in the running, the decided winner. The others are on one side everywhere in the tile and
    // cannot win there, so skipping them changes nothing and keeps the per-pixel work to the boundary.
    private readonly int[] _relevant;
    private readonly int[] _relevantCount;
    private readonly int[] _xs;
    private readonly int[] _pixelTile;
    private readonly int[] _mixedStart;
    private readonly int[] _gathered;
    private readonly int[] _positions;
    private readonly float[] _values;
    private readonly float[] _blend;

    // Per kept query, the row's pixels it is computed at (x and position among the mixed pixels), for
    // one band of output rows; and per mixed pixel the running first strict maximum over the queries.
    private readonly int[] _gatherStart;
    private readonly int[] _gatherX;
    private readonly int[] _gatherPosition;
    private readonly float[] _best;
    private readonly ushort[] _value;
    private readonly ushort[] _preset;

    // Whether a pixel's value must say if the winner's own mask covers it (Mask2Former's rule); for
    // MaskFormer only the winner matters, so a tile with a decided winner is decided whatever its mask.
    private readonly bool _winnerMaskMatters;

    public PanopticTileRow(MaskTiles tiles, List<(int Query, int Label, float Score)> kept, PanopticInference.AreaCounts counts, bool winnerMaskMatters)
    {
        _tiles = tiles;
        _kept = kept;
        _winnerMaskMatters = winnerMaskMatters;
        Counts = counts;
        var columns = tiles.TileColumns.Count;
        var width = tiles.Upsampler.Width;
        _state = EngineArrayPool<byte>.Shared.Rent(columns * kept.Count);
        _canWin = EngineArrayPool<bool>.Shared.Rent(columns * kept.Count);
        _winner = EngineArrayPool<int>.Shared.Rent(columns);
        _winnerDecided = EngineArrayPool<bool>.Shared.Rent(columns);
        _mixedTiles = EngineArrayPool<int>.Shared.Rent(columns);
        _relevant = EngineArrayPool<int>.Shared.Rent(columns * kept.Count);
        _relevantCount = EngineArrayPool<int>.Shared.Rent(columns);
        _xs = EngineArrayPool<int>.Shared.Rent(width);
        _pixelTile = EngineArrayPool<int>.Shared.Rent(width);
        _mixedStart = EngineArrayPool<int>.Shared.Rent(columns + 1);
        _gathered = EngineArrayPool<int>.Shared.Rent(width);
        _positions = EngineArrayPool<int>.Shared.Rent(width);
        _values = EngineArrayPool<float>.Shared.Rent(width);
        _blend = EngineArrayPool<float>.Shared.Rent(tiles.Upsampler.ScratchLength);
        _gatherStart = EngineArrayPool<int>.Shared.Rent(kept.Count + 1);
        _gatherX = EngineArrayPool<int>.Shared.Rent(kept.Count * width);
        _gatherPosition = EngineArrayPool<int>.Shared.Rent(kept.Count * width);
        _best = EngineArrayPool<float>.Shared.Rent(width);
        _value = EngineArrayPool<ushort>.Shared.Rent(width);
        _preset = EngineArrayPool<ushort>.Shared.Rent(width);
        (_refined, _blockBase, _boundBase, _cursor, _blockLower, _blockUpper, _blockRelevant, _blockRelevantCount, _grid) = RentBlocks(tiles, kept.Count);
    }

    public PanopticInference.AreaCounts Counts { get; }

    /// <summary>
    /// Decides tile row <paramref name="row"/>: a decided tile's assignment goes to
    /// <paramref name="tileValues"/>, a mixed tile's pixels' assignments to <paramref name="ids"/>.
    /// </summary>
    public void Solve(int row, LabelMap ids, ushort[] tileValues)
    {
        var columns = _tiles.TileColumns;
        var rows = _tiles.TileRows;
        var tileHeight = rows.Starts[row + 1] - rows.Starts[row];
        var mixedCount = DecideTiles(row);
        for (var t = 0; t < columns.Count; t++)
        {
            var pixels = (long)tileHeight * columns.Length(t);
            // Own mask areas from the bounds; the undecided pixels are counted only for the queries
            // whose keep-or-drop the bounds leave open (CountMask).
            for (var k = 0; k < _kept.Count; k++)
            {
                var state = _state[(t * _kept.Count) + k];
                if (state == Inside)
                {
                    Counts.Mask[k] += pixels;
                }
                else if (state == Undecided)
                {
                    Counts.MaskUndecided[k] += pixels;
                }
            }

            if (_winnerDecided[t])
            {
                var winner = _winner[t];
                Counts.Won[winner] += pixels;
                var winnerState = _state[(t * _kept.Count) + winner];
                if (winnerState == Inside)
                {
                    Counts.WonInsideMask[winner] += pixels;
                }
            }

            tileValues[(row * columns.Count) + t] = Mixed;
        }

        var pixelCount = 0;
        for (var i = 0; i < mixedCount; i++)
        {
            var t = _mixedTiles[i];
            _mixedStart[i] = pixelCount;
            for (var x = columns.Starts[t]; x < columns.Starts[t + 1]; x++)
            {
                _xs[pixelCount] = x;
                _pixelTile[pixelCount++] = t;
            }
        }

        _mixedStart[mixedCount] = pixelCount;

        for (var t = 0; t < columns.Count; t++)
        {
            if (_winnerDecided[t] && !IsMixed(t))
            {
                var winner = _winner[t];
                tileValues[(row * columns.Count) + t] = (ushort)(_state[(t * _kept.Count) + winner] == Inside ? winner : winner | PanopticInference.BelowHalf);
            }
        }

        if (pixelCount == 0)
        {
            return;
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
                SolvePixels(y, pixelCount, ids.Row(y));
            }
        }
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
                TensorPrimitives.Sigmoid(values, values);
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
        EngineArrayPool<byte>.Shared.Return(_state);
        EngineArrayPool<bool>.Shared.Return(_canWin);
        EngineArrayPool<int>.Shared.Return(_winner);
        EngineArrayPool<bool>.Shared.Return(_winnerDecided);
        EngineArrayPool<int>.Shared.Return(_mixedTiles);
        EngineArrayPool<int>.Shared.Return(_relevant);
        EngineArrayPool<int>.Shared.Return(_relevantCount);
        EngineArrayPool<int>.Shared.Return(_xs);
        EngineArrayPool<int>.Shared.Return(_pixelTile);
        EngineArrayPool<int>.Shared.Return(_mixedStart);
        EngineArrayPool<int>.Shared.Return(_gathered);
        EngineArrayPool<int>.Shared.Return(_positions);
        EngineArrayPool<float>.Shared.Return(_values);
        EngineArrayPool<float>.Shared.Return(_blend);
        EngineArrayPool<int>.Shared.Return(_gatherStart);
        EngineArrayPool<int>.Shared.Return(_gatherX);
        EngineArrayPool<int>.Shared.Return(_gatherPosition);
        EngineArrayPool<float>.Shared.Return(_best);
        EngineArrayPool<ushort>.Shared.Return(_value);
        EngineArrayPool<ushort>.Shared.Return(_preset);
        ReturnBlocks();
    }

    private bool IsMixed(int t) => !_winnerDecided[t] || (_winnerMaskMatters && _state[(t * _kept.Count) + _winner[t]] == Undecided);

    // A kept query needs its per-pixel sigmoid in a tile when it is still in the running for a winner
    // the bounds left open, or when it is the winner and its own mask, undecided there, matters.
    private bool Needs(int t, int k) => (!_winnerDecided[t] && _canWin[(t * _kept.Count) + k])
        || (_winnerMaskMatters && k == _winner[t] && _state[(t * _kept.Count) + k] == Undecided);

    private int DecideTiles(int row)
    {
        var columns = _tiles.TileColumns;
        var kept = _kept.Count;
        var mixed = 0;
        for (var t = 0; t < columns.Count; t++)
        {
            // Written so that a NaN anywhere leaves every query undecided and in the running.
            var (winner, winnerLower) = (0, float.NaN);
            for (var k = 0; k < kept; k++)
            {
                var (query, _, score) = _kept[k];
                var lower = _tiles.Lower(query, row)[t];
                var upper = _tiles.Upper(query, row)[t];
                _state[(t * kept) + k] = lower > SignMargin ? Inside : upper < -SignMargin ? Outside : Undecided;
                var scoreLower = score * _tiles.SigmoidLower(query, row)[t];
                if (k == 0 || scoreLower > winnerLower)
                {
                    (winner, winnerLower) = (k, scoreLower);
                }
            }

            var threshold = (winnerLower * (1f - RelativeMargin)) - AbsoluteSlack;
            var inRunning = 0;
            for (var k = 0; k < kept; k++)
            {
                var (query, _, score) = _kept[k];
                var scoreUpper = score * _tiles.SigmoidUpper(query, row)[t];
                var canWin = k == winner || !((scoreUpper * (1f + RelativeMargin)) + AbsoluteSlack < threshold);
                _canWin[(t * kept) + k] = canWin;
                inRunning += canWin ? 1 : 0;
            }

            _winner[t] = winner;
            _winnerDecided[t] = inRunning == 1;
            if (IsMixed(t))
            {
                _mixedTiles[mixed++] = t;
                var count = 0;
                for (var k = 0; k < kept; k++)
                {
                    if (k == winner || Needs(t, k))
                    {
                        _relevant[(t * kept) + count++] = k;
                    }
                }

                _relevantCount[t] = count;
            }
        }

        return mixed;
    }

    // The dense computation's operations on the mixed pixels of row y: each kept query's sigmoid where
    // it was gathered, in query order, keeping each pixel's first strict maximum (as torch.argmax), then
    // the area counts.
    private void SolvePixels(int y, int pixelCount, Span<ushort> assignment)
    {
        var width = _tiles.Upsampler.Width;
        var kept = _kept.Count;
        var best = _best.AsSpan(0, pixelCount);
        var assigned = _value.AsSpan(0, pixelCount);
        best.Fill(float.NegativeInfinity);
        _preset.AsSpan(0, pixelCount).CopyTo(assigned);
        for (var k = 0; k < kept; k++)
        {
            var (start, count) = (_gatherStart[k], _gatherStart[k + 1] - _gatherStart[k]);
            if (count == 0)
            {
                continue;
            }

            var padded = PixelBatch.PaddedLength(count, width);
            var values = _values.AsSpan(0, padded);
            _tiles.Upsampler.ComputePixels(_kept[k].Query, y, _gatherX.AsSpan(start, count), values, _blend);
            values[count..].Clear();
            TensorPrimitives.Sigmoid(values, values);
            var score = _kept[k].Score;
            var positions = _gatherPosition.AsSpan(start, count);
            for (var i = 0; i < count; i++)
            {
                var p = positions[i];
                var t = _pixelTile[p];
                var sigmoid = values[i];
                var state = _state[(t * kept) + k];
                var value = (ushort)(state == Inside || (state == Undecided && sigmoid >= 0.5f) ? k : k | PanopticInference.BelowHalf);
                if (_winnerDecided[t])
                {
                    // Only the winner is gathered here, for its own mask.
                    assigned[p] = value;
                    continue;
                }

                var probability = score * sigmoid;
                if (probability > best[p])
                {
                    best[p] = probability;
                    assigned[p] = value;
                }
            }
        }

        for (var p = 0; p < pixelCount; p++)
        {
            var t = _pixelTile[p];
            var value = assigned[p];
            if (!_winnerDecided[t])
            {
                Counts.Won[value & ~PanopticInference.BelowHalf]++;
                if ((value & PanopticInference.BelowHalf) == 0)
                {
                    Counts.WonInsideMask[value]++;
                }
            }
            else if ((value & PanopticInference.BelowHalf) == 0 && _state[(t * _kept.Count) + _winner[t]] == Undecided)
            {
                // Won was counted for the whole tile; inside-the-mask only now that the pixel is known.
                Counts.WonInsideMask[value]++;
            }

            assignment[_xs[p]] = value;
        }
    }
}
