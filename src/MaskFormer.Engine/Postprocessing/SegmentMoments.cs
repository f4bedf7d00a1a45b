namespace MaskFormer.Engine.Postprocessing;

/// <summary>
/// The output pixels of an upsampling axis grouped by the resized-grid point below them: the pixels of
/// segment r blend grid points r and r + 1 at their second-resize weights t, so along a row their logits
/// are <c>g[r] + t·(g[r + 1] − g[r])</c>, affine in t. Per segment this keeps the pixels' count, the mean
/// t̄ of their weights, how far any weight lies from it, and the central moments
/// <c>Σ (t − t̄)^k / k!</c>: what a Taylor series of the sigmoid about the segment's mean logit needs to
/// sum the segment's sigmoids without visiting its pixels (<see cref="SegmentSigmoidSum"/>).
/// </summary>
internal sealed class SegmentMoments
{
    /// <summary>The highest moment kept: the Taylor series' degree.</summary>
    public const int Order = 8;

    // The widest vector's lanes: the per-segment arrays run on past the last segment by at least this
    // many empty ones (no pixels, no moments), so a vector of lanes may start at any segment.
    private const int Lanes = 16;

    // Below this many output pixels per grid point (in halves) a segment's sum costs about what its pixels
    // do. Measured on the realistic-width model's instances, in process, alternating with the per-pixel
    // sums: 1920 wide (3.75 a point) 196 ms against 218-241; 1536 (3.0) 140-150 against 143-146;
    // 1280 (2.5) 119 against 106-113; 1024 (2.0) 144-149 against 125-150.
    private const int MinimumHalfPixels = 7;

    private SegmentMoments(ComposedAxis axis)
    {
        var count = Count = axis.ResizedSize;
        var stride = Stride = (((count + Lanes - 1) / Lanes) + 1) * Lanes;
        First = new int[count];
        Pixels = new float[stride];
        Mean = new float[stride];
        Reach = new float[stride];
        Moments = new float[Order * stride];
        var (lower, weights) = (axis.ResizedLower, axis.ResizedWeights);
        var x = 0;
        Span<double> moments = stackalloc double[Order];
        for (var r = 0; r < count; r++)
        {
            // ResizedLower never decreases, so segment r is one run of outputs (empty where none maps to r).
            while (x < axis.OutputSize && lower[x] < r)
            {
                x++;
            }

            var first = First[r] = x;
            var (sum, end) = (0.0, x);
            for (; end < axis.OutputSize && lower[end] == r; end++)
            {
                sum += weights[end];
            }

            var pixels = end - first;
            Pixels[r] = pixels;
            var mean = Mean[r] = pixels > 0 ? (float)(sum / pixels) : 0f;
            var reach = 0.0;
            moments.Clear();
            for (var i = first; i < end; i++)
            {
                var offset = (double)weights[i] - mean;
                reach = Math.Max(reach, Math.Abs(offset));
                var power = 1.0;
                for (var k = 0; k < Order; k++)
                {
                    power *= offset;
                    moments[k] += power;
                }
            }

            // Rounded up, so that a reach that passes the series' test is never short of the true one; a
            // segment whose weights are all equal (at an axis's ends) keeps 0, not the least subnormal, whose
            // product with every step Intel cores would compute a hundred times slower.
            Reach[r] = reach > 0 ? MathF.BitIncrement((float)reach) : 0f;
            var factorial = 1.0;
            for (var k = 0; k < Order; k++)
            {
                factorial *= k + 1;
                Moments[(k * stride) + r] = (float)(moments[k] / factorial);
            }
        }
    }

    /// <summary>Segments: one per resized-grid point.</summary>
    public int Count { get; }

    /// <summary>Length of each per-segment array (<see cref="Moments"/>: of each moment's), empty segments past <see cref="Count"/>.</summary>
    public int Stride { get; }

    /// <summary>Segment r's first output pixel.</summary>
    public int[] First { get; }

    /// <summary>Segment r's output pixels, as a float for the sums.</summary>
    public float[] Pixels { get; }

    /// <summary>Segment r's mean second-resize weight t̄.</summary>
    public float[] Mean { get; }

    /// <summary>The farthest any of segment r's weights lies from t̄, rounded up.</summary>
    public float[] Reach { get; }

    /// <summary>Moment k (1 to <see cref="Order"/>) of segment r, <c>Σ (t − t̄)^k / k!</c>, at [(k − 1) · Stride + r].</summary>
    public float[] Moments { get; }

    /// <summary>The segments of <paramref name="axis"/>, or null where it upsamples too little for them to pay.</summary>
    public static SegmentMoments? For(ComposedAxis axis) =>
        axis.ResizedSize > 0 && 2 * axis.OutputSize >= MinimumHalfPixels * axis.ResizedSize ? new SegmentMoments(axis) : null;
}
