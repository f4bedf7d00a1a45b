using MaskFormer.Engine.Preprocessing;
using MaskFormer.Engine.Sessions;

namespace MaskFormer.Engine.Tests.Postprocessing.Dense;

/// <summary>
/// Random model outputs for comparing the tiled inference with the dense one: images much larger
/// than the model's grid (big tiles) and smaller (one-pixel tiles), every crop and pad combination,
/// and logits built to sit on decision edges — quantised masks with exact ties, duplicated class rows,
/// values a hair apart, saturated masks.
/// </summary>
internal static class TiledCases
{
    public static TheoryData<int> Seeds => [.. Enumerable.Range(1, 60)];

    public static ResizePlan Plan(Random random)
    {
        var divisor = new[] { 4, 16, 32 }[random.Next(3)];
        var (resizedHeight, resizedWidth) = (random.Next(1, 48), random.Next(1, 48));
        var paddedHeight = (resizedHeight + divisor - 1) / divisor * divisor;
        var paddedWidth = (resizedWidth + divisor - 1) / divisor * divisor;

        // Mostly larger than the grid (the case tiles are for), sometimes smaller or equal.
        int Original(int resized) => random.Next(4) switch
        {
            0 => random.Next(1, resized + 1),
            1 => resized,
            _ => random.Next(resized, Math.Min(320, (resized * 12) + 2)),
        };

        return new ResizePlan(Original(resizedHeight), Original(resizedWidth), resizedHeight, resizedWidth, paddedHeight, paddedWidth);
    }

    /// <summary>
    /// A random output; with <paramref name="subnormalRange"/>, its class and mask logits scaled by 8
    /// (a power of two: every tie and near-tie stays one), so that many class probabilities and
    /// mask sigmoids fall below float32's normal range, or underflow to 0, as a sharp model's do.
    /// </summary>
    public static ModelOutput Output(Random random, int queries, int classesWithNoObject, ResizePlan plan, bool subnormalRange = false)
    {
        var output = Output(random, queries, classesWithNoObject, plan);
        if (subnormalRange)
        {
            foreach (ref var logit in output.ClassLogits)
            {
                logit *= 8;
            }

            foreach (ref var logit in output.MaskLogits)
            {
                logit *= 8;
            }
        }

        return output;
    }

    private static ModelOutput Output(Random random, int queries, int classesWithNoObject, ResizePlan plan)
    {
        var output = new ModelOutput(queries, classesWithNoObject, plan.PaddedHeight / 4, plan.PaddedWidth / 4);
        var classLogits = output.ClassLogits;
        for (var q = 0; q < queries; q++)
        {
            var row = classLogits.Slice(q * classesWithNoObject, classesWithNoObject);
            for (var c = 0; c < row.Length; c++)
            {
                row[c] = (float)((random.NextDouble() * 8) - 4);
            }

            if (random.Next(3) != 0)
            {
                row[random.Next(row.Length)] += (float)(3 + (random.NextDouble() * 8));
            }

            // Two classes with the same logit tie everywhere a query decides.
            if (row.Length > 2 && random.Next(4) == 0)
            {
                row[random.Next(row.Length)] = row[random.Next(row.Length)];
            }
        }

        // Some queries copy another's class row: their classes tie in every score.
        if (queries > 1 && random.Next(3) == 0)
        {
            classLogits.Slice(0, classesWithNoObject).CopyTo(classLogits.Slice(classesWithNoObject * (queries - 1), classesWithNoObject));
        }

        var (height, width) = (output.MaskHeight, output.MaskWidth);
        var style = random.Next(4);
        for (var q = 0; q < queries; q++)
        {
            var plane = output.MaskLogits.Slice(q * height * width, height * width);
            var (top, left) = (random.Next(height), random.Next(width));
            var (bottom, right) = (random.Next(top, height), random.Next(left, width));
            var bias = (random.NextDouble() * 8) - 4;
            for (var y = 0; y < height; y++)
            {
                for (var x = 0; x < width; x++)
                {
                    var inside = y >= top && y <= bottom && x >= left && x <= right;
                    plane[(y * width) + x] = style switch
                    {
                        // Quantised: many exact zeros and exact ties between queries.
                        0 => (float)(random.Next(-2, 3) * 0.5),
                        // A blob with a soft edge.
                        1 => (float)((inside ? 5 : -5) + (random.NextDouble() * 6) - 3),
                        // Saturated far from the edge.
                        2 => (float)((inside ? 30 : -30) + (random.NextDouble() * 4) - 2),
                        _ => (float)(bias + (random.NextDouble() * 12) - 6),
                    };
                }
            }
        }

        // Near-ties: a query a hair away from another one.
        if (queries > 1 && random.Next(2) == 0)
        {
            var (a, b) = (random.Next(queries), random.Next(queries));
            var source = output.MaskLogits.Slice(a * height * width, height * width);
            var target = output.MaskLogits.Slice(b * height * width, height * width);
            for (var i = 0; i < source.Length; i++)
            {
                target[i] = random.Next(2) == 0 ? source[i] : MathF.BitIncrement(source[i]);
            }
        }

        return output;
    }
}
