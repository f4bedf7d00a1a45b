using System.Runtime.CompilerServices;
using System.Runtime.InteropServices;
using System.Runtime.Intrinsics;

namespace MaskFormer.Engine.Postprocessing;

/// <summary>
/// A float32 sigmoid for sums, within <see cref="MaxError"/> of 1 / (1 + exp(-x)) for every finite x:
/// exp(-x) from a degree-6 polynomial after a two-constant reduction by ln 2 (the Cephes expf scheme),
/// all in float32 lanes. <c>TensorPrimitives.Sigmoid</c> widens every lane to float64 for its exp and
/// costs more (instance inference on the realistic-width model's 512x512 output: 27.5-30.5 against
/// 32.5-33.9 ms); its results are what semantic and panoptic inference compare bit for bit against
/// their reference, so they keep it (<see cref="LibrarySigmoid"/>). An instance score
/// only needs its mean sigmoid within 1e-6, so it takes this one.
/// </summary>
internal static class SumSigmoid
{
    /// <summary>The most any result differs from the exact sigmoid (the tests measure 8.9e-8 over floats in ±100).</summary>
    public const double MaxError = 2e-7;

    // exp(t) = 2^n · exp(r), n = round(t / ln 2), r = t - n·ln 2 with ln 2 split in two so that r stays exact.
    private const float Log2E = 1.44269504088896341f;
    private const float Ln2High = 0.693359375f;
    private const float Ln2Low = -2.12194440e-4f;

    // exp(-x) stays a normal float32 over this range, and so does the sigmoid (1 / (1 + e^87) is
    // 1.6e-38: at e^88 it would be subnormal, which Intel cores compute a hundred times slower); beyond
    // it the sigmoid is 0 or 1 to well within MaxError.
    private const float LowestExponent = -87f;
    private const float HighestExponent = 87f;

    private const float P0 = 1.9875691500e-4f;
    private const float P1 = 1.3981999507e-3f;
    private const float P2 = 8.3334519073e-3f;
    private const float P3 = 4.1665795894e-2f;
    private const float P4 = 1.6666665459e-1f;
    private const float P5 = 5.0000001201e-1f;

    /// <summary>
    /// Writes the sigmoid of each of <paramref name="values"/> (finite) into <paramref name="sigmoids"/>;
    /// the spans may be the same.
    /// </summary>
    public static void Compute(ReadOnlySpan<float> values, Span<float> sigmoids)
    {
        ArgumentOutOfRangeException.ThrowIfLessThan(sigmoids.Length, values.Length, nameof(sigmoids));
        ref var from = ref MemoryMarshal.GetReference(values);
        ref var to = ref MemoryMarshal.GetReference(sigmoids);
        var (i, length) = ((nuint)0, (nuint)values.Length);

        // Sixteen lanes where the core has them: the same float32 operations per lane, so the same
        // results at about half the time (measured on this project's AVX-512 host).
        if (Vector512.IsHardwareAccelerated)
        {
            for (; i + (nuint)Vector512<float>.Count <= length; i += (nuint)Vector512<float>.Count)
            {
                Vector(Vector512.LoadUnsafe(ref from, i)).StoreUnsafe(ref to, i);
            }
        }

        if (Vector256.IsHardwareAccelerated)
        {
            for (; i + (nuint)Vector256<float>.Count <= length; i += (nuint)Vector256<float>.Count)
            {
                Vector(Vector256.LoadUnsafe(ref from, i)).StoreUnsafe(ref to, i);
            }
        }

        for (; i < length; i++)
        {
            Unsafe.Add(ref to, i) = Scalar(Unsafe.Add(ref from, i));
        }
    }

    /// <summary>The sigmoid of one value, as each lane of <see cref="Compute"/> computes it.</summary>
    public static float Scalar(float x)
    {
        var t = Math.Clamp(-x, LowestExponent, HighestExponent);
        var n = MathF.Round(t * Log2E);
        var r = MathF.FusedMultiplyAdd(n, -Ln2Low, MathF.FusedMultiplyAdd(n, -Ln2High, t));
        var p = MathF.FusedMultiplyAdd(P0, r, P1);
        p = MathF.FusedMultiplyAdd(p, r, P2);
        p = MathF.FusedMultiplyAdd(p, r, P3);
        p = MathF.FusedMultiplyAdd(p, r, P4);
        p = MathF.FusedMultiplyAdd(p, r, P5);
        p = MathF.FusedMultiplyAdd(p, r * r, r + 1f);
        var scale = BitConverter.Int32BitsToSingle(((int)n + 127) << 23);
        return 1f / (1f + (p * scale));
    }

    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    internal static Vector256<float> Vector(Vector256<float> x)
    {
        var t = Vector256.Min(Vector256.Max(-x, Vector256.Create(LowestExponent)), Vector256.Create(HighestExponent));
        var n = Vector256.Round(t * Vector256.Create(Log2E));
        var r = Vector256.FusedMultiplyAdd(n, Vector256.Create(-Ln2Low), Vector256.FusedMultiplyAdd(n, Vector256.Create(-Ln2High), t));
        var p = Vector256.FusedMultiplyAdd(Vector256.Create(P0), r, Vector256.Create(P1));
        p = Vector256.FusedMultiplyAdd(p, r, Vector256.Create(P2));
        p = Vector256.FusedMultiplyAdd(p, r, Vector256.Create(P3));
        p = Vector256.FusedMultiplyAdd(p, r, Vector256.Create(P4));
        p = Vector256.FusedMultiplyAdd(p, r, Vector256.Create(P5));
        p = Vector256.FusedMultiplyAdd(p, r * r, r + Vector256<float>.One);
        var scale = Vector256.ShiftLeft(Vector256.ConvertToInt32(n) + Vector256.Create(127), 23).AsSingle();
        return Vector256<float>.One / (Vector256<float>.One + (p * scale));
    }

    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    internal static Vector512<float> Vector(Vector512<float> x)
    {
        var t = Vector512.Min(Vector512.Max(-x, Vector512.Create(LowestExponent)), Vector512.Create(HighestExponent));
        var n = Vector512.Round(t * Vector512.Create(Log2E));
        var r = Vector512.FusedMultiplyAdd(n, Vector512.Create(-Ln2Low), Vector512.FusedMultiplyAdd(n, Vector512.Create(-Ln2High), t));
        var p = Vector512.FusedMultiplyAdd(Vector512.Create(P0), r, Vector512.Create(P1));
        p = Vector512.FusedMultiplyAdd(p, r, Vector512.Create(P2));
        p = Vector512.FusedMultiplyAdd(p, r, Vector512.Create(P3));
        p = Vector512.FusedMultiplyAdd(p, r, Vector512.Create(P4));
        p = Vector512.FusedMultiplyAdd(p, r, Vector512.Create(P5));
        p = Vector512.FusedMultiplyAdd(p, r * r, r + Vector512<float>.One);
        var scale = Vector512.ShiftLeft(Vector512.ConvertToInt32(n) + Vector512.Create(127), 23).AsSingle();
        return Vector512<float>.One / (Vector512<float>.One + (p * scale));
    }
}
