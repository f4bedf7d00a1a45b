using SixLabors.ImageSharp;
using SixLabors.ImageSharp.PixelFormats;

namespace MaskFormer.Cli.Rendering;

/// <summary>
/// A 5×7 bitmap font for legends. ImageSharp 2's text drawing lives in ImageSharp.Drawing, which is not
/// available under our licence constraints, and a legend needs only capitals, digits and a few signs.
/// </summary>
internal static class BitmapFont
{
    public const int GlyphWidth = 5;
    public const int GlyphHeight = 7;

    private static readonly Dictionary<char, string> s_glyphs = new()
    {
        ['A'] = ".###.#...##...#######...##...##...#",
        ['B'] = "####.#...##...#####.#...##...#####.",
        ['C'] = ".###.#...##....#....#....#...#.###.",
        ['D'] = "####.#...##...##...##...##...#####.",
        ['E'] = "######....#....####.#....#....#####",
        ['F'] = "######....#....####.#....#....#....",
        ['G'] = ".###.#...##....#.####...##...#.####",
        ['H'] = "#...##...##...#######...##...##...#",
        ['I'] = ".###...#....#....#....#....#...###.",
        ['J'] = "..###...#....#....#....#.#..#..##..",
        ['K'] = "#...##..#.#.#..##...#.#..#..#.#...#",
        ['L'] = "#....#....#....#....#....#....#####",
        ['M'] = "#...###.###.#.##.#.##...##...##...#",
        ['N'] = "#...##...###..##.#.##..###...##...#",
        ['O'] = ".###.#...##...##...##...##...#.###.",
        ['P'] = "####.#...##...#####.#....#....#....",
        ['Q'] = ".###.#...##...##...##.#.##..#..##.#",
        ['R'] = "####.#...##...#####.#.#..#..#.#...#",
        ['S'] = ".#####....#.....###.....#....#####.",
        ['T'] = "#####..#....#....#....#....#....#..",
        ['U'] = "#...##...##...##...##...##...#.###.",
        ['V'] = "#...##...##...##...##...#.#.#...#..",
        ['W'] = "#...##...##...##.#.##.#.##.#.#.#.#.",
        ['X'] = "#...##...#.#.#...#...#.#.#...##...#",
        ['Y'] = "#...##...#.#.#...#....#....#....#..",
        ['Z'] = "#####....#...#...#...#...#....#####",
        ['0'] = ".###.#...##..###.#.###..##...#.###.",
        ['1'] = "..#...##....#....#....#....#...###.",
        ['2'] = ".###.#...#....#...#...#...#...#####",
        ['3'] = "####.....#....#.###.....#....#####.",
        ['4'] = "...#...##..#.#.#..#.#####...#....#.",
        ['5'] = "######....####.....#....##...#.###.",
        ['6'] = "..##..#...#....####.#...##...#.###.",
        ['7'] = "#####....#...#...#...#....#....#...",
        ['8'] = ".###.#...##...#.###.#...##...#.###.",
        ['9'] = ".###.#...##...#.####....#...#..##..",
        [' '] = "...................................",
        ['-'] = "...............#####...............",
        ['_'] = "..............................#####",
        ['.'] = "..........................##...##..",
        [':'] = "......##...##........##...##.......",
        ['('] = "...#...#...#....#....#.....#.....#.",
        [')'] = ".#.....#.....#....#....#...#...#...",
        ['%'] = "##...##..#...#...#...#...#..##...##",
        ['/'] = "....#....#...#...#...#...#....#....",
        ['?'] = ".###.#...#....#...#...#.........#..",
        ['#'] = ".#.#..#.#.#####.#.#.#####.#.#..#.#.",
        [','] = ".....................##....#...#...",
        ['+'] = ".......#....#..#####..#....#.......",
    };

    /// <summary>Width in pixels of <paramref name="text"/> at <paramref name="scale"/>.</summary>
    public static int Measure(string text, int scale) => text.Length * (GlyphWidth + 1) * scale;

    /// <summary>Draws <paramref name="text"/> (upper-cased) with its top-left corner at (x, y).</summary>
    public static void Draw(Image<Rgb24> image, string text, int x, int y, int scale, Rgb24 colour)
    {
        image.ProcessPixelRows(rows =>
        {
            var penX = x;
            foreach (var character in text.ToUpperInvariant())
            {
                var glyph = s_glyphs.GetValueOrDefault(character, s_glyphs['?']);
                for (var gy = 0; gy < GlyphHeight; gy++)
                {
                    for (var gx = 0; gx < GlyphWidth; gx++)
                    {
                        if (glyph[(gy * GlyphWidth) + gx] == '#')
                        {
                            FillBlock(rows, penX + (gx * scale), y + (gy * scale), scale, colour);
                        }
                    }
                }

                penX += (GlyphWidth + 1) * scale;
            }
        });
    }

    private static void FillBlock(PixelAccessor<Rgb24> rows, int left, int top, int size, Rgb24 colour)
    {
        for (var yy = Math.Max(0, top); yy < Math.Min(rows.Height, top + size); yy++)
        {
            var row = rows.GetRowSpan(yy);
            for (var xx = Math.Max(0, left); xx < Math.Min(row.Length, left + size); xx++)
            {
                row[xx] = colour;
            }
        }
    }
}
