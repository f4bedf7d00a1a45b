using SixLabors.ImageSharp.PixelFormats;

namespace MaskFormer.Cli.Rendering;

/// <summary>A fixed, well-separated colour per label id, so the same class always looks the same.</summary>
internal static class Palette
{
    private static readonly Rgb24[] s_base =
    [
        new(31, 119, 180), new(255, 127, 14), new(44, 160, 44), new(214, 39, 40), new(148, 103, 189),
        new(140, 86, 75), new(227, 119, 194), new(127, 127, 127), new(188, 189, 34), new(23, 190, 207),
        new(174, 199, 232), new(255, 187, 120), new(152, 223, 138), new(255, 152, 150), new(197, 176, 213),
        new(196, 156, 148), new(247, 182, 210), new(199, 199, 199), new(219, 219, 141), new(158, 218, 229),
    ];

    public static Rgb24 ForId(int id)
    {
        if (id < s_base.Length)
        {
            return s_base[id];
        }

        // Beyond the table, golden-ratio hue steps keep neighbouring ids apart.
        var hue = (id * 0.618033988749895) % 1.0;
        return FromHsv(hue, 0.65, 0.95);
    }

    private static Rgb24 FromHsv(double hue, double saturation, double value)
    {
        var sector = (int)(hue * 6);
        var fraction = (hue * 6) - sector;
        var p = value * (1 - saturation);
        var q = value * (1 - (fraction * saturation));
        var t = value * (1 - ((1 - fraction) * saturation));
        var (r, g, b) = (sector % 6) switch
        {
            0 => (value, t, p),
            1 => (q, value, p),
            2 => (p, value, t),
            3 => (p, q, value),
            4 => (t, p, value),
            _ => (value, p, q),
        };
        return new Rgb24((byte)(r * 255), (byte)(g * 255), (byte)(b * 255));
    }
}
