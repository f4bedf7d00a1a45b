using System.Numerics;
using System.Runtime.CompilerServices;
using System.Runtime.InteropServices;
using MaskFormer.Engine.Decoding;
using MaskFormer.Engine.Models;

namespace MaskFormer.Engine.Preprocessing;

/// <summary>
/// Resizes (bilinear: PyTorch's half-pixel rule without antialiasing, or Pillow's antialiased 8-bit
/// resize, as the config says), rescales, normalises and zero-pads an image into the model's CHW
/// float32 input, as HuggingFace's MaskFormer image processor and detectron2 do. Zero padding is
/// applied after normalisation, as both references do.
/// </summary>
public sealed class ImagePreprocessor(PreprocessorConfig config)
{
    private readonly float[] _scale = [.. Enumerable.Range(0, 3).Select(c => config.RescaleFactor / config.ImageStd[c])];
    private readonly float[] _offset = [.. Enumerable.Range(0, 3).Select(c => -config.ImageMean[c] / config.ImageStd[c])];

    /// <summary>The configuration this preprocessor follows.</summary>
    public PreprocessorConfig Config => config;

    /// <summary>Plans the sizes for an image.</summary>
    public ResizePlan Plan(int height, int width) => ResizePlan.For(height, width, config);

    /// <summary>Builds the model input for <paramref name="image"/>.</summary>
    public ModelInput Process(RgbImage image)
    {
        var input = new ModelInput(Plan(image.Height, image.Width));
        try
        {
            Fill(image, input.Plan, input.Tensor);
            return input;
        }
        catch
        {
            input.Dispose();
            throw;
        }
    }

    internal void Fill(RgbImage image, ResizePlan plan, Span<float> tensor)
    {
        ClearPadding(plan, tensor);
        if (config.ResizeMethod == ResizeMethod.Pil)
        {
            FillPil(image, plan, tensor);
            return;
        }

        using var xAxis = new BilinearAxis(image.Width, plan.ResizedWidth);
        using var yAxis = new BilinearAxis(image.Height, plan.ResizedHeight);
        var planeSize = plan.PaddedHeight * plan.PaddedWidth;
        var width = plan.ResizedWidth;

        // Separable: each source row is blended along x once (per channel) and kept while output rows
        // still read it, then rows are blended along y. The arithmetic per pixel is the one of the
        // direct formula (top and bottom along x, then y; then scale and offset), in the same order.
        var rows = EngineArrayPool<float>.Shared.Rent(2 * 3 * width);
        try
        {
            // Where in rows the upper and lower source rows are, and which source rows they hold.
            var (upper, lower) = (0, 3 * width);
            var (upperRow, lowerRow) = (-1, -1);
            for (var y = 0; y < plan.ResizedHeight; y++)
            {
                var y0 = yAxis.Lower[y];
                var wy = yAxis.Weights[y];
                var y1 = wy > 0f ? y0 + 1 : y0;
                if (upperRow != y0)
                {
                    if (lowerRow == y0)
                    {
                        (upper, lower) = (lower, upper);
                        (upperRow, lowerRow) = (lowerRow, upperRow);
                    }
                    else
                    {
                        BlendRow(image, y0, xAxis, rows.AsSpan(upper, 3 * width));
                        upperRow = y0;
                    }
                }

                if (lowerRow != y1 && y1 != y0)
                {
                    BlendRow(image, y1, xAxis, rows.AsSpan(lower, 3 * width));
                    lowerRow = y1;
                }

                var bottom = y1 == y0 ? upper : lower;
                for (var c = 0; c < 3; c++)
                {
                    var target = tensor.Slice((c * planeSize) + (y * plan.PaddedWidth), width);
                    BlendColumns(rows.AsSpan(upper + (c * width), width), rows.AsSpan(bottom + (c * width), width), wy, _scale[c], _offset[c], target);
                }
            }
        }
        finally
        {
            EngineArrayPool<float>.Shared.Return(rows);
        }
    }

    // Zeroes only what the resized image does not cover: the columns right of it and the rows below it.
    private static void ClearPadding(ResizePlan plan, Span<float> tensor)
    {
        var planeSize = plan.PaddedHeight * plan.PaddedWidth;
        for (var c = 0; c < 3; c++)
        {
            var plane = tensor.Slice(c * planeSize, planeSize);
            if (plan.ResizedWidth < plan.PaddedWidth)
            {
                for (var y = 0; y < plan.ResizedHeight; y++)
                {
                    plane.Slice((y * plan.PaddedWidth) + plan.ResizedWidth, plan.PaddedWidth - plan.ResizedWidth).Clear();
                }
            }

            plane[(plan.ResizedHeight * plan.PaddedWidth)..].Clear();
        }
    }

    // One source row blended along x, channel-planar: target[c * width + x].
    private static void BlendRow(RgbImage image, int sourceRow, BilinearAxis xAxis, Span<float> target)
    {
        var rowBytes = image.Width * 3;
        ref var row = ref MemoryMarshal.GetReference(image.ReadOnlyPixels.Slice(sourceRow * rowBytes, rowBytes));
        var lower = xAxis.Lower;
        var weights = xAxis.Weights;
        var width = xAxis.OutputSize;
        var red = target[..width];
        var green = target.Slice(width, width);
        var blue = target.Slice(2 * width, width);
        for (var x = 0; x < width; x++)
        {
            // BilinearAxis keeps lower within the row, and lower + 1 too whenever its weight is above 0.
            var i0 = lower[x] * 3;
            var wx = weights[x];
            var i1 = wx > 0f ? i0 + 3 : i0;
            red[x] = Unsafe.Add(ref row, i0) + (wx * (Unsafe.Add(ref row, i1) - Unsafe.Add(ref row, i0)));
            green[x] = Unsafe.Add(ref row, i0 + 1) + (wx * (Unsafe.Add(ref row, i1 + 1) - Unsafe.Add(ref row, i0 + 1)));
            blue[x] = Unsafe.Add(ref row, i0 + 2) + (wx * (Unsafe.Add(ref row, i1 + 2) - Unsafe.Add(ref row, i0 + 2)));
        }
    }

    // value = top + wy * (bottom - top); target = value * scale + offset: separate multiplies and adds
    // (no fused multiply-add), so vector and scalar lanes round as the per-pixel formula does.
    private static void BlendColumns(ReadOnlySpan<float> top, ReadOnlySpan<float> bottom, float wy, float scale, float offset, Span<float> target)
    {
        var x = 0;
        if (Vector.IsHardwareAccelerated)
        {
            var (weight, scales, offsets) = (new Vector<float>(wy), new Vector<float>(scale), new Vector<float>(offset));
            for (; x <= target.Length - Vector<float>.Count; x += Vector<float>.Count)
            {
                var t = new Vector<float>(top[x..]);
                var value = t + (weight * (new Vector<float>(bottom[x..]) - t));
                ((value * scales) + offsets).CopyTo(target[x..]);
            }
        }

        for (; x < target.Length; x++)
        {
            var value = top[x] + (wy * (bottom[x] - top[x]));
            target[x] = (value * scale) + offset;
        }
    }

    private void FillPil(RgbImage image, ResizePlan plan, Span<float> tensor)
    {
        var resizedBytes = plan.ResizedWidth * plan.ResizedHeight * 3;
        var resized = EngineArrayPool<byte>.Shared.Rent(resizedBytes);
        try
        {
            PilResize.ResizeRgb(image.ReadOnlyPixels, image.Width, image.Height, resized, plan.ResizedWidth, plan.ResizedHeight);
            var planeSize = plan.PaddedHeight * plan.PaddedWidth;
            for (var y = 0; y < plan.ResizedHeight; y++)
            {
                var row = resized.AsSpan(y * plan.ResizedWidth * 3, plan.ResizedWidth * 3);
                for (var c = 0; c < 3; c++)
                {
                    var target = tensor.Slice((c * planeSize) + (y * plan.PaddedWidth), plan.ResizedWidth);
                    var scale = _scale[c];
                    var offset = _offset[c];
                    for (var x = 0; x < target.Length; x++)
                    {
                        target[x] = (row[(x * 3) + c] * scale) + offset;
                    }
                }
            }
        }
        finally
        {
            EngineArrayPool<byte>.Shared.Return(resized);
        }
    }
}
