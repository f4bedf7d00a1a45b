using System.Numerics.Tensors;
using System.Runtime.CompilerServices;
using System.Runtime.InteropServices;
using System.Runtime.Intrinsics;

namespace MaskFormer.Engine.Postprocessing;

/// <summary>
/// <c>TensorPrimitives.Sigmoid</c>'s float32 results, bit for bit, with its vector arithmetic written out
/// here: semantic and panoptic inference must give the dense computation's labels exactly, and the dense
/// computation takes the library's sigmoid over whole rows. The library computes 1 / (1 + exp(-x)) with
/// <c>Vector512.Exp</c> (or the 256-bit one), whose float exp widens each lane to float64, reduces by
/// powers of two and evaluates a degree-5 polynomial; the same operations in the same order give the
/// same bits (all 2^32 floats compared through 512-bit lanes on .NET 10.0.12 by a throwaway program; the
/// tests compare 17 million through each width on every run). Written out, the exp stays in registers
/// inside the loop instead of a call per vector whose spills made the library's cost depend on where
/// the stack sat (0.33 or 0.9 ns a value, the same code), and it costs 0.32 ns a value against the
/// library's 0.42 with tiered compilation off, as the server runs.
/// </summary>
/// <remarks>
/// Spans shorter than eight values, and machines without 256-bit vectors, are left to the library itself,
/// which then takes its own paths: for the shortest spans its scalar one (the C runtime's <c>expf</c>,
/// which can differ from its vector lanes in the last bit), as the dense computation's would.
/// </remarks>
internal static class LibrarySigmoid
{
    // exp(x) = 2^n · 2^r: z = x / ln 2 rounded to n by adding 1.5 · 2^52, r = z - n, 2^r by a polynomial
    // (the constants of System.Runtime.Intrinsics' ExpSingle).
    private const double RoundingShift = 6755399441055744;
    private const double InverseLn2 = 1.4426950408889634;
    private const double C1 = 1.0000000754895704;
    private const double C2 = 0.6931472254087585;
    private const double C3 = 0.2402210737432219;
    private const double C4 = 0.05550297297702539;
    private const double C5 = 0.009676036358193323;
    private const double C6 = 0.001341000536524434;

    // |x| above 87 (as bits) can overflow or underflow the float result: then above 88.72284 is +∞ and
    // below -103.97208 is 0, as the library does.
    private const uint LargestPlainMagnitude = 0x42AE0000;
    private const float Overflow = 88.72284f;
    private const float Underflow = -103.97208f;

    // log₂e, and what CannotExceed adds to a score for the float32 roundings (the sigmoid's few ulps, the
    // product's and the bound's).
    private const float Log2E = 1.44269504f;
    private const float ProductSlack = 1.00002f;

    /// <summary>Writes the sigmoid of each of <paramref name="values"/> into <paramref name="sigmoids"/>, as <c>TensorPrimitives.Sigmoid</c>; the spans may be the same.</summary>
    public static void Compute(ReadOnlySpan<float> values, Span<float> sigmoids)
    {
        ArgumentOutOfRangeException.ThrowIfLessThan(sigmoids.Length, values.Length, nameof(sigmoids));
        if (Vector512.IsHardwareAccelerated && values.Length >= Vector512<float>.Count)
        {
            Compute512(values, sigmoids);
        }
        else if (TakesVectorLanes(values.Length))
        {
            Compute256(values, sigmoids);
        }
        else
        {
            TensorPrimitives.Sigmoid(values, sigmoids);
        }
    }

    /// <summary>
    /// Whether <see cref="Compute"/> on <paramref name="length"/> values takes vector lanes, each giving what
    /// <see cref="Of(Vector256{float})"/> gives for its value, rather than the library's own paths: a caller may
    /// then take the sigmoids eight at a time, only where it needs them, with the same bits.
    /// </summary>
    public static bool TakesVectorLanes(int length) => Vector256.IsHardwareAccelerated && length >= Vector256<float>.Count;

    /// <summary>The 512-bit path; <paramref name="values"/> holds at least 16.</summary>
    internal static void Compute512(ReadOnlySpan<float> values, Span<float> sigmoids)
    {
        ref var from = ref MemoryMarshal.GetReference(values);
        ref var to = ref MemoryMarshal.GetReference(sigmoids);
        var (i, length, lanes) = ((nuint)0, (nuint)values.Length, (nuint)Vector512<float>.Count);

        // Where the length is not a multiple of 16, a last vector overlapping the one before covers the
        // rest; it is loaded first, since in place the loop overwrites what it overlaps.
        var last = Vector512.LoadUnsafe(ref from, length - lanes);
        for (; i + lanes <= length; i += lanes)
        {
            Of(Vector512.LoadUnsafe(ref from, i)).StoreUnsafe(ref to, i);
        }

        if (i < length)
        {
            Of(last).StoreUnsafe(ref to, length - lanes);
        }
    }

    /// <summary>The 256-bit path; <paramref name="values"/> holds at least 8.</summary>
    internal static void Compute256(ReadOnlySpan<float> values, Span<float> sigmoids)
    {
        ref var from = ref MemoryMarshal.GetReference(values);
        ref var to = ref MemoryMarshal.GetReference(sigmoids);
        var (i, length, lanes) = ((nuint)0, (nuint)values.Length, (nuint)Vector256<float>.Count);
        var last = Vector256.LoadUnsafe(ref from, length - lanes);
        for (; i + lanes <= length; i += lanes)
        {
            Of(Vector256.LoadUnsafe(ref from, i)).StoreUnsafe(ref to, i);
        }

        if (i < length)
        {
            Of(last).StoreUnsafe(ref to, length - lanes);
        }
    }

    /// <summary>The sigmoid of sixteen lanes.</summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public static Vector512<float> Of(Vector512<float> x)
    {
        var negated = -x;
        var exp = Vector512.Narrow(Exp(Vector512.WidenLower(negated)), Exp(Vector512.WidenUpper(negated)));
        if (Vector512.GreaterThanAny(Vector512.Abs(negated).AsUInt32(), Vector512.Create(LargestPlainMagnitude)))
        {
            exp = Vector512.ConditionalSelect(Vector512.GreaterThan(negated, Vector512.Create(Overflow)), Vector512.Create(float.PositiveInfinity), exp);
            exp = Vector512.AndNot(exp, Vector512.LessThan(negated, Vector512.Create(Underflow)));
        }

        return Vector512<float>.One / (Vector512<float>.One + exp);
    }

    /// <summary>The sigmoid of eight lanes.</summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public static Vector256<float> Of(Vector256<float> x)
    {
        var negated = -x;
        var exp = Vector256.Narrow(Exp(Vector256.WidenLower(negated)), Exp(Vector256.WidenUpper(negated)));
        if (Vector256.GreaterThanAny(Vector256.Abs(negated).AsUInt32(), Vector256.Create(LargestPlainMagnitude)))
        {
            exp = Vector256.ConditionalSelect(Vector256.GreaterThan(negated, Vector256.Create(Overflow)), Vector256.Create(float.PositiveInfinity), exp);
            exp = Vector256.AndNot(exp, Vector256.LessThan(negated, Vector256.Create(Underflow)));
        }

        return Vector256<float>.One / (Vector256<float>.One + exp);
    }

    /// <summary>
    /// All bits set in the lanes where <c>score · Of(x)</c>, rounded to float32, cannot exceed
    /// <paramref name="best"/>, for a few instructions and no sigmoid: with E ≤ e^−x, σ(x) ≤ 1 / (1 + E), so
    /// the product cannot exceed <c>best</c> where <c>score · (1 + 2e-5) ≤ best + best · E</c>. E is
    /// 0.94 · 2^⌊z⌋ · (1 + frac z) for z = −x·log₂e, a float built from z's bits (2^f ≥ 0.943 · (1 + f) on
    /// [0, 1]; the rest of 0.943 covers z's rounding and the truncation of its bits); the 2e-5 covers the
    /// sigmoid's few ulps and the roundings of both sides. For finite <paramref name="x"/> and a score of at
    /// least 0; a NaN best leaves the lane open. Loose by at most 7 % of σ where σ is small.
    /// </summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public static Vector256<int> CannotExceed(Vector256<float> x, Vector256<float> score, Vector256<float> best) =>
        CannotExceedWithSlack(x, WithProductSlack(score), best);

    /// <summary>A score times the slack <see cref="CannotExceedWithSlack"/> takes it with: once per score, not per vector.</summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public static Vector256<float> WithProductSlack(Vector256<float> score) => score * Vector256.Create(ProductSlack);

    /// <summary><see cref="CannotExceed"/> with the score given as <see cref="WithProductSlack"/> gives it.</summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public static Vector256<int> CannotExceedWithSlack(Vector256<float> x, Vector256<float> slackScore, Vector256<float> best)
    {
        // z = −x·log₂e in the exponent field's units (2^23 a unit), in one product: scaling by 2^23 is exact,
        // so these are the bits of z times 2^23. Clamped to ±125 units, the exponent field stays in range and
        // the conversion needs no saturation; clamping from below gives an E no smaller than 2^−125 where
        // e^−x is smaller still: 1 + E is then 1 either way.
        var z = Vector256.Min(Vector256.Max(x * Vector256.Create(-Log2E * 8388608f), Vector256.Create(-125f * 8388608f)), Vector256.Create(125f * 8388608f));
        var bits = Vector256.ConvertToInt32Native(z) + Vector256.Create(127 << 23);
        var exp = bits.AsSingle() * Vector256.Create(0.94f);
        return Vector256.LessThanOrEqual(slackScore, Vector256.FusedMultiplyAdd(best, exp, best)).AsInt32();
    }

    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    private static Vector512<double> Exp(Vector512<double> x)
    {
        var z = x * Vector512.Create(InverseLn2);
        var shifted = z + Vector512.Create(RoundingShift);
        var r = z - (shifted - Vector512.Create(RoundingShift));
        var r2 = r * r;
        var r4 = r2 * r2;
        var poly = Vector512.MultiplyAddEstimate(
            r4,
            Vector512.MultiplyAddEstimate(Vector512.Create(C6), r, Vector512.Create(C5)),
            Vector512.MultiplyAddEstimate(
                r2,
                Vector512.MultiplyAddEstimate(Vector512.Create(C4), r, Vector512.Create(C3)),
                Vector512.MultiplyAddEstimate(Vector512.Create(C2), r, Vector512.Create(C1))));

        // n sits in the low bits of `shifted`; shifted into the exponent field it scales by 2^n.
        return (poly.AsUInt64() + (shifted.AsUInt64() << 52)).AsDouble();
    }

    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    private static Vector256<double> Exp(Vector256<double> x)
    {
        var z = x * Vector256.Create(InverseLn2);
        var shifted = z + Vector256.Create(RoundingShift);
        var r = z - (shifted - Vector256.Create(RoundingShift));
        var r2 = r * r;
        var r4 = r2 * r2;
        var poly = Vector256.MultiplyAddEstimate(
            r4,
            Vector256.MultiplyAddEstimate(Vector256.Create(C6), r, Vector256.Create(C5)),
            Vector256.MultiplyAddEstimate(
                r2,
                Vector256.MultiplyAddEstimate(Vector256.Create(C4), r, Vector256.Create(C3)),
                Vector256.MultiplyAddEstimate(Vector256.Create(C2), r, Vector256.Create(C1))));
        return (poly.AsUInt64() + (shifted.AsUInt64() << 52)).AsDouble();
    }
}
