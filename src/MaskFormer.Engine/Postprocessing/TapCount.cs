namespace MaskFormer.Engine.Postprocessing;

/// <summary>
/// How many of a composed axis's four taps a vector of outputs blends, as a type argument so that
/// each loop is compiled for one (see <see cref="MaskUpsampler.InterpolateTwoTaps"/>).
/// </summary>
internal interface ITapCount
{
    static abstract bool Four { get; }
}

internal readonly struct AllTaps : ITapCount
{
    public static bool Four => true;
}

internal readonly struct FirstTwoTaps : ITapCount
{
    public static bool Four => false;
}
