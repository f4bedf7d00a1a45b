using System.Runtime.InteropServices;
using SixLabors.ImageSharp;
using SixLabors.ImageSharp.PixelFormats;

namespace MaskFormer.Engine.Decoding;

/// <summary>
/// Copies a decoded image into an <see cref="RgbImage"/> in its displayed orientation, as PIL's
/// ImageOps.exif_transpose (which HuggingFace's load_image applies) and browsers do.
/// </summary>
internal static class OrientedCopy
{
    public static RgbImage ToRgbImage(Image<Rgb24> image, ExifOrientation orientation)
    {
        var (w, h) = (image.Width, image.Height);
        var transposed = orientation >= ExifOrientation.LeftTop;
        var result = RgbImage.Create(transposed ? h : w, transposed ? w : h);
        try
        {
            image.ProcessPixelRows(rows =>
            {
                var target = result.Pixels;
                for (var y = 0; y < rows.Height; y++)
                {
                    var row = MemoryMarshal.AsBytes(rows.GetRowSpan(y));
                    if (orientation == ExifOrientation.TopLeft)
                    {
                        row.CopyTo(result.Row(y));
                        continue;
                    }

                    // Along a stored row the displayed position moves by a fixed step: one pixel
                    // left or right, or one displayed row up or down when the axes swap.
                    var (start, step) = RowPlacement(orientation, w, h, y);
                    for (int x = 0, at = start; x < w; x++, at += step)
                    {
                        target[at] = row[x * 3];
                        target[at + 1] = row[(x * 3) + 1];
                        target[at + 2] = row[(x * 3) + 2];
                    }
                }
            });
            return result;
        }
        catch
        {
            result.Dispose();
            throw;
        }
    }

    /// <summary>Byte offset of stored pixel (0, y) in the displayed image, and the offset step per stored pixel.</summary>
    private static (int Start, int Step) RowPlacement(ExifOrientation orientation, int w, int h, int y) => orientation switch
    {
        ExifOrientation.TopRight => ((((y * w) + w) - 1) * 3, -3),
        ExifOrientation.BottomRight => (((((h - 1 - y) * w) + w) - 1) * 3, -3),
        ExifOrientation.BottomLeft => ((h - 1 - y) * w * 3, 3),
        ExifOrientation.LeftTop => (y * 3, h * 3),
        ExifOrientation.RightTop => ((h - 1 - y) * 3, h * 3),
        ExifOrientation.RightBottom => ((((w - 1) * h) + (h - 1 - y)) * 3, -h * 3),
        ExifOrientation.LeftBottom => ((((w - 1) * h) + y) * 3, -h * 3),
        _ => (y * w * 3, 3),
    };
}
