using Google.Protobuf;
using MaskFormer.Contracts.V1;
using MaskFormer.Engine;
using MaskFormer.Engine.Decoding;
using MaskFormer.Engine.Decoding.Containers;
using MaskFormer.Server.Mapping;
using MaskFormer.Server.Streaming;
using Microsoft.Extensions.Options;

namespace MaskFormer.Fuzz;

/// <summary>
/// One fuzzing input, checked against the service's contract: decoding and request validation either
/// succeed within the limits or throw INVALID_ARGUMENT; anything else escapes and AFL++ records a crash.
/// The first byte picks the target: even, the rest is an encoded image; odd, a SegmentRequest (its image
/// decoded too) or, when that does not parse, a SegmentStreamRequest.
/// </summary>
internal static class FuzzTarget
{
    // Smaller limits than the service's keep each execution short; the checks are the same code.
    private static readonly ImageDecoderOptions s_limits = new() { MaxDimension = 2048, MaxPixels = 1_000_000, AllocationLimitMegabytes = 16 };
    private static readonly ImageDecoder s_decoder = new(Options.Create(s_limits));
    private static readonly StreamingOptions s_streaming = new();

    public static void Run(ReadOnlySpan<byte> input)
    {
        if (input.IsEmpty)
        {
            return;
        }

        if (input[0] % 2 == 0)
        {
            Decode(input[1..].ToArray());
            return;
        }

        var message = input[1..].ToArray();
        SegmentRequest request;
        try
        {
            request = SegmentRequest.Parser.ParseFrom(message);
        }
        catch (InvalidProtocolBufferException)
        {
            RunStreamRequest(message);
            return;
        }

        try
        {
            var engineRequest = RequestMapper.ToEngineRequest(request, DateTime.MaxValue);
            var image = engineRequest.Image;
            using var decoded = image.RawLayout is { } layout ? s_decoder.FromRaw(image.Data.Span, layout) : s_decoder.Decode(image.Data);
            CheckWithinLimits(decoded);
        }
        catch (SegmentationException ex)
        {
            ExpectInvalidArgument(ex);
        }
    }

    private static void Decode(byte[] encoded)
    {
        try
        {
            // The container walk on its own first: its bugs must not hide behind the decoder's catch-all.
            ContainerInspector.Inspect(encoded, SizeLimits.From(s_limits));
        }
        catch (SegmentationException ex)
        {
            ExpectInvalidArgument(ex);
        }

        try
        {
            using var decoded = s_decoder.Decode(encoded);
            CheckWithinLimits(decoded);
        }
        catch (SegmentationException ex)
        {
            ExpectInvalidArgument(ex);
        }
    }

    private static void RunStreamRequest(byte[] message)
    {
        try
        {
            var request = SegmentStreamRequest.Parser.ParseFrom(message);
            if (request.Config is { } config)
            {
                _ = StreamSettings.From(config, s_streaming, new StreamSettings());
            }
            else if (request.Frame?.Image is { } image)
            {
                _ = RequestMapper.ToImageSource(image);
            }
        }
        catch (InvalidProtocolBufferException)
        {
        }
        catch (SegmentationException ex)
        {
            ExpectInvalidArgument(ex);
        }
    }

    private static void ExpectInvalidArgument(SegmentationException ex)
    {
        if (ex.Kind != SegmentationErrorKind.InvalidArgument || string.IsNullOrEmpty(ex.Field))
        {
            throw new InvalidOperationException($"Expected INVALID_ARGUMENT naming a field, got {ex.Kind} ({ex.Field}): {ex.Message}", ex);
        }

        Stats.Record(ex.InnerException);
    }

    private static void CheckWithinLimits(RgbImage image)
    {
        if (image.Width > s_limits.MaxDimension || image.Height > s_limits.MaxDimension || (long)image.Width * image.Height > s_limits.MaxPixels)
        {
            throw new InvalidOperationException($"Decoded {image.Width}x{image.Height}, over the limits.");
        }
    }
}
