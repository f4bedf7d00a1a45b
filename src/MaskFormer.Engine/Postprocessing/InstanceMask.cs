namespace MaskFormer.Engine.Postprocessing;

/// <summary>One instance: its class, score, mask and extent. Dispose to return the mask.</summary>
public sealed class InstanceMask(int labelId, float score, long area, PixelBox box, BinaryMask mask) : IDisposable
{
    /// <summary>The label id.</summary>
    public int LabelId { get; } = labelId;

    /// <summary>Class probability × mean mask probability inside the mask.</summary>
    public float Score { get; } = score;

    /// <summary>Pixels in the mask.</summary>
    public long Area { get; } = area;

    /// <summary>The box around the mask.</summary>
    public PixelBox Box { get; } = box;

    /// <summary>The mask (logit &gt; 0) at the original image size.</summary>
    public BinaryMask Mask { get; } = mask;

    /// <inheritdoc />
    public void Dispose() => Mask.Dispose();
}
