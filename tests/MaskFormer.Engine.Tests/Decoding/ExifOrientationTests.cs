using MaskFormer.Engine.Decoding;
using Microsoft.Extensions.Options;
using SixLabors.ImageSharp;
using SixLabors.ImageSharp.Metadata.Profiles.Exif;
using SixLabors.ImageSharp.PixelFormats;
using SixLabors.ImageSharp.Processing;

namespace MaskFormer.Engine.Tests.Decoding;

/// <summary>Images come back as displayed: the EXIF orientation applied as PIL's ImageOps.exif_transpose does.</summary>
public sealed class ExifOrientationTests : IDisposable
{
    private readonly ImageDecoder _decoder = new(Options.Create(new ImageDecoderOptions()));

    public static TheoryData<string, ushort> Cases()
    {
        var data = new TheoryData<string, ushort>();
        foreach (var format in new[] { "jpeg", "png", "webp-lossless" })
        {
            for (ushort orientation = 1; orientation <= 8; orientation++)
            {
                data.Add(format, orientation);
            }
        }

        return data;
    }

    [Theory]
    [MemberData(nameof(Cases))]
    public void Decode_ExifOrientation_GivesTheDisplayedImage(string format, ushort orientation)
    {
        // Blocks of 8x8 in 8 colours, so JPEG's blocks keep the colours clean.
        using var stored = new Image<Rgb24>(48, 32);
        for (var y = 0; y < stored.Height; y++)
        {
            for (var x = 0; x < stored.Width; x++)
            {
                var block = ((x / 8) + (y / 8 * 3)) % 8;
                stored[x, y] = new Rgb24((byte)((block & 1) * 255), (byte)((block >> 1 & 1) * 255), (byte)((block >> 2 & 1) * 255));
            }
        }

        stored.Metadata.ExifProfile = new ExifProfile();
        stored.Metadata.ExifProfile.SetValue(ExifTag.Orientation, orientation);
        var encoded = HostileImages.Encode(stored, format);
        using var expected = stored.Clone(Reference(orientation));

        using var decoded = _decoder.Decode(encoded);

        Assert.Equal((expected.Width, expected.Height), (decoded.Width, decoded.Height));
        var worst = 0;
        for (var y = 0; y < expected.Height; y++)
        {
            for (var x = 0; x < expected.Width; x++)
            {
                var at = ((y * decoded.Width) + x) * 3;
                var pixel = expected[x, y];
                worst = Math.Max(worst, Math.Max(Math.Abs(pixel.R - decoded.Pixels[at]), Math.Max(Math.Abs(pixel.G - decoded.Pixels[at + 1]), Math.Abs(pixel.B - decoded.Pixels[at + 2]))));
            }
        }

        // Wrong placement differs by 255 somewhere; JPEG's ringing at block edges stays far below half that.
        Assert.True(worst < (format == "jpeg" ? 100 : 1), $"{format} orientation {orientation}: largest channel difference {worst}");
    }

    [Fact]
    public void Decode_BrokenExifBlock_DecodesAsStored()
    {
        using var stored = HostileImages.Pattern(16, 8);
        var encoded = HostileImages.Encode(stored, "png");
        using var decoded = _decoder.Decode(WithChunk(encoded, "eXIf", [(byte)'I', (byte)'I', 42, 0, 0xFF, 0xFF, 0xFF, 0x7F]));

        Assert.Equal((16, 8), (decoded.Width, decoded.Height));
    }

    public void Dispose() => _decoder.Dispose();

    /// <summary>PIL's ImageOps.exif_transpose table, written as ImageSharp rotations (clockwise) and flips.</summary>
    private static Action<IImageProcessingContext> Reference(ushort orientation) => orientation switch
    {
        2 => c => c.Flip(FlipMode.Horizontal),
        3 => c => c.Rotate(RotateMode.Rotate180),
        4 => c => c.Flip(FlipMode.Vertical),
        5 => c => c.Rotate(RotateMode.Rotate90).Flip(FlipMode.Horizontal),
        6 => c => c.Rotate(RotateMode.Rotate90),
        7 => c => c.Rotate(RotateMode.Rotate270).Flip(FlipMode.Horizontal),
        8 => c => c.Rotate(RotateMode.Rotate270),
        _ => _ => { }
        ,
    };

    private static byte[] WithChunk(byte[] png, string type, byte[] body)
    {
        var chunk = new byte[12 + body.Length];
        System.Buffers.Binary.BinaryPrimitives.WriteUInt32BigEndian(chunk, (uint)body.Length);
        System.Text.Encoding.ASCII.GetBytes(type).CopyTo(chunk, 4);
        body.CopyTo(chunk, 8);
        System.Buffers.Binary.BinaryPrimitives.WriteUInt32BigEndian(chunk.AsSpan(8 + body.Length), HostileImages.Crc32(chunk.AsSpan(4, 4 + body.Length)));
        return [.. png[..33], .. chunk, .. png[33..]];
    }
}
