using System.Runtime.InteropServices;
using Microsoft.Extensions.Options;
using SixLabors.ImageSharp;
using SixLabors.ImageSharp.PixelFormats;

namespace MaskFormer.Engine.Decoding;

/// <summary>
/// Turns encoded images (via ImageSharp) and raw frames into <see cref="RgbImage"/>s, enforcing the
/// configured size limits before any large allocation.
/// </summary>
public sealed class ImageDecoder(IOptions<ImageDecoderOptions> options)
{
    private readonly ImageDecoderOptions _options = options.Value;

    /// <summary>Decodes a PNG, JPEG, BMP, GIF, TGA, TIFF or WebP image.</summary>
    /// <exception cref="SegmentationException">The bytes are not an image this decoder reads, or it is too large.</exception>
    public RgbImage Decode(ReadOnlyMemory<byte> encoded)
    {
        if (encoded.IsEmpty)
        {
            throw SegmentationException.Invalid("image.encoded", "The encoded image is empty.");
        }

        try
        {
            using var probe = AsStream(encoded);
            var info = Image.Identify(probe)
                ?? throw SegmentationException.Invalid("image.encoded", "The encoded image is in no format this server reads (PNG, JPEG, BMP, GIF, TGA, TIFF, WebP).");
            CheckSize(info.Width, info.Height, "image.encoded");

            using var stream = AsStream(encoded);
            using var image = Image.Load<Rgb24>(stream);
            var result = RgbImage.Create(image.Width, image.Height);
            image.ProcessPixelRows(rows =>
            {
                for (var y = 0; y < rows.Height; y++)
                {
                    MemoryMarshal.AsBytes(rows.GetRowSpan(y)).CopyTo(result.Row(y));
                }
            });
            return result;
        }
        catch (Exception ex) when (ex is ImageFormatException or UnknownImageFormatException or InvalidImageContentException or NotSupportedException or InvalidDataException or ArgumentException)
        {
            throw new SegmentationException(SegmentationErrorKind.InvalidArgument, $"The encoded image cannot be decoded: {ex.Message}", ex) { Field = "image.encoded" };
        }
    }

    /// <summary>Converts a raw frame to RGB24, honouring its stride.</summary>
    /// <exception cref="SegmentationException">The layout is invalid or does not match the data.</exception>
    public RgbImage FromRaw(ReadOnlySpan<byte> data, RawFrameLayout layout)
    {
        CheckSize(layout.Width, layout.Height, "image.raw");
        var packedRow = (long)layout.Width * layout.BytesPerPixel;
        var stride = layout.Stride == 0 ? packedRow : layout.Stride;
        if (stride < packedRow)
        {
            throw SegmentationException.Invalid("image.raw.stride", $"The stride {layout.Stride} is smaller than one packed row ({packedRow} bytes).");
        }

        var needed = (stride * (layout.Height - 1)) + packedRow;
        if (data.Length < needed)
        {
            throw SegmentationException.Invalid("image.raw.data", $"The raw frame has {data.Length} bytes; {layout.Width}x{layout.Height} {layout.Format} with stride {stride} needs {needed}.");
        }

        var image = RgbImage.Create(layout.Width, layout.Height);
        for (var y = 0; y < layout.Height; y++)
        {
            var source = data.Slice((int)(stride * y), (int)packedRow);
            ConvertRow(source, image.Row(y), layout.Format);
        }

        return image;
    }

    private static void ConvertRow(ReadOnlySpan<byte> source, Span<byte> target, RawPixelFormat format)
    {
        switch (format)
        {
            case RawPixelFormat.Rgb24:
                source.CopyTo(target);
                break;
            case RawPixelFormat.Bgr24:
                for (var i = 0; i < target.Length; i += 3)
                {
                    target[i] = source[i + 2];
                    target[i + 1] = source[i + 1];
                    target[i + 2] = source[i];
                }

                break;
            case RawPixelFormat.Rgba32:
                for (int i = 0, j = 0; i < target.Length; i += 3, j += 4)
                {
                    target[i] = source[j];
                    target[i + 1] = source[j + 1];
                    target[i + 2] = source[j + 2];
                }

                break;
            case RawPixelFormat.Gray8:
                for (int i = 0, j = 0; i < target.Length; i += 3, j++)
                {
                    target[i] = target[i + 1] = target[i + 2] = source[j];
                }

                break;
            default:
                throw SegmentationException.Invalid("image.raw.pixel_format", $"Pixel format {format} is not supported.");
        }
    }

    private void CheckSize(int width, int height, string field)
    {
        if (width < 1 || height < 1)
        {
            throw SegmentationException.Invalid(field, $"The image is {width}x{height}; both sides must be at least 1 pixel.");
        }

        if (width > _options.MaxDimension || height > _options.MaxDimension || (long)width * height > _options.MaxPixels)
        {
            throw SegmentationException.Invalid(field, $"The image is {width}x{height}; the limit is {_options.MaxDimension} pixels a side and {_options.MaxPixels} pixels in all.");
        }
    }

    private static MemoryStream AsStream(ReadOnlyMemory<byte> memory) =>
        MemoryMarshal.TryGetArray(memory, out var segment)
            ? new MemoryStream(segment.Array!, segment.Offset, segment.Count, writable: false)
            : new MemoryStream(memory.ToArray(), writable: false);
}
