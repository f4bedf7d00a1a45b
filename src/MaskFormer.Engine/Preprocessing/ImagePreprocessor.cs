using System.Buffers;
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
        tensor.Clear();
        if (config.ResizeMethod == ResizeMethod.Pil)
        {
            FillPil(image, plan, tensor);
            return;
        }

        using var xAxis = new BilinearAxis(image.Width, plan.ResizedWidth);
        using var yAxis = new BilinearAxis(image.Height, plan.ResizedHeight);
        var planeSize = plan.PaddedHeight * plan.PaddedWidth;
        var pixels = image.ReadOnlyPixels;
        var rowBytes = image.Width * 3;
        var xLower = xAxis.Lower;
        var xWeight = xAxis.Weights;

        for (var y = 0; y < plan.ResizedHeight; y++)
        {
            var y0 = yAxis.Lower[y];
            var wy = yAxis.Weights[y];
            var y1 = wy > 0f ? y0 + 1 : y0;
            var row0 = pixels.Slice(y0 * rowBytes, rowBytes);
            var row1 = pixels.Slice(y1 * rowBytes, rowBytes);
            for (var c = 0; c < 3; c++)
            {
                var target = tensor.Slice((c * planeSize) + (y * plan.PaddedWidth), plan.ResizedWidth);
                var scale = _scale[c];
                var offset = _offset[c];
                for (var x = 0; x < target.Length; x++)
                {
                    var x0 = xLower[x];
                    var wx = xWeight[x];
                    var i0 = (x0 * 3) + c;
                    var i1 = wx > 0f ? i0 + 3 : i0;
                    var top = row0[i0] + (wx * (row0[i1] - row0[i0]));
                    var bottom = row1[i0] + (wx * (row1[i1] - row1[i0]));
                    var value = top + (wy * (bottom - top));
                    target[x] = (value * scale) + offset;
                }
            }
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
