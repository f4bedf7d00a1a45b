using MaskFormer.Engine.Postprocessing;

namespace MaskFormer.Engine.Encoding;

/// <summary>Segment-id maps as RGB PNGs in COCO's panoptic encoding: id = R + 256·G + 65536·B.</summary>
public static class PanopticPngEncoder
{
    /// <summary>Encodes <paramref name="segmentIds"/>.</summary>
    public static byte[] Encode(LabelMap segmentIds) => LabelPngWriter.Write(segmentIds, 24);
}
