using System.Numerics;
using System.Runtime.CompilerServices;
using System.Runtime.InteropServices;
using System.Runtime.Intrinsics;

namespace MaskFormer.Engine.Postprocessing;

/// <summary>
/// Sums the sigmoids of whole segments of an upsampled row (<see cref="SegmentMoments"/>) from the two
/// grid values each blends, without computing its pixels: with c the logit at the segment's mean
/// weight and D the step between its grid values, a pixel's logit is <c>c + D·(t − t̄)</c>, so
/// <c>Σ σ = n·σ(c) + Σₖ σ⁽ᵏ⁾(c)·Dᵏ·Σ (t − t̄)ᵏ/k!</c> to degree <see cref="SegmentMoments.Order"/>,
/// with each derivative a polynomial in σ(c). The series' remainder at a pixel is at most
/// <c>max|σ⁽⁹⁾|/9! · h⁹</c> (2.14e-5 · h⁹) for h = |D| times the segment's reach; a segment whose h
/// exceeds <see cref="MaximumReach"/> is handed back to be summed pixel by pixel.
/// </summary>
/// <remarks>
/// Every lane, vector or scalar, does the same float32 operations in the same order, so a segment's
/// sum does not depend on where it falls in a row. In an inside tile (every logit above 0) it is at
/// least 0.25, so a float32 that is a multiple of 2^-25: the float64 totals stay exact in any order,
/// as <see cref="TiledMask"/>'s per-pixel sums do.
/// </remarks>
internal static class SegmentSigmoidSum
{
    /// <summary>
    /// The largest h summed by the series: 2.14e-5 · 0.55⁹ = 9.8e-8 per pixel, which with
    /// <see cref="SumSigmoid.MaxError"/> at the mean keeps each pixel's share within 3e-7 plus float32 rounding.
    /// </summary>
    public const float MaximumReach = 0.55f;

    /// <summary>
    /// The sum of the sigmoids of segments [<paramref name="first"/>, first + count) that
    /// <paramref name="summed"/> marks (all bits set at index r − first), from the grid values
    /// <paramref name="grid"/> (the first at grid point <paramref name="first"/>), less those written to
    /// <paramref name="failed"/> (their indices; <paramref name="failedCount"/> of them), whose steps are
    /// too large for the series or not finite. Both spans run on to <paramref name="count"/> rounded up
    /// to 16, plus one grid value; lanes past the count must be unmarked.
    /// </summary>
    public static double Sum(SegmentMoments segments, ReadOnlySpan<float> grid, ReadOnlySpan<int> summed, int first, int count, Span<int> failed, out int failedCount)
    {
        var length = (count + 15) & ~15;
        ArgumentOutOfRangeException.ThrowIfLessThan(grid.Length, length + 1, nameof(grid));
        ArgumentOutOfRangeException.ThrowIfLessThan(summed.Length, length, nameof(summed));
        ArgumentOutOfRangeException.ThrowIfGreaterThan(first + length, segments.Stride, nameof(count));
        var at = new Lanes(segments, first);
        ref var values = ref MemoryMarshal.GetReference(grid);
        ref var marks = ref MemoryMarshal.GetReference(summed);
        var (i, sum, failures) = (0, 0.0, 0);
        if (Vector512.IsHardwareAccelerated)
        {
            var total = Vector512<double>.Zero;
            for (; i < length; i += Vector512<float>.Count)
            {
                var lane = (nuint)i;
                var marked = Vector512.LoadUnsafe(ref marks, lane);
                if (marked == Vector512<int>.Zero)
                {
                    continue;
                }

                var (segment, ok) = Vector(Vector512.LoadUnsafe(ref values, lane), Vector512.LoadUnsafe(ref values, lane + 1), at, lane);
                for (var bits = Vector512.AndNot(marked, ok).ExtractMostSignificantBits(); bits != 0; bits &= bits - 1)
                {
                    failed[failures++] = first + i + BitOperations.TrailingZeroCount(bits);
                }

                segment &= (marked & ok).AsSingle();
                total += Vector512.WidenLower(segment) + Vector512.WidenUpper(segment);
            }

            sum += Vector512.Sum(total);
        }

        if (Vector256.IsHardwareAccelerated)
        {
            var total = Vector256<double>.Zero;
            for (; i < length; i += Vector256<float>.Count)
            {
                var lane = (nuint)i;
                var marked = Vector256.LoadUnsafe(ref marks, lane);
                if (marked == Vector256<int>.Zero)
                {
                    continue;
                }

                var (segment, ok) = Vector(Vector256.LoadUnsafe(ref values, lane), Vector256.LoadUnsafe(ref values, lane + 1), at, lane);
                for (var bits = Vector256.AndNot(marked, ok).ExtractMostSignificantBits(); bits != 0; bits &= bits - 1)
                {
                    failed[failures++] = first + i + BitOperations.TrailingZeroCount(bits);
                }

                segment &= (marked & ok).AsSingle();
                total += Vector256.WidenLower(segment) + Vector256.WidenUpper(segment);
            }

            sum += Vector256.Sum(total);
        }

        for (; i < length; i++)
        {
            if (summed[i] == 0)
            {
                continue;
            }

            var (segment, ok) = Scalar(grid[i], grid[i + 1], at, (nuint)i);
            if (ok)
            {
                sum += segment;
            }
            else
            {
                failed[failures++] = first + i;
            }
        }

        failedCount = failures;
        return sum;
    }

    /// <summary>One segment's sum as every lane computes it, and whether the series may sum it.</summary>
    public static (float Sum, bool Summed) Scalar(float low, float high, Lanes at, nuint i)
    {
        var step = high - low;
        var center = MathF.FusedMultiplyAdd(Unsafe.Add(ref at.Mean, i), step, low);
        var summed = MathF.Abs(step) * Unsafe.Add(ref at.Reach, i) <= MaximumReach;
        var s = SumSigmoid.Scalar(center);
        var u = MathF.FusedMultiplyAdd(-s, s, s);
        var v = MathF.FusedMultiplyAdd(-2f, s, 1f);
        var stride = at.Stride;

        // σ⁽ᵏ⁾ = u·Aₖ(u) for odd k and u·v·Aₖ(u) for even k, with u = s(1 − s), v = 1 − 2s; the odd and even
        // terms as polynomials in D², each moment taking its Aₖ.
        var a3 = MathF.FusedMultiplyAdd(-6f, u, 1f);
        var a4 = MathF.FusedMultiplyAdd(-12f, u, 1f);
        var a5 = MathF.FusedMultiplyAdd(MathF.FusedMultiplyAdd(120f, u, -30f), u, 1f);
        var a6 = MathF.FusedMultiplyAdd(MathF.FusedMultiplyAdd(360f, u, -60f), u, 1f);
        var a7 = MathF.FusedMultiplyAdd(MathF.FusedMultiplyAdd(MathF.FusedMultiplyAdd(-5040f, u, 1680f), u, -126f), u, 1f);
        var a8 = MathF.FusedMultiplyAdd(MathF.FusedMultiplyAdd(MathF.FusedMultiplyAdd(-20160f, u, 5040f), u, -252f), u, 1f);
        var step2 = step * step;
        var odd = step * MathF.FusedMultiplyAdd(step2, MathF.FusedMultiplyAdd(step2, MathF.FusedMultiplyAdd(step2, Unsafe.Add(ref at.Moments, i + (6 * stride)) * a7, Unsafe.Add(ref at.Moments, i + (4 * stride)) * a5), Unsafe.Add(ref at.Moments, i + (2 * stride)) * a3), Unsafe.Add(ref at.Moments, i));
        var even = step2 * MathF.FusedMultiplyAdd(step2, MathF.FusedMultiplyAdd(step2, MathF.FusedMultiplyAdd(step2, Unsafe.Add(ref at.Moments, i + (7 * stride)) * a8, Unsafe.Add(ref at.Moments, i + (5 * stride)) * a6), Unsafe.Add(ref at.Moments, i + (3 * stride)) * a4), Unsafe.Add(ref at.Moments, i + stride));
        return (MathF.FusedMultiplyAdd(Unsafe.Add(ref at.Pixels, i), s, u * MathF.FusedMultiplyAdd(v, even, odd)), summed);
    }

    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    private static (Vector512<float> Sum, Vector512<int> Summed) Vector(Vector512<float> low, Vector512<float> high, Lanes at, nuint i)
    {
        var step = high - low;
        var center = Vector512.FusedMultiplyAdd(Vector512.LoadUnsafe(ref at.Mean, i), step, low);
        var summed = Vector512.LessThanOrEqual(Vector512.Abs(step) * Vector512.LoadUnsafe(ref at.Reach, i), Vector512.Create(MaximumReach)).AsInt32();
        var s = SumSigmoid.Vector(center);
        var u = Vector512.FusedMultiplyAdd(-s, s, s);
        var v = Vector512.FusedMultiplyAdd(Vector512.Create(-2f), s, Vector512<float>.One);
        var stride = at.Stride;
        var a3 = Vector512.FusedMultiplyAdd(Vector512.Create(-6f), u, Vector512<float>.One);
        var a4 = Vector512.FusedMultiplyAdd(Vector512.Create(-12f), u, Vector512<float>.One);
        var a5 = Vector512.FusedMultiplyAdd(Vector512.FusedMultiplyAdd(Vector512.Create(120f), u, Vector512.Create(-30f)), u, Vector512<float>.One);
        var a6 = Vector512.FusedMultiplyAdd(Vector512.FusedMultiplyAdd(Vector512.Create(360f), u, Vector512.Create(-60f)), u, Vector512<float>.One);
        var a7 = Vector512.FusedMultiplyAdd(Vector512.FusedMultiplyAdd(Vector512.FusedMultiplyAdd(Vector512.Create(-5040f), u, Vector512.Create(1680f)), u, Vector512.Create(-126f)), u, Vector512<float>.One);
        var a8 = Vector512.FusedMultiplyAdd(Vector512.FusedMultiplyAdd(Vector512.FusedMultiplyAdd(Vector512.Create(-20160f), u, Vector512.Create(5040f)), u, Vector512.Create(-252f)), u, Vector512<float>.One);
        var step2 = step * step;
        var odd = step * Vector512.FusedMultiplyAdd(step2, Vector512.FusedMultiplyAdd(step2, Vector512.FusedMultiplyAdd(step2, Vector512.LoadUnsafe(ref at.Moments, i + (6 * stride)) * a7, Vector512.LoadUnsafe(ref at.Moments, i + (4 * stride)) * a5), Vector512.LoadUnsafe(ref at.Moments, i + (2 * stride)) * a3), Vector512.LoadUnsafe(ref at.Moments, i));
        var even = step2 * Vector512.FusedMultiplyAdd(step2, Vector512.FusedMultiplyAdd(step2, Vector512.FusedMultiplyAdd(step2, Vector512.LoadUnsafe(ref at.Moments, i + (7 * stride)) * a8, Vector512.LoadUnsafe(ref at.Moments, i + (5 * stride)) * a6), Vector512.LoadUnsafe(ref at.Moments, i + (3 * stride)) * a4), Vector512.LoadUnsafe(ref at.Moments, i + stride));
        return (Vector512.FusedMultiplyAdd(Vector512.LoadUnsafe(ref at.Pixels, i), s, u * Vector512.FusedMultiplyAdd(v, even, odd)), summed);
    }

    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    private static (Vector256<float> Sum, Vector256<int> Summed) Vector(Vector256<float> low, Vector256<float> high, Lanes at, nuint i)
    {
        var step = high - low;
        var center = Vector256.FusedMultiplyAdd(Vector256.LoadUnsafe(ref at.Mean, i), step, low);
        var summed = Vector256.LessThanOrEqual(Vector256.Abs(step) * Vector256.LoadUnsafe(ref at.Reach, i), Vector256.Create(MaximumReach)).AsInt32();
        var s = SumSigmoid.Vector(center);
        var u = Vector256.FusedMultiplyAdd(-s, s, s);
        var v = Vector256.FusedMultiplyAdd(Vector256.Create(-2f), s, Vector256<float>.One);
        var stride = at.Stride;
        var a3 = Vector256.FusedMultiplyAdd(Vector256.Create(-6f), u, Vector256<float>.One);
        var a4 = Vector256.FusedMultiplyAdd(Vector256.Create(-12f), u, Vector256<float>.One);
        var a5 = Vector256.FusedMultiplyAdd(Vector256.FusedMultiplyAdd(Vector256.Create(120f), u, Vector256.Create(-30f)), u, Vector256<float>.One);
        var a6 = Vector256.FusedMultiplyAdd(Vector256.FusedMultiplyAdd(Vector256.Create(360f), u, Vector256.Create(-60f)), u, Vector256<float>.One);
        var a7 = Vector256.FusedMultiplyAdd(Vector256.FusedMultiplyAdd(Vector256.FusedMultiplyAdd(Vector256.Create(-5040f), u, Vector256.Create(1680f)), u, Vector256.Create(-126f)), u, Vector256<float>.One);
        var a8 = Vector256.FusedMultiplyAdd(Vector256.FusedMultiplyAdd(Vector256.FusedMultiplyAdd(Vector256.Create(-20160f), u, Vector256.Create(5040f)), u, Vector256.Create(-252f)), u, Vector256<float>.One);
        var step2 = step * step;
        var odd = step * Vector256.FusedMultiplyAdd(step2, Vector256.FusedMultiplyAdd(step2, Vector256.FusedMultiplyAdd(step2, Vector256.LoadUnsafe(ref at.Moments, i + (6 * stride)) * a7, Vector256.LoadUnsafe(ref at.Moments, i + (4 * stride)) * a5), Vector256.LoadUnsafe(ref at.Moments, i + (2 * stride)) * a3), Vector256.LoadUnsafe(ref at.Moments, i));
        var even = step2 * Vector256.FusedMultiplyAdd(step2, Vector256.FusedMultiplyAdd(step2, Vector256.FusedMultiplyAdd(step2, Vector256.LoadUnsafe(ref at.Moments, i + (7 * stride)) * a8, Vector256.LoadUnsafe(ref at.Moments, i + (5 * stride)) * a6), Vector256.LoadUnsafe(ref at.Moments, i + (3 * stride)) * a4), Vector256.LoadUnsafe(ref at.Moments, i + stride));
        return (Vector256.FusedMultiplyAdd(Vector256.LoadUnsafe(ref at.Pixels, i), s, u * Vector256.FusedMultiplyAdd(v, even, odd)), summed);
    }

    /// <summary>References to a run of segments' data, the first at lane 0.</summary>
    public readonly ref struct Lanes
    {
        public readonly ref float Pixels;
        public readonly ref float Mean;
        public readonly ref float Reach;
        public readonly ref float Moments;
        public readonly nuint Stride;

        public Lanes(SegmentMoments segments, int first)
        {
            Pixels = ref segments.Pixels[first];
            Mean = ref segments.Mean[first];
            Reach = ref segments.Reach[first];
            Moments = ref segments.Moments[first];
            Stride = (nuint)segments.Stride;
        }
    }
}
