using System.Runtime.InteropServices;
using MaskFormer.Engine.Postprocessing;
using SixLabors.ImageSharp;
using SixLabors.ImageSharp.Formats.Png;
using SixLabors.ImageSharp.PixelFormats;

namespace MaskFormer.Engine.Encoding;

/// <summary>
/// Encodes label maps as single-channel PNGs (8-bit grey when every id of the model fits in a byte,
/// 16-bit otherwise) or as raw little-endian integers.
/// </summary>
public static class LabelMapPngEncoder
{
    private static readonly PngEncoder s_gray8 = new() { ColorType = PngColorType.Grayscale, BitDepth = PngBitDepth.Bit8, CompressionLevel = PngCompressionLevel.BestSpeed };
    private static readonly PngEncoder s_gray16 = new() { ColorType = PngColorType.Grayscale, BitDepth = PngBitDepth.Bit16, CompressionLevel = PngCompressionLevel.BestSpeed };

    /// <summary>
    /// Bits per pixel for a model with <paramref name="labelCount"/> labels: 8 up to 256 labels, else 16.
    /// Decided by the model, not the image, so one model's maps always have one depth.
    /// </summary>
    public static int BitsPerPixel(int labelCount) => labelCount <= 256 ? 8 : 16;

    /// <summary>Encodes <paramref name="map"/> as a PNG of <paramref name="bitsPerPixel"/> bits.</summary>
    public static byte[] EncodePng(LabelMap map, int bitsPerPixel)
    {
        using var stream = new MemoryStream();
        if (bitsPerPixel == 8)
        {
            using var image = new Image<L8>(map.Width, map.Height);
            image.ProcessPixelRows(rows =>
            {
                for (var y = 0; y < rows.Height; y++)
                {
                    var source = map.Row(y);
                    var target = MemoryMarshal.AsBytes(rows.GetRowSpan(y));
                    for (var x = 0; x < source.Length; x++)
                    {
                        target[x] = (byte)source[x];
                    }
                }
            });
            image.Save(stream, s_gray8);
        }
        else
        {
            using var image = new Image<L16>(map.Width, map.Height);
            image.ProcessPixelRows(rows =>
            {
                for (var y = 0; y < rows.Height; y++)
                {
                    MemoryMarshal.Cast<ushort, L16>(map.Row(y)).CopyTo(rows.GetRowSpan(y));
                }
            });
            image.Save(stream, s_gray16);
        }

        return stream.ToArray();
    }

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
