using System.Runtime.CompilerServices;
using System.Runtime.InteropServices;
using System.Runtime.Intrinsics;

namespace MaskFormer.Engine.Postprocessing;

/// <summary>
/// The two score kernels: small matrix products of class probabilities and query sigmoids. Each score
/// is the dense computation's float32 sum, <c>score = σ_q·p_q(c) + score</c> (a multiply, then an add:
/// TensorPrimitives.MultiplyAdd does not fuse) in query order from zero, so it is the same bit for bit;
/// only which scores share a pass differs, holding a block of them in registers across the queries
/// instead of reading and writing every score once per query.
/// </summary>
internal sealed partial class SemanticTileRow
{
    /// <summary>Floats per vector: the kernels' pixel and tile blocks.</summary>
    internal const int Lanes = 8;

    /// <summary>
    /// Bounds classes <paramref name="classList"/>'s scores over <see cref="Lanes"/> tiles of a row from
    /// <paramref name="first"/>: <c>lower[c·tiles + t] = Σ_q σ(lower_q(t))·p_q(c)</c>, and likewise
    /// <c>upper</c>. <paramref name="sigmoids"/> holds, per query, the row's sigmoids of the lower bounds
    /// then of the upper bounds, <paramref name="tiles"/> (a multiple of <see cref="Lanes"/>) each.
    /// </summary>
    internal static void BoundScores(ReadOnlySpan<float> sigmoids, int tiles, int first, int queries, ReadOnlySpan<float> probabilities, int classStride, ReadOnlySpan<int> classList, Span<float> lower, Span<float> upper)
    {
        if (tiles % Lanes != 0 || first < 0 || first % Lanes != 0 || first + Lanes > tiles || sigmoids.Length < 2 * tiles * queries)
        {
            throw new ArgumentException("Score buffers are shorter than the tiles and queries they are for.");
        }

        foreach (var c in classList)
        {
            if ((uint)c >= (uint)classStride || probabilities.Length < ((queries - 1) * classStride) + c + 1 || lower.Length < (c + 1) * tiles || upper.Length < (c + 1) * tiles)
            {
                throw new ArgumentOutOfRangeException(nameof(classList), c, "A class is outside the probabilities or the bounds.");
            }
        }

        ref var sigmoid = ref MemoryMarshal.GetReference(sigmoids);
        ref var probability = ref MemoryMarshal.GetReference(probabilities);
        ref var low = ref MemoryMarshal.GetReference(lower);
        ref var high = ref MemoryMarshal.GetReference(upper);
        var (queryStride, upperOffset, step) = ((nuint)(2 * tiles), (nuint)tiles, (nuint)classStride);
        var i = 0;
        for (; i + 4 <= classList.Length; i += 4)
        {
            Vector256<float> l0 = default, l1 = default, l2 = default, l3 = default;
            Vector256<float> u0 = default, u1 = default, u2 = default, u3 = default;
            var (p0, p1, p2, p3) = ((nuint)classList[i], (nuint)classList[i + 1], (nuint)classList[i + 2], (nuint)classList[i + 3]);
            var at = (nuint)first;
            for (var q = 0; q < queries; q++, at += queryStride)
            {
                var sl = Vector256.LoadUnsafe(ref sigmoid, at);
                var su = Vector256.LoadUnsafe(ref sigmoid, at + upperOffset);
                var w0 = Vector256.Create(Unsafe.Add(ref probability, p0));
                var w1 = Vector256.Create(Unsafe.Add(ref probability, p1));
                var w2 = Vector256.Create(Unsafe.Add(ref probability, p2));
                var w3 = Vector256.Create(Unsafe.Add(ref probability, p3));
                l0 = (sl * w0) + l0;
                u0 = (su * w0) + u0;
                l1 = (sl * w1) + l1;
                u1 = (su * w1) + u1;
                l2 = (sl * w2) + l2;
                u2 = (su * w2) + u2;
                l3 = (sl * w3) + l3;
                u3 = (su * w3) + u3;
                (p0, p1, p2, p3) = (p0 + step, p1 + step, p2 + step, p3 + step);
            }

            Store(l0, u0, ref low, ref high, (nuint)((classList[i] * tiles) + first));
            Store(l1, u1, ref low, ref high, (nuint)((classList[i + 1] * tiles) + first));
            Store(l2, u2, ref low, ref high, (nuint)((classList[i + 2] * tiles) + first));
            Store(l3, u3, ref low, ref high, (nuint)((classList[i + 3] * tiles) + first));
        }

        for (; i < classList.Length; i++)
        {
            Vector256<float> l0 = default, u0 = default;
            var (at, p) = ((nuint)first, (nuint)classList[i]);
            for (var q = 0; q < queries; q++, at += queryStride, p += step)
            {
                var w = Vector256.Create(Unsafe.Add(ref probability, p));
                l0 = (Vector256.LoadUnsafe(ref sigmoid, at) * w) + l0;
                u0 = (Vector256.LoadUnsafe(ref sigmoid, at + upperOffset) * w) + u0;
            }

            Store(l0, u0, ref low, ref high, (nuint)((classList[i] * tiles) + first));
        }
    }

    private static void Store(Vector256<float> lower, Vector256<float> upper, ref float low, ref float high, nuint at)
    {
        lower.StoreUnsafe(ref low, at);
        upper.StoreUnsafe(ref high, at);
    }

    /// <summary>
    /// Bounds every class's score over a block of tiles at once: <c>lower[c] = Σ_q lowest[q]·p_q(c)</c>
    /// and <c>upper[c] = Σ_q highest[q]·p_q(c)</c>, in <see cref="BoundScores"/>'s order, so that with
    /// <c>lowest[q]</c> at most, and <c>highest[q]</c> at least, every tile's sigmoid, float32 rounding
    /// (monotone) keeps them below and above every tile's bound. <paramref name="probabilities"/> is
    /// [queries, <paramref name="classes"/>] with <paramref name="classes"/> a multiple of <see cref="Lanes"/>.
    /// </summary>
    internal static void BlockBounds(ReadOnlySpan<float> lowest, ReadOnlySpan<float> highest, int queries, ReadOnlySpan<float> probabilities, int classes, Span<float> lower, Span<float> upper)
    {
        if (classes % Lanes != 0 || lowest.Length < queries || highest.Length < queries || probabilities.Length < queries * classes || lower.Length < classes || upper.Length < classes)
        {
            throw new ArgumentException("Bound buffers are shorter than the queries and classes they are for.");
        }

        ref var probability = ref MemoryMarshal.GetReference(probabilities);
        ref var low = ref MemoryMarshal.GetReference(lower);
        ref var high = ref MemoryMarshal.GetReference(upper);
        var c = 0;
        for (; c + (4 * Lanes) <= classes; c += 4 * Lanes)
        {
            Vector256<float> l0 = default, l1 = default, l2 = default, l3 = default;
            Vector256<float> u0 = default, u1 = default, u2 = default, u3 = default;
            var at = (nuint)c;
            for (var q = 0; q < queries; q++, at += (nuint)classes)
            {
                var (sl, su) = (Vector256.Create(lowest[q]), Vector256.Create(highest[q]));
                var w0 = Vector256.LoadUnsafe(ref probability, at);
                var w1 = Vector256.LoadUnsafe(ref probability, at + Lanes);
                var w2 = Vector256.LoadUnsafe(ref probability, at + (2 * Lanes));
                var w3 = Vector256.LoadUnsafe(ref probability, at + (3 * Lanes));
                l0 = (sl * w0) + l0;
                u0 = (su * w0) + u0;
                l1 = (sl * w1) + l1;
                u1 = (su * w1) + u1;
                l2 = (sl * w2) + l2;
                u2 = (su * w2) + u2;
                l3 = (sl * w3) + l3;
                u3 = (su * w3) + u3;
            }

            Store(l0, u0, ref low, ref high, (nuint)c);
            Store(l1, u1, ref low, ref high, (nuint)(c + Lanes));
            Store(l2, u2, ref low, ref high, (nuint)(c + (2 * Lanes)));
            Store(l3, u3, ref low, ref high, (nuint)(c + (3 * Lanes)));
        }

        for (; c < classes; c += Lanes)
        {
            Vector256<float> l0 = default, u0 = default;
            var at = (nuint)c;
            for (var q = 0; q < queries; q++, at += (nuint)classes)
            {
                var w = Vector256.LoadUnsafe(ref probability, at);
                l0 = (Vector256.Create(lowest[q]) * w) + l0;
                u0 = (Vector256.Create(highest[q]) * w) + u0;
            }

            l0.StoreUnsafe(ref low, (nuint)c);
            u0.StoreUnsafe(ref high, (nuint)c);
        }
    }

    /// <summary>
    /// Scores classes <paramref name="classList"/> at <see cref="Lanes"/> pixels:
    /// <c>scores[i·Lanes + k] = Σ_q sigmas[q·stride + k]·p_q(classList[i])</c>.
    /// </summary>
    internal static void ScoreClasses(ReadOnlySpan<float> sigmas, int stride, int queries, ReadOnlySpan<float> probabilities, int classStride, ReadOnlySpan<int> classList, Span<float> scores)
    {
        if ((queries > 0 && sigmas.Length < ((queries - 1) * stride) + Lanes) || scores.Length < classList.Length * Lanes)
        {
            throw new ArgumentException("Score buffers are shorter than the pixels, queries and classes they are for.");
        }

        foreach (var c in classList)
        {
            if ((uint)c >= (uint)classStride || probabilities.Length < ((queries - 1) * classStride) + c + 1)
            {
                throw new ArgumentOutOfRangeException(nameof(classList), c, "A class is outside the probabilities.");
            }
        }

        ref var sigma = ref MemoryMarshal.GetReference(sigmas);
        ref var probability = ref MemoryMarshal.GetReference(probabilities);
        ref var score = ref MemoryMarshal.GetReference(scores);
        var i = 0;
        for (; i + 4 <= classList.Length; i += 4)
        {
            Vector256<float> s0 = default, s1 = default, s2 = default, s3 = default;
            var (p0, p1, p2, p3) = ((nuint)classList[i], (nuint)classList[i + 1], (nuint)classList[i + 2], (nuint)classList[i + 3]);
            var at = (nuint)0;
            for (var q = 0; q < queries; q++, at += (nuint)stride)
            {
                var s = Vector256.LoadUnsafe(ref sigma, at);
                s0 = (s * Vector256.Create(Unsafe.Add(ref probability, p0))) + s0;
                s1 = (s * Vector256.Create(Unsafe.Add(ref probability, p1))) + s1;
                s2 = (s * Vector256.Create(Unsafe.Add(ref probability, p2))) + s2;
                s3 = (s * Vector256.Create(Unsafe.Add(ref probability, p3))) + s3;
                (p0, p1, p2, p3) = (p0 + (nuint)classStride, p1 + (nuint)classStride, p2 + (nuint)classStride, p3 + (nuint)classStride);
            }

            s0.StoreUnsafe(ref score, (nuint)(i * Lanes));
            s1.StoreUnsafe(ref score, (nuint)((i + 1) * Lanes));
            s2.StoreUnsafe(ref score, (nuint)((i + 2) * Lanes));
            s3.StoreUnsafe(ref score, (nuint)((i + 3) * Lanes));
        }

        for (; i + 2 <= classList.Length; i += 2)
        {
            Vector256<float> s0 = default, s1 = default;
            var (p0, p1) = ((nuint)classList[i], (nuint)classList[i + 1]);
            var at = (nuint)0;
            for (var q = 0; q < queries; q++, at += (nuint)stride)
            {
                var s = Vector256.LoadUnsafe(ref sigma, at);
                s0 = (s * Vector256.Create(Unsafe.Add(ref probability, p0))) + s0;
                s1 = (s * Vector256.Create(Unsafe.Add(ref probability, p1))) + s1;
                (p0, p1) = (p0 + (nuint)classStride, p1 + (nuint)classStride);
            }

            s0.StoreUnsafe(ref score, (nuint)(i * Lanes));
            s1.StoreUnsafe(ref score, (nuint)((i + 1) * Lanes));
        }

        if (i < classList.Length)
        {
            Vector256<float> s0 = default;
            var p0 = (nuint)classList[i];
            var at = (nuint)0;
            for (var q = 0; q < queries; q++, at += (nuint)stride, p0 += (nuint)classStride)
            {
                s0 = (Vector256.LoadUnsafe(ref sigma, at) * Vector256.Create(Unsafe.Add(ref probability, p0))) + s0;
            }

            s0.StoreUnsafe(ref score, (nuint)(i * Lanes));
        }
    }
}
