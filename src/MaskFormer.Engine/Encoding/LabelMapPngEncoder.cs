using MaskFormer.Engine.Postprocessing;

namespace MaskFormer.Engine.Encoding;

/// <summary>
/// Encodes label maps as single-channel PNGs (8-bit grey when every id of the model fits in a byte,
/// 16-bit otherwise) or as raw little-endian integers.
/// </summary>
public static class LabelMapPngEncoder
{
    /// <summary>
    /// Bits per pixel for a model with <paramref name="labelCount"/> labels: 8 up to 256 labels, else 16.
    /// Decided by the model, not the image, so one model's maps always have one depth.
    /// </summary>
    public static int BitsPerPixel(int labelCount) => labelCount <= 256 ? 8 : 16;

    /// <summary>Encodes <paramref name="map"/> as a PNG of <paramref name="bitsPerPixel"/> bits.</summary>
    public static byte[] EncodePng(LabelMap map, int bitsPerPixel) =>
        LabelPngWriter.Write(map, bitsPerPixel == 8 ? 8 : 16);

    /// <summary>Row-major little-endian ids, 1 or 2 bytes each.</summary>
    public static byte[] EncodeRaw(LabelMap map, int bitsPerPixel)
    {
        var values = map.Values;
        if (bitsPerPixel == 8)
        {
            var bytes = new byte[values.Length];
            for (var i = 0; i < values.Length; i++)
            {
                bytes[i] = (byte)values[i];
            }

            return bytes;
        }

        var wide = new byte[values.Length * 2];
        for (var i = 0; i < values.Length; i++)
        {
            System.Buffers.Binary.BinaryPrimitives.WriteUInt16LittleEndian(wide.AsSpan(i * 2), values[i]);
        }

        return wide;
    }
}
