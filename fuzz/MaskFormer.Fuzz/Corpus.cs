using Google.Protobuf;
using MaskFormer.Contracts.V1;
using MaskFormer.Testing;
using SixLabors.ImageSharp.Metadata.Profiles.Exif;

namespace MaskFormer.Fuzz;

/// <summary>The seed corpus: a small image in every format and layout the decoder handles, and requests.</summary>
internal static class Corpus
{
    public static void Write(string directory)
    {
        Directory.CreateDirectory(directory);
        foreach (var format in HostileImages.Formats.Append("tga-rle"))
        {
            Save(directory, $"image-{format}", 0, HostileImages.Encode(format, 8, 6));
        }

        foreach (var format in new[] { "jpeg", "png", "webp-lossless" })
        {
            using var oriented = HostileImages.Pattern(6, 4);
            oriented.Metadata.ExifProfile = new ExifProfile();
            oriented.Metadata.ExifProfile.SetValue(ExifTag.Orientation, (ushort)6);
            Save(directory, $"exif-{format}", 0, HostileImages.Encode(oriented, format));
        }

        Save(directory, "tiff-pages", 0, HostileImages.Tiff((3, 2), (2, 2)));
        Save(directory, "gif-frames", 0, HostileImages.Gif(2, 2, (2, 2), (1, 1)));
        Save(directory, "jpeg-scans", 0, HostileImages.JpegWithScans(2));
        Save(directory, "bmp-header", 0, HostileImages.BmpHeader(2, 2));

        var png = ByteString.CopyFrom(HostileImages.Encode("png", 4, 4));
        Save(directory, "request-encoded", 1, new SegmentRequest
        {
            Image = new Image { Encoded = png },
            Tasks = { SegmentationTask.Panoptic, SegmentationTask.Instance },
            Options = new SegmentationOptions { ObjectMaskThreshold = 0.5f, InstanceTopK = 10, Convention = PostProcessingConvention.Huggingface },
        }.ToByteArray());
        Save(directory, "request-raw", 1, new SegmentRequest
        {
            Model = "tiny-shapes",
            Image = new Image { Raw = new RawFrame { Width = 2, Height = 2, Stride = 8, PixelFormat = PixelFormat.Rgba32, Data = ByteString.CopyFrom(new byte[16]) } },
        }.ToByteArray());
        Save(directory, "stream-config", 1, new SegmentStreamRequest
        {
            Config = new StreamConfig { OverloadPolicy = OverloadPolicy.LatestOnly, MaxInFlight = 2, Tracking = new TrackingOptions { IouThreshold = 0.5f } },
        }.ToByteArray());
    }

    private static void Save(string directory, string name, byte target, byte[] body) =>
        File.WriteAllBytes(Path.Combine(directory, name), [target, .. body]);
}
