using SixLabors.ImageSharp;
using SixLabors.ImageSharp.Memory;

namespace MaskFormer.Engine.Decoding;

/// <summary>
/// Maps whatever decoding an encoded image threw to INVALID_ARGUMENT naming the image field: the
/// bytes provoked it, so the caller is told, never UNKNOWN or INTERNAL. ImageSharp 2.1 reports corrupt
/// data through its own exceptions and, for some malformed files, through the runtime's
/// (ArgumentException, IndexOutOfRangeException, ...); both mean "this file cannot be decoded".
/// </summary>
internal static class DecodeFailure
{
    public const string Field = "image.encoded";

    private const int MaxDetail = 200;

    /// <summary>True for exceptions decoding may throw on bad input; false for those that must reach the host (cancellation, out of memory).</summary>
    public static bool IsDecodingError(Exception exception) => exception is not (SegmentationException or OperationCanceledException or OutOfMemoryException);

    public static SegmentationException From(Exception exception)
    {
        // ImageSharp wraps a refused allocation in InvalidImageContentException ("possibly degenerate dimensions").
        var message = (exception.InnerException is InvalidMemoryOperationException ? exception.InnerException : exception) switch
        {
            InvalidMemoryOperationException => "The encoded image would need more memory to decode than one image may use.",
            UnknownImageFormatException => "The encoded image is in no format this server reads (PNG, JPEG, BMP, GIF, TGA, TIFF, WebP).",
            NotSupportedException => $"The encoded image uses a feature this server cannot decode: {Detail(exception)}",
            ImageFormatException => $"The encoded image is corrupt: {Detail(exception)}",
            _ => $"The encoded image is corrupt ({exception.GetType().Name} while decoding).",
        };
        return new SegmentationException(SegmentationErrorKind.InvalidArgument, message, exception) { Field = Field };
    }

    private static string Detail(Exception exception) =>
        exception.Message.Length <= MaxDetail ? exception.Message : string.Concat(exception.Message.AsSpan(0, MaxDetail), "...");
}
