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
    /// Bounds every class's score over a row of tiles: <c>lower[c·tiles + t] = Σ_q σ(lower_q(t))·p_q(c)</c>
    /// and likewise <c>upper</c>. <paramref name="sigmoids"/> holds, per query, the row's sigmoids of the
    /// lower bounds then of the upper bounds, <paramref name="tiles"/> (a multiple of <see cref="Lanes"/>) each.
    /// </summary>
    internal static void BoundScores(ReadOnlySpan<float> sigmoids, int tiles, int queries, ReadOnlySpan<float> probabilities, int classes, Span<float> lower, Span<float> upper)
    {
        var classStride = classes + 1;
        if (tiles % Lanes != 0 || sigmoids.Length < 2 * tiles * queries || probabilities.Length < queries * classStride
            || lower.Length < classes * tiles || upper.Length < classes * tiles)
        {
            throw new ArgumentException("Score buffers are shorter than the tiles, queries and classes they are for.");
        }

        ref var sigmoid = ref MemoryMarshal.GetReference(sigmoids);
        ref var probability = ref MemoryMarshal.GetReference(probabilities);
        ref var low = ref MemoryMarshal.GetReference(lower);
        ref var high = ref MemoryMarshal.GetReference(upper);
        var (queryStride, upperOffset) = ((nuint)(2 * tiles), (nuint)tiles);
        for (var t = 0; t < tiles; t += Lanes)
        {
            var c = 0;
            for (; c + 4 <= classes; c += 4)
            {
                Vector256<float> l0 = default, l1 = default, l2 = default, l3 = default;
                Vector256<float> u0 = default, u1 = default, u2 = default, u3 = default;
                var (at, p) = ((nuint)t, (nuint)c);
                for (var q = 0; q < queries; q++, at += queryStride, p += (nuint)classStride)
                {
                    var sl = Vector256.LoadUnsafe(ref sigmoid, at);
                    var su = Vector256.LoadUnsafe(ref sigmoid, at + upperOffset);
                    var p0 = Vector256.Create(Unsafe.Add(ref probability, p));
                    var p1 = Vector256.Create(Unsafe.Add(ref probability, p + 1));
                    var p2 = Vector256.Create(Unsafe.Add(ref probability, p + 2));
                    var p3 = Vector256.Create(Unsafe.Add(ref probability, p + 3));
                    l0 = (sl * p0) + l0;
                    u0 = (su * p0) + u0;
                    l1 = (sl * p1) + l1;
                    u1 = (su * p1) + u1;
                    l2 = (sl * p2) + l2;
                    u2 = (su * p2) + u2;
                    l3 = (sl * p3) + l3;
                    u3 = (su * p3) + u3;
                }

                var o = (nuint)((c * tiles) + t);
                l0.StoreUnsafe(ref low, o);
                u0.StoreUnsafe(ref high, o);
                l1.StoreUnsafe(ref low, o + (nuint)tiles);
                u1.StoreUnsafe(ref high, o + (nuint)tiles);
                l2.StoreUnsafe(ref low, o + (nuint)(2 * tiles));
                u2.StoreUnsafe(ref high, o + (nuint)(2 * tiles));
                l3.StoreUnsafe(ref low, o + (nuint)(3 * tiles));
                u3.StoreUnsafe(ref high, o + (nuint)(3 * tiles));
            }

            for (; c < classes; c++)
            {
                Vector256<float> l0 = default, u0 = default;
                var (at, p) = ((nuint)t, (nuint)c);
                for (var q = 0; q < queries; q++, at += queryStride, p += (nuint)classStride)
                {
                    var p0 = Vector256.Create(Unsafe.Add(ref probability, p));
                    l0 = (Vector256.LoadUnsafe(ref sigmoid, at) * p0) + l0;
                    u0 = (Vector256.LoadUnsafe(ref sigmoid, at + upperOffset) * p0) + u0;
                }

                l0.StoreUnsafe(ref low, (nuint)((c * tiles) + t));
                u0.StoreUnsafe(ref high, (nuint)((c * tiles) + t));
            }
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
