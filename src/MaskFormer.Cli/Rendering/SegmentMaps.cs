using MaskFormer.Contracts.V1;

using SixLabors.ImageSharp.PixelFormats;

namespace MaskFormer.Cli.Rendering;

/// <summary>Turns each kind of result into a <see cref="SegmentMap"/>.</summary>
internal static class SegmentMaps
{
    /// <summary>
    /// Semantic: each connected region of one class is a segment in that class's colour, so a class
    /// present in two places gets a tag in each.
    /// </summary>
    public static SegmentMap FromSemantic(ushort[] labels, int width, int height, Func<int, string> labelName)
    {
        var pixels = new int[labels.Length];
        Array.Fill(pixels, -1);
        var segments = new List<DrawnSegment>();
        var stack = new Stack<int>();
        for (var start = 0; start < labels.Length; start++)
        {
            if (pixels[start] >= 0)
            {
                continue;
            }

            var id = segments.Count;
            var label = labels[start];
            segments.Add(new DrawnSegment(Palette.ForId(label), labelName(label)));
            pixels[start] = id;
            stack.Push(start);
            while (stack.TryPop(out var index))
            {
                var (y, x) = Math.DivRem(index, width);
                Visit(x > 0, index - 1);
                Visit(x < width - 1, index + 1);
                Visit(y > 0, index - width);
                Visit(y < height - 1, index + width);
            }

            void Visit(bool inside, int neighbour)
            {
                if (inside && pixels[neighbour] < 0 && labels[neighbour] == label)
                {
                    pixels[neighbour] = id;
                    stack.Push(neighbour);
                }
            }
        }

        return new SegmentMap(width, height, pixels, segments);
    }

    /// <summary>Panoptic: one segment per segment id, in its class's colour; id 0 is void.</summary>
    public static SegmentMap FromPanoptic(PanopticResult panoptic, Func<PanopticSegment, string> tag)
    {
        using var png = SixLabors.ImageSharp.Image.Load<Rgb24>(panoptic.SegmentIdPng.Span);
        var indexById = new Dictionary<uint, int>();
        var segments = new List<DrawnSegment>();
        foreach (var segment in panoptic.Segments)
        {
            indexById[segment.Id] = segments.Count;
            segments.Add(new DrawnSegment(Palette.ForId((int)segment.CategoryId), tag(segment)));
        }

        var width = png.Width;
        var pixels = new int[width * png.Height];
        png.ProcessPixelRows(rows =>
        {
            for (var y = 0; y < rows.Height; y++)
            {
                var row = rows.GetRowSpan(y);
                for (var x = 0; x < row.Length; x++)
                {
                    var id = row[x].R + (256u * row[x].G) + (65536u * row[x].B);
                    pixels[(y * width) + x] = indexById.GetValueOrDefault(id, -1);
                }
            }
        });
        return new SegmentMap(width, png.Height, pixels, segments);
    }

    /// <summary>
    /// Instances: each in its own colour (from <paramref name="colourIndex"/>), painted lowest score
    /// first so where masks overlap the best-scoring instance shows; pixels of no instance are void.
    /// </summary>
    public static SegmentMap FromInstances(IReadOnlyList<Instance> instances, int width, int height, Func<Instance, int, int> colourIndex, Func<Instance, string> tag)
    {
        var pixels = new int[width * height];
        Array.Fill(pixels, -1);
        var segments = instances.Select((instance, i) => new DrawnSegment(Palette.ForId(colourIndex(instance, i)), tag(instance))).ToArray();
        var order = Enumerable.Range(0, instances.Count).OrderBy(i => instances[i].Score);
        foreach (var i in order)
        {
            Paint(instances[i].Mask, i, pixels, width, height);
        }

        return new SegmentMap(width, height, pixels, segments);
    }

    // COCO RLE runs go down each column, columns left to right, starting with a run of 0s.
    private static void Paint(Rle mask, int value, int[] pixels, int width, int height)
    {
        if (mask.Width != width || mask.Height != height)
        {
            throw new InvalidDataException($"An instance mask is {mask.Width}x{mask.Height}, the image {width}x{height}.");
        }

        long position = 0;
        var on = false;
        foreach (var count in mask.Counts)
        {
            if (on)
            {
                for (var p = position; p < position + count; p++)
                {
                    var (x, y) = Math.DivRem(p, height);
                    pixels[(y * width) + x] = value;
                }
            }

            position += count;
            on = !on;
        }
    }
}
