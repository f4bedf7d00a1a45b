using System.Runtime.InteropServices;
using System.Runtime.Intrinsics;

namespace MaskFormer.Engine.Postprocessing;

/// <summary>
/// Keeps the inputs of bound arithmetic (sigmoid bounds, class probabilities) clear of subnormal floats.
/// A multiply or add that reads or makes a subnormal costs about a hundred times a normal one on some
/// cores (measured on an Intel Xeon: the realistic-width model's semantic bounds took 85 ms a 512x512
/// image against 30 ms with this floor), and a trained or seeded model's softmax and sigmoids are full of
/// them. Moving a value below <see cref="Tiny"/> to 0 keeps a lower bound a lower bound, and to
/// <see cref="Tiny"/> keeps an upper bound an upper bound; products of two values at or above it stay
/// normal. The exact per-pixel arithmetic never goes through here: it must round as the dense one does.
/// </summary>
internal static class SubnormalFloor
{
    /// <summary>2^-60: the product of two such (2^-120) is above float32's smallest normal, 2^-126.</summary>
    public const float Tiny = 8.6736174e-19f;

    /// <summary>
    /// The float32 sigmoids (<see cref="LibrarySigmoid"/>) of lower and upper bounds on logits, floored for
    /// bound arithmetic: lower ones below <see cref="Tiny"/> to 0, upper ones to <see cref="Tiny"/>. Source and
    /// destination may be the same span.
    /// </summary>
    public static void SigmoidBounds(ReadOnlySpan<float> lowerLogits, Span<float> lower, ReadOnlySpan<float> upperLogits, Span<float> upper)
    {
        LibrarySigmoid.Compute(lowerLogits, lower);
        LibrarySigmoid.Compute(upperLogits, upper);
        Down(lower[..lowerLogits.Length]);
        Up(upper[..upperLogits.Length]);
    }

    /// <summary>Values below <see cref="Tiny"/> become 0 (a NaN stays NaN): for lower bounds.</summary>
    public static void Down(Span<float> values)
    {
        var (tiny, i) = (Vector256.Create(Tiny), 0);
        ref var first = ref MemoryMarshal.GetReference(values);
        for (; i + Vector256<float>.Count <= values.Length; i += Vector256<float>.Count)
        {
            var value = Vector256.LoadUnsafe(ref first, (nuint)i);
            Vector256.AndNot(value, Vector256.LessThan(value, tiny)).StoreUnsafe(ref first, (nuint)i);
        }

        for (; i < values.Length; i++)
        {
            values[i] = values[i] < Tiny ? 0f : values[i];
        }
    }

    /// <summary>Values below <see cref="Tiny"/> become <see cref="Tiny"/> (a NaN stays NaN): for upper bounds.</summary>
    public static void Up(Span<float> values)
    {
        var (tiny, i) = (Vector256.Create(Tiny), 0);
        ref var first = ref MemoryMarshal.GetReference(values);
        for (; i + Vector256<float>.Count <= values.Length; i += Vector256<float>.Count)
        {
            var value = Vector256.LoadUnsafe(ref first, (nuint)i);
            Vector256.ConditionalSelect(Vector256.LessThan(value, tiny), tiny, value).StoreUnsafe(ref first, (nuint)i);
        }

        for (; i < values.Length; i++)
        {
            values[i] = values[i] < Tiny ? Tiny : values[i];
        }
    }
}
