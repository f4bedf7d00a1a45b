using System.Buffers.Binary;
using Google.Protobuf;
using MaskFormer.Contracts.V1;
using MaskFormer.Engine.Encoding;
using SixLabors.ImageSharp.PixelFormats;
using EngineLabelMap = MaskFormer.Engine.Postprocessing.LabelMap;

namespace MaskFormer.Server.Tests;

/// <summary>
/// A client of a delta stream, written from the contract alone: holds the last result's maps as pixels
/// and its masks by track id, and rebuilds each complete result from a delta. The rebuilt maps are
/// encoded again with the server's own encoders, so a rebuilt response can be compared with a complete
/// one byte for byte.
/// </summary>
internal sealed class DeltaRebuilder
{
    private ulong _frameId;
    private LabelMap? _semanticHeader;
    private ushort[]? _semantic;
    private ushort[]? _panoptic;
    private Dictionary<uint, Rle> _masks = [];

    /// <summary>Delta results seen (a map sent as patches or a mask by track id).</summary>
    public int Deltas { get; private set; }

    public SegmentResponse Rebuild(SegmentResponse received)
    {
        var full = received.Clone();
        var (width, height) = ((int)full.Width, (int)full.Height);
        var delta = false;
        if (full.Semantic is { } semantic)
        {
            if (semantic.LabelMapDelta is { } patches)
            {
                Assert.Equal(_frameId, patches.BaseFrameId);
                var header = _semanticHeader!;
                _semantic = Apply(_semantic!, width, patches, data => DecodeLabels(data, header.Encoding, (int)header.BitsPerPixel), header.BitsPerPixel == 16 ? 16 : 8);
                semantic.LabelMapDelta = null;
                semantic.LabelMap = header.Clone();
                semantic.LabelMap.Data = ByteString.CopyFrom(EncodeLabels(_semantic, width, height, header.Encoding, (int)header.BitsPerPixel));
                delta = true;
            }
            else
            {
                _semanticHeader = semantic.LabelMap.Clone();
                _semanticHeader.Data = ByteString.Empty;
                _semantic = DecodeLabels(semantic.LabelMap.Data, semantic.LabelMap.Encoding, (int)semantic.LabelMap.BitsPerPixel).Pixels;
            }
        }

        if (full.Panoptic is { } panoptic)
        {
            if (panoptic.SegmentIdDelta is { } patches)
            {
                Assert.Equal(_frameId, patches.BaseFrameId);
                _panoptic = Apply(_panoptic!, width, patches, DecodeSegmentIds, 8);
                panoptic.SegmentIdDelta = null;
                using var map = ToMap(_panoptic, width, height);
                panoptic.SegmentIdPng = ByteString.CopyFrom(PanopticPngEncoder.Encode(map));
                delta = true;
            }
            else
            {
                _panoptic = DecodeSegmentIds(panoptic.SegmentIdPng).Pixels;
            }
        }

        if (full.Instance is { } instances)
        {
            foreach (var instance in instances.Instances.Where(i => i.MaskUnchanged))
            {
                Assert.Null(instance.Mask);
                instance.Mask = _masks[instance.TrackId].Clone();
                instance.MaskUnchanged = false;
                delta = true;
            }

            var repeated = instances.Instances.GroupBy(i => i.TrackId).Where(g => g.Count() > 1).Select(g => g.Key).ToHashSet();
            _masks = instances.Instances.Where(i => i.TrackId != 0 && !repeated.Contains(i.TrackId)).ToDictionary(i => i.TrackId, i => i.Mask);
        }

        Deltas += delta ? 1 : 0;
        _frameId = full.FrameId;
        return full;
    }

    public static (int Width, int Height, ushort[] Pixels) DecodeLabels(ByteString data, LabelMapEncoding encoding, int bits)
    {
        if (encoding == LabelMapEncoding.Raw)
        {
            var bytes = data.ToByteArray();
            return (0, 0, bits == 8 ? [.. bytes.Select(b => (ushort)b)] : [.. Enumerable.Range(0, bytes.Length / 2).Select(i => BinaryPrimitives.ReadUInt16LittleEndian(bytes.AsSpan(i * 2)))]);
        }

        if (bits == 8)
        {
            using var grey = SixLabors.ImageSharp.Image.Load<L8>(data.Span);
            return (grey.Width, grey.Height, Pixels(grey, p => p.PackedValue));
        }

        using var wide = SixLabors.ImageSharp.Image.Load<L16>(data.Span);
        return (wide.Width, wide.Height, Pixels(wide, p => p.PackedValue));
    }

    public static (int Width, int Height, ushort[] Pixels) DecodeSegmentIds(ByteString png)
    {
        using var image = SixLabors.ImageSharp.Image.Load<Rgb24>(png.Span);
        return (image.Width, image.Height, Pixels(image, p => checked((ushort)(p.R + (256 * p.G) + (65536 * p.B)))));
    }

    // Each patch pixel is added to the old one per sample, modulo the sample's size (bytes of an 8-bit label or an RGB id; 16-bit labels whole).
    private static ushort[] Apply(ushort[] previous, int width, MapDelta delta, Func<ByteString, (int Width, int Height, ushort[] Pixels)> decode, int sampleBits)
    {
        var pixels = (ushort[])previous.Clone();
        foreach (var patch in delta.Patches)
        {
            var (_, _, patchPixels) = decode(patch.Data);
            Assert.Equal((int)(patch.Width * patch.Height), patchPixels.Length);
            for (var y = 0; y < (int)patch.Height; y++)
            {
                for (var x = 0; x < (int)patch.Width; x++)
                {
                    ref var pixel = ref pixels[((patch.Y + y) * width) + patch.X + x];
                    var change = patchPixels[(y * patch.Width) + x];
                    pixel = sampleBits == 16
                        ? (ushort)(pixel + change)
                        : (ushort)(((pixel + change) & 0xFF) | ((((pixel >> 8) + (change >> 8)) & 0xFF) << 8));
                }
            }
        }

        return pixels;
    }

    private static byte[] EncodeLabels(ushort[] pixels, int width, int height, LabelMapEncoding encoding, int bits)
    {
        using var map = ToMap(pixels, width, height);
        return encoding == LabelMapEncoding.Raw ? LabelMapPngEncoder.EncodeRaw(map, bits) : LabelMapPngEncoder.EncodePng(map, bits);
    }

    private static EngineLabelMap ToMap(ushort[] pixels, int width, int height)
    {
        var map = new EngineLabelMap(width, height);
        pixels.CopyTo(map.Values);
        return map;
    }

    private static ushort[] Pixels<TPixel>(SixLabors.ImageSharp.Image<TPixel> image, Func<TPixel, int> value)
        where TPixel : unmanaged, IPixel<TPixel>
    {
        var pixels = new ushort[image.Width * image.Height];
        for (var y = 0; y < image.Height; y++)
        {
            for (var x = 0; x < image.Width; x++)
            {
                pixels[(y * image.Width) + x] = (ushort)value(image[x, y]);
            }
        }

        return pixels;
    }
}
