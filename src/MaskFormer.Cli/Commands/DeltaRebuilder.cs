using System.Buffers.Binary;
using Google.Protobuf;
using MaskFormer.Contracts.V1;
using SixLabors.ImageSharp;
using SixLabors.ImageSharp.Formats.Png;
using SixLabors.ImageSharp.PixelFormats;
using Image = SixLabors.ImageSharp.Image;

namespace MaskFormer.Cli.Commands;

/// <summary>
/// Turns a delta stream's results (StreamConfig.delta) back into complete ones, so everything after it
/// draws them as it would any result. Holds the last result's maps as pixels and its masks by track id;
/// a delta's patches are added to the old pixels per sample, modulo the sample's size (the contract's
/// MapDelta rule). Rebuilt maps are PNG-encoded again (not byte-identical to the server's PNG, but the
/// same pixels). Feed it every result, in order; errors and skipped frames never become a base.
/// </summary>
internal sealed class DeltaRebuilder
{
    private ulong _frameId;
    private LabelMap? _semanticHeader;
    private uint[]? _semantic;
    private uint[]? _panoptic;
    private Dictionary<uint, Rle> _masks = [];

    /// <summary>Results that came (at least partly) as deltas.</summary>
    public int Deltas { get; private set; }

    public SegmentResponse Rebuild(SegmentResponse received)
    {
        var result = received.Clone();
        var width = (int)result.Width;
        var delta = false;
        if (result.Semantic is { } semantic)
        {
            if (semantic.LabelMapDelta is { } patches)
            {
                var header = Base(patches, _semanticHeader);
                var bits = (int)header.BitsPerPixel;
                _semantic = Apply(_semantic!, width, patches, data => DecodeLabels(data, header.Encoding, bits), bits == 16 ? AddWords : AddBytes);
                semantic.LabelMapDelta = null;
                semantic.LabelMap = header.Clone();
                semantic.LabelMap.Data = EncodeLabels(_semantic, width, (int)result.Height, header.Encoding, bits);
                delta = true;
            }
            else
            {
                _semanticHeader = semantic.LabelMap.Clone();
                _semanticHeader.Data = ByteString.Empty;
                _semantic = DecodeLabels(semantic.LabelMap.Data, semantic.LabelMap.Encoding, (int)semantic.LabelMap.BitsPerPixel);
            }
        }

        if (result.Panoptic is { } panoptic)
        {
            if (panoptic.SegmentIdDelta is { } patches)
            {
                Base(patches, _panoptic);
                _panoptic = Apply(_panoptic!, width, patches, DecodeSegmentIds, AddBytes);
                panoptic.SegmentIdDelta = null;
                panoptic.SegmentIdPng = EncodeSegmentIds(_panoptic, width, (int)result.Height);
                delta = true;
            }
            else
            {
                _panoptic = DecodeSegmentIds(panoptic.SegmentIdPng);
            }
        }

        if (result.Instance is { } instances)
        {
            foreach (var instance in instances.Instances.Where(i => i.MaskUnchanged))
            {
                instance.Mask = _masks.TryGetValue(instance.TrackId, out var mask)
                    ? mask.Clone()
                    : throw new InvalidDataException($"Frame {result.FrameId}: an instance refers to track {instance.TrackId}, which the previous result does not have.");
                instance.MaskUnchanged = false;
                delta = true;
            }

            var repeated = instances.Instances.GroupBy(i => i.TrackId).Where(g => g.Count() > 1).Select(g => g.Key).ToHashSet();
            _masks = instances.Instances.Where(i => i.TrackId != 0 && !repeated.Contains(i.TrackId)).ToDictionary(i => i.TrackId, i => i.Mask);
        }

        Deltas += delta ? 1 : 0;
        _frameId = result.FrameId;
        return result;
    }

    private T Base<T>(MapDelta delta, T? previous)
        where T : class =>
        delta.BaseFrameId == _frameId && previous is not null
            ? previous
            : throw new InvalidDataException($"A delta on frame {delta.BaseFrameId}, but the previous result was frame {_frameId}.");

    // 8-bit samples (8-bit labels; the R, G and B bytes of a segment id) each modulo 256.
    private static uint AddBytes(uint old, uint change) =>
        ((old + change) & 0xFF) | ((((old >> 8) + (change >> 8)) & 0xFF) << 8) | ((((old >> 16) + (change >> 16)) & 0xFF) << 16);

    private static uint AddWords(uint old, uint change) => (old + change) & 0xFFFF;

    private static uint[] Apply(uint[] previous, int width, MapDelta delta, Func<ByteString, uint[]> decode, Func<uint, uint, uint> add)
    {
        var pixels = (uint[])previous.Clone();
        foreach (var patch in delta.Patches)
        {
            var change = decode(patch.Data);
            if (change.Length != patch.Width * patch.Height)
            {
                throw new InvalidDataException($"A patch at ({patch.X}, {patch.Y}) has {change.Length} pixels, not {patch.Width}x{patch.Height}.");
            }

            for (var y = 0; y < (int)patch.Height; y++)
            {
                for (var x = 0; x < (int)patch.Width; x++)
                {
                    var at = (int)(((patch.Y + y) * width) + patch.X + x);
                    pixels[at] = add(pixels[at], change[(y * (int)patch.Width) + x]);
                }
            }
        }

        return pixels;
    }

    private static uint[] DecodeLabels(ByteString data, LabelMapEncoding encoding, int bits)
    {
        if (encoding == LabelMapEncoding.Raw)
        {
            var bytes = data.Span;
            var raw = new uint[bits == 8 ? bytes.Length : bytes.Length / 2];
            for (var i = 0; i < raw.Length; i++)
            {
                raw[i] = bits == 8 ? bytes[i] : BinaryPrimitives.ReadUInt16LittleEndian(bytes[(i * 2)..]);
            }

            return raw;
        }

        using var image = Image.Load<L16>(data.Span);
        var labels = new uint[image.Width * image.Height];
        for (var y = 0; y < image.Height; y++)
        {
            for (var x = 0; x < image.Width; x++)
            {
                // ImageSharp scales 8-bit grey up to 16 bits (v * 257).
                var value = image[x, y].PackedValue;
                labels[(y * image.Width) + x] = bits == 8 ? (uint)(value >> 8) : value;
            }
        }

        return labels;
    }

    private static uint[] DecodeSegmentIds(ByteString png)
    {
        using var image = Image.Load<Rgb24>(png.Span);
        var ids = new uint[image.Width * image.Height];
        for (var y = 0; y < image.Height; y++)
        {
            for (var x = 0; x < image.Width; x++)
            {
                var p = image[x, y];
                ids[(y * image.Width) + x] = p.R + (256u * p.G) + (65536u * p.B);
            }
        }

        return ids;
    }

    private static ByteString EncodeLabels(uint[] labels, int width, int height, LabelMapEncoding encoding, int bits)
    {
        if (encoding == LabelMapEncoding.Raw)
        {
            var raw = new byte[labels.Length * (bits / 8)];
            for (var i = 0; i < labels.Length; i++)
            {
                if (bits == 8)
                {
                    raw[i] = (byte)labels[i];
                }
                else
                {
                    BinaryPrimitives.WriteUInt16LittleEndian(raw.AsSpan(i * 2), (ushort)labels[i]);
                }
            }

            return ByteString.CopyFrom(raw);
        }

        using var stream = new MemoryStream();
        if (bits == 8)
        {
            using var grey = Image.LoadPixelData<L8>([.. labels.Select(l => new L8((byte)l))], width, height);
            grey.SaveAsPng(stream, new PngEncoder { ColorType = PngColorType.Grayscale, BitDepth = PngBitDepth.Bit8 });
        }
        else
        {
            using var wide = Image.LoadPixelData<L16>([.. labels.Select(l => new L16((ushort)l))], width, height);
            wide.SaveAsPng(stream, new PngEncoder { ColorType = PngColorType.Grayscale, BitDepth = PngBitDepth.Bit16 });
        }

        return ByteString.CopyFrom(stream.ToArray());
    }

    private static ByteString EncodeSegmentIds(uint[] ids, int width, int height)
    {
        using var stream = new MemoryStream();
        using var image = Image.LoadPixelData<Rgb24>([.. ids.Select(id => new Rgb24((byte)id, (byte)(id >> 8), (byte)(id >> 16)))], width, height);
        image.SaveAsPng(stream, new PngEncoder { ColorType = PngColorType.Rgb, BitDepth = PngBitDepth.Bit8 });
        return ByteString.CopyFrom(stream.ToArray());
    }
}
