using MaskFormer.Engine.Postprocessing;

namespace MaskFormer.Engine.Tracking;

/// <summary>A mask kept only inside its box, so a track costs its object's area, not the frame's.</summary>
internal sealed class CroppedMask
{
    private CroppedMask(PixelBox box, byte[] pixels, long area)
    {
        Box = box;
        Pixels = pixels;
        Area = area;
    }

    public PixelBox Box { get; }

    public byte[] Pixels { get; }

    public long Area { get; }

    public static CroppedMask FromBinary(BinaryMask mask, PixelBox box, long area) =>
        From(box, area, (x, y) => mask.Pixels[(y * mask.Width) + x] != 0);

    public static CroppedMask FromSegment(LabelMap segmentIds, int id, PixelBox box, long area) =>
        From(box, area, (x, y) => segmentIds.Values[(y * segmentIds.Width) + x] == id);

    /// <summary>Intersection over union with <paramref name="other"/>.</summary>
    public double IoU(CroppedMask other)
    {
        var left = Math.Max(Box.X, other.Box.X);
        var top = Math.Max(Box.Y, other.Box.Y);
        var right = Math.Min(Box.X + Box.Width, other.Box.X + other.Box.Width);
        var bottom = Math.Min(Box.Y + Box.Height, other.Box.Y + other.Box.Height);
        long intersection = 0;
        for (var y = top; y < bottom; y++)
        {
            for (var x = left; x < right; x++)
            {
                if (Pixels[((y - Box.Y) * Box.Width) + x - Box.X] != 0 && other.Pixels[((y - other.Box.Y) * other.Box.Width) + x - other.Box.X] != 0)
                {
                    intersection++;
                }
            }
        }

        var union = Area + other.Area - intersection;
        return union > 0 ? intersection / (double)union : 0;
    }

    private static CroppedMask From(PixelBox box, long area, Func<int, int, bool> inside)
    {
        var pixels = new byte[box.Width * box.Height];
        for (var y = 0; y < box.Height; y++)
        {
            for (var x = 0; x < box.Width; x++)
            {
                pixels[(y * box.Width) + x] = inside(box.X + x, box.Y + y) ? (byte)1 : (byte)0;
            }
        }

        return new CroppedMask(box, pixels, area);
    }
}
