using System.Buffers;
using System.Numerics.Tensors;

namespace MaskFormer.Engine.Postprocessing;

/// <summary>
/// Semantic inference over one row of tiles at a time, with its scratch space (one per worker thread).
/// </summary>
internal sealed class SemanticTileRow : IDisposable
{
    // Absolute slack for float32 underflow (denormal products), far below any score that matters.
    private const float AbsoluteSlack = 1e-30f;

    private readonly MaskTiles _tiles;
    private readonly float[] _probabilities;
    private readonly int _classes;
    private readonly float _margin;
    private readonly float[] _lower;
    private readonly float[] _upper;
    private readonly int[] _candidates;
    private readonly int[] _candidateStart;
    private readonly int[] _candidateCount;
    private readonly int[] _unionSlot;
    private readonly int[] _union;
    private readonly int[] _xs;
    private readonly int[] _pixelTile;
    private readonly int[] _runs;
    private readonly float[] _values;
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
        var columns = tiles.TileColumns.Count;
        var width = tiles.Upsampler.Width;
        _lower = EngineArrayPool<float>.Shared.Rent(classes * columns);
        _upper = EngineArrayPool<float>.Shared.Rent(classes * columns);
        _candidates = EngineArrayPool<int>.Shared.Rent(classes * columns);
        _candidateStart = EngineArrayPool<int>.Shared.Rent(columns);
        _candidateCount = EngineArrayPool<int>.Shared.Rent(columns);
        _unionSlot = EngineArrayPool<int>.Shared.Rent(classes);
        _union = EngineArrayPool<int>.Shared.Rent(classes);
        _xs = EngineArrayPool<int>.Shared.Rent(width);
        _pixelTile = EngineArrayPool<int>.Shared.Rent(width);
        _runs = EngineArrayPool<int>.Shared.Rent(3 * columns);
        _values = EngineArrayPool<float>.Shared.Rent(width);
        _scores = EngineArrayPool<float>.Shared.Rent(classes * width);
        _blend = EngineArrayPool<float>.Shared.Rent(tiles.Upsampler.ScratchLength);
        _unionSlot.AsSpan(0, classes).Fill(-1);
    }

    public void Solve(int row, LabelMap map)
    {
        var (pixels, unionCount, runCount) = DecideTiles(row);
        var upsampler = _tiles.Upsampler;
        var queries = _tiles.Output.Queries;
        var padded = PixelBatch.PaddedLength(pixels, upsampler.Width);
        var xs = _xs.AsSpan(0, pixels);
        var values = _values.AsSpan(0, padded);
        var scores = _scores.AsSpan(0, unionCount * padded);
        for (var y = _tiles.TileRows.Starts[row]; y < _tiles.TileRows.Starts[row + 1]; y++)
        {
            var labels = map.Row(y);
            for (var r = 0; r < runCount; r++)
            {
                labels.Slice(_runs[3 * r], _runs[(3 * r) + 1]).Fill((ushort)_runs[(3 * r) + 2]);
            }

            if (pixels == 0)
            {
                continue;
            }

            // The dense computation's operations in its order, on the undecided pixels only.
            scores.Clear();
            for (var q = 0; q < queries; q++)
            {
                upsampler.ComputePixels(q, y, xs, values, _blend);
                values[pixels..].Clear();
                TensorPrimitives.Sigmoid(values, values);
                for (var u = 0; u < unionCount; u++)
                {
                    var score = scores.Slice(u * padded, padded);
                    TensorPrimitives.MultiplyAdd(values, _probabilities[(q * (_classes + 1)) + _union[u]], score, score);
                }
            }

            // First maximum among the candidates, in class order; the others are strictly lower.
            for (var k = 0; k < pixels; k++)
            {
                var tile = _pixelTile[k];
                var start = _candidateStart[tile];
                var best = _candidates[start];
                var bestScore = scores[(_unionSlot[best] * padded) + k];
                for (var i = start + 1; i < start + _candidateCount[tile]; i++)
                {
                    var candidate = _candidates[i];
                    var score = scores[(_unionSlot[candidate] * padded) + k];
                    if (score > bestScore)
                    {
                        (best, bestScore) = (candidate, score);
                    }
                }

                labels[xs[k]] = (ushort)best;
            }
        }

        for (var u = 0; u < unionCount; u++)
        {
            _unionSlot[_union[u]] = -1;
        }
    }

    public void Dispose()
    {
        EngineArrayPool<float>.Shared.Return(_lower);
        EngineArrayPool<float>.Shared.Return(_upper);
        EngineArrayPool<int>.Shared.Return(_candidates);
        EngineArrayPool<int>.Shared.Return(_candidateStart);
        EngineArrayPool<int>.Shared.Return(_candidateCount);
        EngineArrayPool<int>.Shared.Return(_unionSlot);
        EngineArrayPool<int>.Shared.Return(_union);
        EngineArrayPool<int>.Shared.Return(_xs);
        EngineArrayPool<int>.Shared.Return(_pixelTile);
        EngineArrayPool<int>.Shared.Return(_runs);
        EngineArrayPool<float>.Shared.Return(_values);
        EngineArrayPool<float>.Shared.Return(_scores);
        EngineArrayPool<float>.Shared.Return(_blend);
    }

    // Whether class `best` beats class `other` at every pixel of the tile: the two scores share each
    // query's sigmoid, so their difference Σ_q (p_q(best) − p_q(other))·σ_q is bounded below by taking
    // each σ_q at the end of its range that hurts; tighter than comparing the two scores' bounds.
    private bool Dominates(int row, int tile, int best, int other, float upperSum)
    {
        var difference = 0f;
        for (var q = 0; q < _tiles.Output.Queries; q++)
        {
            var weight = _probabilities[(q * (_classes + 1)) + best] - _probabilities[(q * (_classes + 1)) + other];
            difference += weight * (weight > 0f ? _tiles.SigmoidLower(q, row)[tile] : _tiles.SigmoidUpper(q, row)[tile]);
        }

        // Both scores' float32 errors, and this sum's, are within the margin of their sizes.
        return difference > (2f * _margin * upperSum) + AbsoluteSlack;
    }

    // Bounds every class's score over each tile of the row. A tile whose best lower bound beats every
    // other upper bound joins a run of decided pixels; the others list their candidate classes, add
    // their pixels to the row's gathered columns and their candidates to the row's union of classes.
    private (int Pixels, int UnionCount, int RunCount) DecideTiles(int row)
    {
        var columns = _tiles.TileColumns;
        var count = columns.Count;
        var lower = _lower.AsSpan(0, _classes * count);
        var upper = _upper.AsSpan(0, _classes * count);
        lower.Clear();
        upper.Clear();
        for (var q = 0; q < _tiles.Output.Queries; q++)
        {
            var sigmoidLower = _tiles.SigmoidLower(q, row);
            var sigmoidUpper = _tiles.SigmoidUpper(q, row);
            for (var c = 0; c < _classes; c++)
            {
                var probability = _probabilities[(q * (_classes + 1)) + c];
                TensorPrimitives.MultiplyAdd(sigmoidLower, probability, lower.Slice(c * count, count), lower.Slice(c * count, count));
                TensorPrimitives.MultiplyAdd(sigmoidUpper, probability, upper.Slice(c * count, count), upper.Slice(c * count, count));
            }
        }

        var (pixels, unionCount, runCount, candidates) = (0, 0, 0, 0);
        for (var t = 0; t < count; t++)
        {
            var best = 0;
            for (var c = 1; c < _classes; c++)
            {
                if (lower[(c * count) + t] > lower[(best * count) + t])
                {
                    best = c;
                }
            }

            // Written so that a NaN anywhere keeps every class in the running.
            var threshold = (lower[(best * count) + t] * (1f - _margin)) - AbsoluteSlack;
            var start = candidates;
            for (var c = 0; c < _classes; c++)
            {
                if (c == best || !(((upper[(c * count) + t] * (1f + _margin)) + AbsoluteSlack < threshold)
                    || Dominates(row, t, best, c, upper[(best * count) + t] + upper[(c * count) + t])))
                {
                    _candidates[candidates++] = c;
                }
            }

            var (x0, length) = (columns.Starts[t], columns.Length(t));
            if (candidates - start == 1)
            {
                var label = _candidates[start];
                candidates = start;
                if (runCount > 0 && _runs[(3 * (runCount - 1)) + 2] == label && _runs[3 * (runCount - 1)] + _runs[(3 * (runCount - 1)) + 1] == x0)
                {
                    _runs[(3 * (runCount - 1)) + 1] += length;
                }
                else
                {
                    (_runs[3 * runCount], _runs[(3 * runCount) + 1], _runs[(3 * runCount) + 2]) = (x0, length, label);
                    runCount++;
                }

                continue;
            }

            _candidateStart[t] = start;
            _candidateCount[t] = candidates - start;
            for (var i = start; i < candidates; i++)
            {
                if (_unionSlot[_candidates[i]] < 0)
                {
                    _unionSlot[_candidates[i]] = unionCount;
                    _union[unionCount++] = _candidates[i];
                }
            }

            for (var x = x0; x < x0 + length; x++)
            {
                _xs[pixels] = x;
                _pixelTile[pixels++] = t;
            }
        }

        return (pixels, unionCount, runCount);
    }
}
