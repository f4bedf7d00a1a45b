using MaskFormer.Engine.Postprocessing;
using SixLabors.ImageSharp;
using SixLabors.ImageSharp.Formats.Png;
using SixLabors.ImageSharp.PixelFormats;

namespace MaskFormer.Engine.Encoding;

/// <summary>Segment-id maps as RGB PNGs in COCO's panoptic encoding: id = R + 256·G + 65536·B.</summary>
public static class PanopticPngEncoder
{
    private static readonly PngEncoder s_encoder = new() { ColorType = PngColorType.Rgb, BitDepth = PngBitDepth.Bit8, CompressionLevel = PngCompressionLevel.BestSpeed };

    /// <summary>Encodes <paramref name="segmentIds"/>.</summary>
    public static byte[] Encode(LabelMap segmentIds)
    {
        using var image = new Image<Rgb24>(segmentIds.Width, segmentIds.Height);
        image.ProcessPixelRows(rows =>
        {
            for (var y = 0; y < rows.Height; y++)
            {
                var source = segmentIds.Row(y);
                var target = rows.GetRowSpan(y);
                for (var x = 0; x < source.Length; x++)
                {
                    int id = source[x];
                    target[x] = new Rgb24((byte)(id & 0xFF), (byte)((id >> 8) & 0xFF), (byte)((id >> 16) & 0xFF));
                }
            }
        });
        using var stream = new MemoryStream();
        image.Save(stream, s_encoder);
        return stream.ToArray();
    }
}
