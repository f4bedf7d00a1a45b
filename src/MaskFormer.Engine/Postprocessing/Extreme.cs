using System.Runtime.Intrinsics;

namespace MaskFormer.Engine.Postprocessing;

/// <summary>
/// The smaller or larger of two values, as a type argument so that each loop is compiled for one.
/// The IEEE kinds are <c>MathF.Min</c> and <c>Max</c> (NaN wins, −0 below +0); the native kinds are
/// one instruction each and agree with them on values that are not NaN, up to the sign of a zero.
/// </summary>
internal interface IExtreme
{
    static abstract float Of(float a, float b);

    static abstract Vector256<float> Of(Vector256<float> a, Vector256<float> b);
}

internal readonly struct IeeeMin : IExtreme
{
    public static float Of(float a, float b) => MathF.Min(a, b);

    public static Vector256<float> Of(Vector256<float> a, Vector256<float> b) => Vector256.Min(a, b);
}

internal readonly struct IeeeMax : IExtreme
{
    public static float Of(float a, float b) => MathF.Max(a, b);

    public static Vector256<float> Of(Vector256<float> a, Vector256<float> b) => Vector256.Max(a, b);
}

internal readonly struct NativeMin : IExtreme
{
    public static float Of(float a, float b) => float.MinNative(a, b);

    public static Vector256<float> Of(Vector256<float> a, Vector256<float> b) => Vector256.MinNative(a, b);
}

internal readonly struct NativeMax : IExtreme
{
    public static float Of(float a, float b) => float.MaxNative(a, b);

    public static Vector256<float> Of(Vector256<float> a, Vector256<float> b) => Vector256.MaxNative(a, b);
}
