using System.Numerics;
using System.Runtime.Intrinsics;

namespace MaskFormer.Engine.Postprocessing;

/// <summary>
/// The decisions a row of tiles takes from the bounds alone (<see cref="MaskTiles"/>): which tiles take
/// one class whole, and which classes are still candidates in the others.
/// </summary>
internal sealed partial class SemanticTileRow
{
    // Whether class `best` beats class `other` at every pixel of the tile: the two scores share each
    // query's sigmoid, so their difference Σ_q (p_q(best) − p_q(other))·σ_q is bounded below by taking
    // each σ_q at the end of its range that hurts; tighter than comparing the two scores' bounds. The
    // spare queries take away at most their probabilities of `other`.
    private bool Dominates(int tile, int best, int other, float upperSum)
    {
        var difference = 0f;
        for (var k = 0; k < _activeCount; k++)
        {
            var weight = _activeProbabilities[(k * (_classes + 1)) + best] - _activeProbabilities[(k * (_classes + 1)) + other];
            var at = (2 * k * _paddedColumns) + tile;
            difference += weight * (weight > 0f ? _rowSigmoids[at] : _rowSigmoids[at + _paddedColumns]);
        }

        difference -= _spare[other];

        // Both scores' float32 errors, and this sum's, are within the margin of their sizes.
        return difference > (2f * _margin * upperSum) + AbsoluteSlack;
    }

    // Bounds the scores over each tile of the row, eight tiles at a time, for the classes that can
    // matter there (Survivors). A tile whose best lower bound beats every other upper bound joins a run
    // of decided pixels; the others list their candidate classes and add their pixels to the row's
    // gathered columns.
    private (int Pixels, int RunCount, int GatheredCount) DecideTiles(int row)
    {
        var columns = _tiles.TileColumns;
        var count = columns.Count;
        var padded = _paddedColumns;
        var queries = _activeCount;
        var sigmoids = _rowSigmoids.AsSpan(0, 2 * queries * padded);
        for (var k = 0; k < queries; k++)
        {
            var q = _active[k];
            _tiles.SigmoidLower(q, row).CopyTo(sigmoids.Slice(2 * k * padded, count));
            sigmoids.Slice((2 * k * padded) + count, padded - count).Clear();
            _tiles.SigmoidUpper(q, row).CopyTo(sigmoids.Slice(((2 * k) + 1) * padded, count));
            sigmoids.Slice((((2 * k) + 1) * padded) + count, padded - count).Clear();
        }

        var lower = _lower.AsSpan(0, _classes * padded);
        var upper = _upper.AsSpan(0, _classes * padded);
        var (pixels, runCount, candidates, gatheredCount) = (0, 0, 0, 0);
        for (var first = 0; first < count; first += Lanes)
        {
            var end = Math.Min(first + Lanes, count);
            var survivors = Survivors(first, end);
            BoundScores(sigmoids, padded, first, queries, _activeProbabilities, _classes + 1, survivors, lower, upper);
            foreach (var c in survivors)
            {
                // The spare queries' sigmoids anywhere in [0, 1]: they add nothing to the lower bound.
                (Vector256.Create(upper.Slice((c * padded) + first, Lanes)) + Vector256.Create(_spare[c])).CopyTo(upper.Slice((c * padded) + first, Lanes));
            }

            for (var t = first; t < end; t++)
            {
                var best = survivors[0];
                foreach (var c in survivors)
                {
                    if (lower[(c * padded) + t] > lower[(best * padded) + t])
                    {
                        best = c;
                    }
                }

                // Written so that a NaN anywhere keeps every class in the running.
                var threshold = (lower[(best * padded) + t] * (1f - _margin)) - AbsoluteSlack;
                var start = candidates;
                foreach (var c in survivors)
                {
                    if (c == best || !(((upper[(c * padded) + t] * (1f + _margin)) + AbsoluteSlack < threshold)
                        || Dominates(t, best, c, upper[(best * padded) + t] + upper[(c * padded) + t])))
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
                if (gatheredCount > 0 && _gathered[(3 * (gatheredCount - 1)) + 1] + _gathered[(3 * (gatheredCount - 1)) + 2] == x0)
                {
                    _gathered[(3 * (gatheredCount - 1)) + 2] += length;
                }
                else
                {
                    (_gathered[3 * gatheredCount], _gathered[(3 * gatheredCount) + 1], _gathered[(3 * gatheredCount) + 2]) = (pixels, x0, length);
                    gatheredCount++;
                }

                for (var x = x0; x < x0 + length; x++)
                {
                    _xs[pixels] = x;
                    _pixelTile[pixels++] = t;
                }
            }
        }

        return (pixels, runCount, gatheredCount);
    }

    // The classes, in class order, that can be a candidate in some tile of [first, end): the others
    // are left out with the very test the tile would apply, on bounds for the whole block. A class whose
    // upper bound over the block (BlockBounds, from each query's highest sigmoid bound there, lower or
    // upper) falls below the highest block-wide lower bound of any class, less the margins, is below
    // every tile's threshold and below every tile's best lower bound: it is neither the best nor a
    // candidate anywhere. Float32 rounding is monotone and the sums run in the same order, so this
    // holds for the computed bounds too. A NaN keeps every class.
    private ReadOnlySpan<int> Survivors(int first, int end)
    {
        var (queries, padded) = (_activeCount, _paddedColumns);
        var lowest = _blockSigmoids.AsSpan(0, queries);
        var highest = _blockSigmoids.AsSpan(queries, queries);
        for (var q = 0; q < queries; q++)
        {
            var at = 2 * q * padded;
            if (end - first == Lanes)
            {
                var low = Vector256.Create(_rowSigmoids.AsSpan(at + first, Lanes));
                var high = Vector256.Max(low, Vector256.Create(_rowSigmoids.AsSpan(at + padded + first, Lanes)));
                if (!Vector256.EqualsAll(low, low) || !Vector256.EqualsAll(high, high))
                {
                    return AllClasses();
                }

                (lowest[q], highest[q]) = (MinAcross(low), MaxAcross(high));
                continue;
            }

            var (min, max) = (_rowSigmoids[at + first], MathF.Max(_rowSigmoids[at + first], _rowSigmoids[at + padded + first]));
            for (var t = first + 1; t < end; t++)
            {
                // MathF.Min and Max return NaN when either side is NaN.
                min = MathF.Min(min, _rowSigmoids[at + t]);
                max = MathF.Max(max, MathF.Max(_rowSigmoids[at + t], _rowSigmoids[at + padded + t]));
            }

            (lowest[q], highest[q]) = (min, max);
        }

        var blockLower = _blockBounds.AsSpan(0, _paddedClasses);
        var blockUpper = _blockBounds.AsSpan(_paddedClasses, _paddedClasses);
        BlockBounds(lowest, highest, queries, _paddedProbabilities.AsSpan(0, queries * _paddedClasses), _paddedClasses, blockLower, blockUpper);
        for (var c = 0; c < _paddedClasses; c += Lanes)
        {
            (Vector256.Create(blockUpper.Slice(c, Lanes)) + Vector256.Create(_spare.AsSpan(c, Lanes))).CopyTo(blockUpper.Slice(c, Lanes));
        }

        var top = Vector256.Create(blockLower[..Lanes]);
        for (var c = 0; c < _paddedClasses; c += Lanes)
        {
            var (low, high) = (Vector256.Create(blockLower.Slice(c, Lanes)), Vector256.Create(blockUpper.Slice(c, Lanes)));
            if (!Vector256.EqualsAll(low, low) || !Vector256.EqualsAll(high, high))
            {
                return AllClasses();
            }

            // The padding classes' bounds are zero, no higher than any class's.
            top = Vector256.Max(top, low);
        }

        var cut = Vector256.Create((MaxAcross(top) * (1f - _margin)) - AbsoluteSlack);
        var (grow, slack) = (Vector256.Create(1f + _margin), Vector256.Create(AbsoluteSlack));
        var survivors = 0;
        for (var c = 0; c < _paddedClasses; c += Lanes)
        {
            var kept = ~Vector256.LessThan((Vector256.Create(blockUpper.Slice(c, Lanes)) * grow) + slack, cut);
            for (var bits = kept.ExtractMostSignificantBits(); bits != 0; bits &= bits - 1)
            {
                var survivor = c + BitOperations.TrailingZeroCount(bits);
                if (survivor < _classes)
                {
                    _survivors[survivors++] = survivor;
                }
            }
        }

        return _survivors.AsSpan(0, survivors);
    }

    private ReadOnlySpan<int> AllClasses()
    {
        for (var c = 0; c < _classes; c++)
        {
            _survivors[c] = c;
        }

        return _survivors.AsSpan(0, _classes);
    }

    // The smallest of eight values without NaN.
    private static float MinAcross(Vector256<float> values)
    {
        var half = Vector128.Min(values.GetLower(), values.GetUpper());
        half = Vector128.Min(half, Vector128.Shuffle(half, Vector128.Create(2, 3, 0, 1)));
        return Vector128.Min(half, Vector128.Shuffle(half, Vector128.Create(1, 0, 3, 2))).ToScalar();
    }

    // The largest of eight values without NaN.
    private static float MaxAcross(Vector256<float> values)
    {
        var half = Vector128.Max(values.GetLower(), values.GetUpper());
        half = Vector128.Max(half, Vector128.Shuffle(half, Vector128.Create(2, 3, 0, 1)));
        return Vector128.Max(half, Vector128.Shuffle(half, Vector128.Create(1, 0, 3, 2))).ToScalar();
    }
}
