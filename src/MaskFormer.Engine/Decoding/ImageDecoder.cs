using System.Runtime.InteropServices;
using MaskFormer.Engine.Decoding.Containers;
using Microsoft.Extensions.Options;
using SixLabors.ImageSharp;
using SixLabors.ImageSharp.Formats.Tga;
using SixLabors.ImageSharp.PixelFormats;

namespace MaskFormer.Engine.Decoding;

/// <summary>
/// Turns encoded images (via ImageSharp) and raw frames into <see cref="RgbImage"/>s in their displayed
/// orientation, enforcing the configured size limits on every declared size before any pixel buffer
/// exists. Decoder memory is bounded and, once no image has been decoded for
/// <see cref="ImageDecoderOptions.IdleTrimAfter"/>, released.
/// </summary>
public sealed class ImageDecoder : IDisposable
{
    private readonly ImageDecoderOptions _options;
    private readonly SizeLimits _limits;
    private readonly Configuration _configuration;
    private readonly ITimer _trim;
    private int _decoding;

    /// <summary>Creates the decoder and its own ImageSharp configuration.</summary>
    public ImageDecoder(IOptions<ImageDecoderOptions> options, TimeProvider? time = null)
    {
        _options = options.Value;
        _limits = SizeLimits.From(_options);
        _configuration = DecoderConfiguration.Create(_options);
        _trim = (time ?? TimeProvider.System).CreateTimer(_ => TrimIfIdle(), null, Timeout.InfiniteTimeSpan, Timeout.InfiniteTimeSpan);
    }

    /// <summary>Decodes a PNG, JPEG, BMP, GIF (first frame), TGA, TIFF (first page) or WebP image, applying its EXIF orientation.</summary>
    /// <exception cref="SegmentationException">The bytes are not an image this decoder reads, are cut short or corrupt, or declare a size over the limits.</exception>
    public RgbImage Decode(ReadOnlyMemory<byte> encoded) => Decode(Probe(ImageSource.Encoded(encoded)));

    /// <summary>
    /// Reads an image's declared size and checks it (and, for an encoded image, its whole container)
    /// against the limits, without allocating any pixel buffer: what admission control weighs a request by
    /// before it decodes.
    /// </summary>
    /// <exception cref="SegmentationException">As <see cref="Decode(ReadOnlyMemory{byte})"/>, for what the header alone shows.</exception>
    public ProbedImage Probe(ImageSource source)
    {
        if (source.RawLayout is { } layout)
        {
            _limits.Check(layout.Width, layout.Height, "image.raw");
            return new ProbedImage(source, layout.Width, layout.Height, ExifOrientation.TopLeft);
        }

        var encoded = source.Data;
        if (encoded.IsEmpty)
        {
            throw SegmentationException.Invalid(DecodeFailure.Field, "The encoded image is empty.");
        }

        Interlocked.Increment(ref _decoding);
        try
        {
            var orientation = ContainerInspector.Inspect(encoded.Span, _limits, out var imageLength);
            encoded = encoded[..imageLength];
            using var probe = AsStream(encoded);
            var info = Image.Identify(_configuration, probe, out var format)
                ?? throw SegmentationException.Invalid(DecodeFailure.Field, "The encoded image is in no format this server reads (PNG, JPEG, BMP, GIF, TGA, TIFF, WebP).");
            _limits.Check(info.Width, info.Height, DecodeFailure.Field);
            if (format is TgaFormat)
            {
                TgaContainer.Inspect(encoded.Span);
            }

            return new ProbedImage(source, info.Width, info.Height, orientation, imageLength);
        }
        catch (Exception ex) when (DecodeFailure.IsDecodingError(ex))
        {
            throw DecodeFailure.From(ex);
        }
        finally
        {
            Idle();
        }
    }

    /// <summary>Decodes an image <see cref="Probe"/> accepted.</summary>
    /// <exception cref="SegmentationException">The data is cut short or corrupt, or does not match its header.</exception>
    public RgbImage Decode(ProbedImage probed)
    {
        ArgumentNullException.ThrowIfNull(probed);
        if (probed.Source.RawLayout is { } layout)
        {
            return FromRaw(probed.Source.Data.Span, layout);
        }

        Interlocked.Increment(ref _decoding);
        try
        {
            using var stream = AsStream(probed.Source.Data[..probed.EncodedLength]);
            using var image = Image.Load<Rgb24>(_configuration, stream);
            if (image.Width != probed.Width || image.Height != probed.Height)
            {
                throw SegmentationException.Invalid(DecodeFailure.Field, $"The encoded image declares {probed.Width}x{probed.Height} but decodes to {image.Width}x{image.Height}.");
            }

            return OrientedCopy.ToRgbImage(image, probed.Orientation);
        }
        catch (Exception ex) when (DecodeFailure.IsDecodingError(ex))
        {
            throw DecodeFailure.From(ex);
        }
        finally
        {
            Idle();
        }
    }

    /// <summary>Converts a raw frame to RGB24, honouring its stride.</summary>
    /// <exception cref="SegmentationException">The layout is invalid or does not match the data.</exception>
    public RgbImage FromRaw(ReadOnlySpan<byte> data, RawFrameLayout layout)
    {
        _limits.Check(layout.Width, layout.Height, "image.raw");
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

    /// <inheritdoc />
    public void Dispose()
    {
        _trim.Dispose();
        _configuration.MemoryAllocator.ReleaseRetainedResources();
    }

    private void Idle()
    {
        if (Interlocked.Decrement(ref _decoding) == 0)
        {
            _trim.Change(_options.IdleTrimAfter, Timeout.InfiniteTimeSpan);
        }
    }

    /// <summary>Releases the decoder's pooled memory now, unless an image is being decoded.</summary>
    public void ReleaseRetainedMemory() => TrimIfIdle();

    // A request that starts meanwhile still works: the pool only hands back buffers nobody holds.
    private void TrimIfIdle()
    {
        if (Volatile.Read(ref _decoding) == 0)
        {
            _configuration.MemoryAllocator.ReleaseRetainedResources();
        }
    }

    private static MemoryStream AsStream(ReadOnlyMemory<byte> memory) =>
        MemoryMarshal.TryGetArray(memory, out var segment)
            ? new MemoryStream(segment.Array!, segment.Offset, segment.Count, writable: false)
            : new MemoryStream(memory.ToArray(), writable: false);
}
