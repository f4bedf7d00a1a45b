using System.Buffers;

namespace MaskFormer.Engine.Postprocessing;

/// <summary>
/// Semantic inference over one row of tiles at a time, with its scratch space (one per worker thread).
/// </summary>
internal sealed partial class SemanticTileRow : IDisposable
{
    // Absolute slack for float32 underflow (denormal products), far below any score that matters.
    private const float AbsoluteSlack = 1e-30f;

    // A query whose class probabilities (without "no object") sum to no more than this is spare: the
    // tile bounds take its sigmoid anywhere in [0, 1], one sum per class for all such queries, instead
    // of summing its bounds tile by tile. A trained model's spare queries ("no object") are most of them.
    private const double SpareMass = 1e-6;

    private readonly MaskTiles _tiles;
    private readonly float[] _probabilities;
    private readonly int _classes;
    private readonly int _paddedColumns;
    private readonly int _paddedClasses;
    private readonly float _margin;
    private readonly float[] _rowSigmoids;
    private readonly float[] _paddedProbabilities;

    // The queries the tile bounds sum one by one (ascending), their probabilities ([active, classes + 1]),
    // and per class the spare queries' probabilities summed and rounded up.
    private readonly int[] _active;
    private readonly int _activeCount;
    private readonly float[] _activeProbabilities;
    private readonly float[] _spare;
    private readonly float[] _blockSigmoids;
    private readonly float[] _blockBounds;
    private readonly int[] _survivors;
    private readonly float[] _lower;
    private readonly float[] _upper;
    private readonly int[] _candidates;
    private readonly int[] _candidateStart;
    private readonly int[] _candidateCount;
    private readonly int[] _classSlot;
    private readonly int[] _vectorClasses;
    private readonly int[] _xs;
    private readonly int[] _pixelTile;
    private readonly int[] _runs;
    private readonly int[] _gathered;
    private float[] _sigmas;
    private readonly float[] _scores;
    private readonly float[] _blend;

    public SemanticTileRow(MaskTiles tiles, float[] probabilities, int classes)
    {
        _tiles = tiles;
        _probabilities = probabilities;
        _classes = classes;

        // The dense score is a float32 sum of Q products of a float32 sigmoid (a few ulps off the true
        // one) and a probability: within (Q + 1)·2^-24 + 1e-6 of the true value, relative. The bounds
        // carry the same error again; the margin doubles the sum of both.
        _margin = 4e-6f + ((tiles.Output.Queries + 1) * 2.4e-7f);
        var queries = tiles.Output.Queries;
        var columns = tiles.TileColumns.Count;
        var width = tiles.Upsampler.Width;
        _paddedColumns = RoundUp(columns);
        _paddedClasses = RoundUp(classes);
        (_active, _activeCount, var spareSums) = SplitSpare(tiles, probabilities, classes);
        _activeProbabilities = EngineArrayPool<float>.Shared.Rent(Math.Max(1, _activeCount * (classes + 1)));
        _paddedProbabilities = EngineArrayPool<float>.Shared.Rent(Math.Max(1, _activeCount * _paddedClasses));
        for (var k = 0; k < _activeCount; k++)
        {
            // These copies feed only the bounds. An active query's probability below the subnormal
            // floor leaves them for the spare mass (its sigmoid taken anywhere in [0, 1]), so that the
            // bounds' products stay normal (SubnormalFloor); the exact scores read `probabilities`.
            var row = _activeProbabilities.AsSpan(k * (classes + 1), classes + 1);
            probabilities.AsSpan(_active[k] * (classes + 1), classes + 1).CopyTo(row);
            for (var c = 0; c < classes; c++)
            {
                if (row[c] < SubnormalFloor.Tiny)
                {
                    spareSums[c] += row[c];
                    row[c] = 0f;
                }
            }

            row[..classes].CopyTo(_paddedProbabilities.AsSpan(k * _paddedClasses));
            _paddedProbabilities.AsSpan((k * _paddedClasses) + classes, _paddedClasses - classes).Clear();
        }

        _spare = SpareBounds(spareSums, _paddedClasses);

        _blockSigmoids = EngineArrayPool<float>.Shared.Rent(2 * queries);
        _blockBounds = EngineArrayPool<float>.Shared.Rent(2 * _paddedClasses);
        _survivors = EngineArrayPool<int>.Shared.Rent(classes);
        _rowSigmoids = EngineArrayPool<float>.Shared.Rent(2 * queries * _paddedColumns);
        _lower = EngineArrayPool<float>.Shared.Rent(classes * _paddedColumns);
        _upper = EngineArrayPool<float>.Shared.Rent(classes * _paddedColumns);
        _candidates = EngineArrayPool<int>.Shared.Rent(classes * columns);
        _candidateStart = EngineArrayPool<int>.Shared.Rent(columns);
        _candidateCount = EngineArrayPool<int>.Shared.Rent(columns);
        _classSlot = EngineArrayPool<int>.Shared.Rent(classes);
        _vectorClasses = EngineArrayPool<int>.Shared.Rent(classes);
        _xs = EngineArrayPool<int>.Shared.Rent(width);
        _pixelTile = EngineArrayPool<int>.Shared.Rent(width);
        _runs = EngineArrayPool<int>.Shared.Rent(3 * columns);
        _gathered = EngineArrayPool<int>.Shared.Rent(3 * columns);
        _sigmas = EngineArrayPool<float>.Shared.Rent(queries * Lanes);
        _scores = EngineArrayPool<float>.Shared.Rent(classes * Lanes);
        _blend = EngineArrayPool<float>.Shared.Rent(tiles.Upsampler.ScratchLength);
        _classSlot.AsSpan(0, classes).Fill(-1);
    }

    public void Solve(int row, LabelMap map)
    {
        var (pixels, runCount, gatheredCount) = DecideTiles(row);
        var (y0, rows) = (_tiles.TileRows.Starts[row], _tiles.TileRows.Length(row));
        for (var y = y0; y < y0 + rows; y++)
        {
            var labels = map.Row(y);
            for (var r = 0; r < runCount; r++)
            {
                labels.Slice(_runs[3 * r], _runs[(3 * r) + 1]).Fill((ushort)_runs[(3 * r) + 2]);
            }
        }

        if (pixels == 0)
        {
            return;
        }

        // Each query's sigmoids for the gathered pixels of all the tile row's output rows, one
        // vector-aligned stretch per output row, so that a block of pixels sums its scores over the
        // queries in registers. One sigmoid call covers a query's rows when so long a buffer picks the
        // row's code path (PixelBatch): the same float32 sigmoid of each value, fewer calls.
        var upsampler = _tiles.Upsampler;
        var queries = _tiles.Output.Queries;
        var padded = PixelBatch.PaddedLength(pixels, upsampler.Width);
        var stride = RoundUp(padded);
        var queryStride = rows * stride;
        var together = PixelBatch.PaddedLength(queryStride, upsampler.Width) == queryStride;
        if (_sigmas.Length < queries * queryStride)
        {
            EngineArrayPool<float>.Shared.Return(_sigmas);
            _sigmas = EngineArrayPool<float>.Shared.Rent(queries * queryStride);
        }

        for (var q = 0; q < queries; q++)
        {
            var sigmas = _sigmas.AsSpan(q * queryStride, queryStride);
            for (var r = 0; r < rows; r++)
            {
                var blended = upsampler.BlendRow(q, y0 + r, _blend);
                for (var g = 0; g < gatheredCount; g++)
                {
                    _tiles.InterpolatePixels(q, blended, _gathered[(3 * g) + 1], sigmas.Slice((r * stride) + _gathered[3 * g], _gathered[(3 * g) + 2]));
                }

                sigmas.Slice((r * stride) + pixels, stride - pixels).Clear();
                if (!together)
                {
                    LibrarySigmoid.Compute(sigmas.Slice(r * stride, padded), sigmas.Slice(r * stride, padded));
                }
            }

            if (together)
            {
                LibrarySigmoid.Compute(sigmas, sigmas);
            }
        }

        LabelPixels(map, y0, rows, pixels, stride);
    }

    // The active queries and the spare ones' probabilities per class, summed in float64 (SpareBounds
    // rounds them up so that the float32 sum is no less than the true one). A NaN probability, or a mask that is not
    // plain (a NaN logit makes the dense score NaN even at probability 0), keeps a query active.
    private static (int[] Active, int Count, double[] SpareSums) SplitSpare(MaskTiles tiles, float[] probabilities, int classes)
    {
        var queries = tiles.Output.Queries;
        var active = EngineArrayPool<int>.Shared.Rent(Math.Max(1, queries));
        var sums = new double[classes];
        var count = 0;
        for (var q = 0; q < queries; q++)
        {
            var row = probabilities.AsSpan(q * (classes + 1), classes);
            var mass = 0.0;
            foreach (var p in row)
            {
                mass += p;
            }

            if (!(mass <= SpareMass) || !tiles.IsPlain(q))
            {
                active[count++] = q;
                continue;
            }

            for (var c = 0; c < classes; c++)
            {
                sums[c] += row[c];
            }
        }

        return (active, count, sums);
    }

    // The spare probabilities per class as float32 sums no less than the true ones, and no smaller
    // than the subnormal floor unless zero; the padding classes' are zero.
    private static float[] SpareBounds(double[] sums, int paddedClasses)
    {
        var spare = EngineArrayPool<float>.Shared.Rent(paddedClasses);
        spare.AsSpan(0, paddedClasses).Clear();
        for (var c = 0; c < sums.Length; c++)
        {
            spare[c] = sums[c] > 0 ? MathF.Max(MathF.BitIncrement((float)sums[c]), SubnormalFloor.Tiny) : 0f;
        }

        return spare;
    }

    public void Dispose()
    {
        EngineArrayPool<float>.Shared.Return(_rowSigmoids);
        EngineArrayPool<float>.Shared.Return(_paddedProbabilities);
        EngineArrayPool<int>.Shared.Return(_active);
        EngineArrayPool<float>.Shared.Return(_activeProbabilities);
        EngineArrayPool<float>.Shared.Return(_spare);
        EngineArrayPool<float>.Shared.Return(_blockSigmoids);
        EngineArrayPool<float>.Shared.Return(_blockBounds);
        EngineArrayPool<int>.Shared.Return(_survivors);
        EngineArrayPool<float>.Shared.Return(_lower);
        EngineArrayPool<float>.Shared.Return(_upper);
        EngineArrayPool<int>.Shared.Return(_candidates);
        EngineArrayPool<int>.Shared.Return(_candidateStart);
        EngineArrayPool<int>.Shared.Return(_candidateCount);
        EngineArrayPool<int>.Shared.Return(_classSlot);
        EngineArrayPool<int>.Shared.Return(_vectorClasses);
        EngineArrayPool<int>.Shared.Return(_xs);
        EngineArrayPool<int>.Shared.Return(_pixelTile);
        EngineArrayPool<int>.Shared.Return(_runs);
        EngineArrayPool<int>.Shared.Return(_gathered);
        EngineArrayPool<float>.Shared.Return(_sigmas);
        EngineArrayPool<float>.Shared.Return(_scores);
        EngineArrayPool<float>.Shared.Return(_blend);
    }

    private static int RoundUp(int count) => (count + Lanes - 1) / Lanes * Lanes;

    // Scores each block of gathered pixels, on every output row of the tile row, for the candidates
    // of the tiles it covers (one tile, or the end of one and the start of the next), then labels each
    // pixel with the first maximum among its own tile's candidates, in class order; the others are
    // strictly lower.
    private void LabelPixels(LabelMap map, int y0, int rows, int pixels, int stride)
    {
        var queries = _tiles.Output.Queries;
        var sigmas = _sigmas.AsSpan(0, queries * rows * stride);
        for (var k0 = 0; k0 < pixels; k0 += Lanes)
        {
            var end = Math.Min(k0 + Lanes, pixels);
            var count = 0;
            for (var k = k0; k < end; k++)
            {
                var tile = _pixelTile[k];
                if (k > k0 && tile == _pixelTile[k - 1])
                {
                    continue;
                }

                for (var i = _candidateStart[tile]; i < _candidateStart[tile] + _candidateCount[tile]; i++)
                {
                    if (_classSlot[_candidates[i]] < 0)
                    {
                        _classSlot[_candidates[i]] = count;
                        _vectorClasses[count++] = _candidates[i];
                    }
                }
            }

            for (var r = 0; r < rows; r++)
            {
                ScoreClasses(sigmas[((r * stride) + k0)..], rows * stride, queries, _probabilities, _classes + 1, _vectorClasses.AsSpan(0, count), _scores);
                var labels = map.Row(y0 + r);
                for (var k = k0; k < end; k++)
                {
                    var tile = _pixelTile[k];
                    var start = _candidateStart[tile];
                    var best = _candidates[start];
                    var bestScore = _scores[(_classSlot[best] * Lanes) + k - k0];
                    for (var i = start + 1; i < start + _candidateCount[tile]; i++)
                    {
                        var candidate = _candidates[i];
                        var score = _scores[(_classSlot[candidate] * Lanes) + k - k0];
                        if (score > bestScore)
                        {
                            (best, bestScore) = (candidate, score);
                        }
                    }

                    labels[_xs[k]] = (ushort)best;
                }
            }

            for (var i = 0; i < count; i++)
            {
                _classSlot[_vectorClasses[i]] = -1;
            }
        }
    }
}
