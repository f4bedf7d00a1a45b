namespace MaskFormer.Engine.Postprocessing;

/// <summary>
/// The per-pixel fallback works on the undecided pixels of a row gathered into a short buffer. Its
/// float32 results must equal the dense computation's, which ran TensorPrimitives over whole rows;
/// TensorPrimitives (and <see cref="LibrarySigmoid"/>, which leaves it the shortest spans) picks vector
/// or scalar code from the span's length, and its vector and scalar sigmoids may differ in the last bit,
/// so a gathered buffer is padded until its length picks the same code path as the row's.
/// </summary>
internal static class PixelBatch
{
    // The widest vector of floats (Vector512) has 16 lanes.
    private const int WidestVector = 16;

    /// <summary>The buffer length for <paramref name="count"/> gathered pixels of a <paramref name="width"/>-pixel row.</summary>
    public static int PaddedLength(int count, int width) => width < WidestVector ? width : Math.Max(count, WidestVector);
}
