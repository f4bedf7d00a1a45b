namespace MaskFormer.Engine.Postprocessing;

/// <summary>One instance: its class, score, mask and extent. Dispose to return the mask.</summary>
/// <remarks>
/// Instance inference hands over the mask as row runs; the one-byte-a-pixel <see cref="Mask"/> is
/// built from them on first use (it costs the image's area), and encoding and tracking read the runs.
/// </remarks>
public sealed class InstanceMask : IDisposable
{
    private MaskRuns? _runs;
    private BinaryMask? _mask;
    private bool _disposed;

    /// <summary>An instance with a one-byte-a-pixel mask.</summary>
    public InstanceMask(int labelId, float score, long area, PixelBox box, BinaryMask mask)
        : this(labelId, score, area, box, mask.Width, mask.Height)
    {
        _mask = mask;
    }

    internal InstanceMask(int labelId, float score, long area, PixelBox box, MaskRuns runs)
        : this(labelId, score, area, box, runs.Width, runs.Height)
    {
        _runs = runs;
    }

    private InstanceMask(int labelId, float score, long area, PixelBox box, int width, int height)
    {
        LabelId = labelId;
        Score = score;
        Area = area;
        Box = box;
        Width = width;
        Height = height;
    }

    /// <summary>The label id.</summary>
    public int LabelId { get; }

    /// <summary>Class probability × mean mask probability inside the mask.</summary>
    public float Score { get; }

    /// <summary>Pixels in the mask.</summary>
    public long Area { get; }

    /// <summary>The box around the mask.</summary>
    public PixelBox Box { get; }

    /// <summary>The mask's width: the original image's (or the requested output's).</summary>
    public int Width { get; }

    /// <summary>The mask's height.</summary>
    public int Height { get; }

    /// <summary>
    /// The query whose mask this is, or -1 where not known. Inference keeps a query's best classes, so
    /// one query can give several instances, each with the same mask: encoding reads such a mask once,
    /// so instances of one result that name the same query must have the same mask.
    /// </summary>
    public int Query { get; init; } = -1;

    /// <summary>
    /// The mask's runs of set pixels, row by row: what encoding it costs (<see cref="Encoding.CocoRle"/>
    /// reads them), about its boundary rather than its area.
    /// </summary>
    public int RunCount => Runs.RunCount;

    /// <summary>The mask (logit &gt; 0) at the original image size, one byte a pixel.</summary>
    public BinaryMask Mask
    {
        get
        {
            ObjectDisposedException.ThrowIf(_disposed, this);
            if (_mask is { } mask)
            {
                return mask;
            }

            var built = (_runs ?? throw new ObjectDisposedException(nameof(InstanceMask))).ToBinaryMask();
            if (Interlocked.CompareExchange(ref _mask, built, null) is { } other)
            {
                built.Dispose();
                return other;
            }

            return built;
        }
    }

    /// <summary>The mask as row runs (read from <see cref="Mask"/> inside <see cref="Box"/> where the instance came with pixels).</summary>
    internal MaskRuns Runs
    {
        get
        {
            ObjectDisposedException.ThrowIf(_disposed, this);
            if (_runs is { } runs)
            {
                return runs;
            }

            var built = MaskRuns.FromBinary(_mask ?? throw new ObjectDisposedException(nameof(InstanceMask)), Box);
            if (Interlocked.CompareExchange(ref _runs, built, null) is { } other)
            {
                built.Dispose();
                return other;
            }

            return built;
        }
    }

    /// <inheritdoc />
    public void Dispose()
    {
        _disposed = true;
        Interlocked.Exchange(ref _mask, null)?.Dispose();
        Interlocked.Exchange(ref _runs, null)?.Dispose();
    }
}
