using System.Buffers;

namespace MaskFormer.Engine.Preprocessing;

/// <summary>
/// Pillow's two-pass 8-bit resize (<c>ImagingResampleInner</c>): a horizontal pass over the rows the
/// vertical pass needs, rounded to 8 bits, then a vertical pass; an axis whose size does not change
/// is not resampled. Exact to Pillow's uint8 results.
/// </summary>
internal static class PilResize
{
    private const int Rounding = 1 << (PilResampleAxis.PrecisionBits - 1);

    /// <summary>Resizes tightly packed RGB24 <paramref name="source"/> into <paramref name="target"/>.</summary>
    public static void ResizeRgb(ReadOnlySpan<byte> source, int width, int height, Span<byte> target, int targetWidth, int targetHeight)
    {
        ArgumentOutOfRangeException.ThrowIfLessThan(source.Length, width * height * 3);
        ArgumentOutOfRangeException.ThrowIfLessThan(target.Length, targetWidth * targetHeight * 3);
        if (width == targetWidth && height == targetHeight)
        {
            source[..(width * height * 3)].CopyTo(target);
            return;
        }

        using var yAxis = new PilResampleAxis(height, targetHeight);
        if (width == targetWidth)
        {
            Vertical(source, width, yAxis, 0, target);
            return;
        }

        using var xAxis = new PilResampleAxis(width, targetWidth);
        if (height == targetHeight)
        {
            Horizontal(source, width, xAxis, 0, height, target);
            return;
        }

        // Only the rows the vertical pass reads are resampled horizontally, as Pillow does.
        var firstRow = yAxis.Starts[0];
        var lastRow = yAxis.Starts[targetHeight - 1] + yAxis.Counts[targetHeight - 1];
        var rows = lastRow - firstRow;
        var temporary = EngineArrayPool<byte>.Shared.Rent(rows * targetWidth * 3);
        try
        {
            Horizontal(source, width, xAxis, firstRow, rows, temporary);
            Vertical(temporary, targetWidth, yAxis, firstRow, target);
        }
        finally
        {
            EngineArrayPool<byte>.Shared.Return(temporary);
        }
    }

    private static void Horizontal(ReadOnlySpan<byte> source, int width, PilResampleAxis xAxis, int firstRow, int rows, Span<byte> target)
    {
        var targetWidth = xAxis.OutputSize;
        for (var y = 0; y < rows; y++)
        {
            var sourceRow = source.Slice((firstRow + y) * width * 3, width * 3);
            var targetRow = target.Slice(y * targetWidth * 3, targetWidth * 3);
            for (var x = 0; x < targetWidth; x++)
            {
                var start = xAxis.Starts[x] * 3;
                var k = xAxis.Coefficients(x);
                int r = Rounding, g = Rounding, b = Rounding;
                for (var i = 0; i < k.Length; i++)
                {
                    var p = start + (i * 3);
                    r += sourceRow[p] * k[i];
                    g += sourceRow[p + 1] * k[i];
                    b += sourceRow[p + 2] * k[i];
                }

                targetRow[x * 3] = PilResampleAxis.Clip8(r);
                targetRow[(x * 3) + 1] = PilResampleAxis.Clip8(g);
                targetRow[(x * 3) + 2] = PilResampleAxis.Clip8(b);
            }
        }
    }

    // `rowOffset` is the source row that `source`'s first row stands for (the horizontal pass's first row).
    private static void Vertical(ReadOnlySpan<byte> source, int width, PilResampleAxis yAxis, int rowOffset, Span<byte> target)
    {
        var rowBytes = width * 3;
        for (var y = 0; y < yAxis.OutputSize; y++)
        {
            var start = yAxis.Starts[y] - rowOffset;
            var k = yAxis.Coefficients(y);
            var targetRow = target.Slice(y * rowBytes, rowBytes);
            for (var x = 0; x < rowBytes; x++)
            {
                var sum = Rounding;
                for (var i = 0; i < k.Length; i++)
                {
                    sum += source[((start + i) * rowBytes) + x] * k[i];
                }

                targetRow[x] = PilResampleAxis.Clip8(sum);
            }
        }
    }
}
