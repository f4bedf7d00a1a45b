using System.Buffers.Binary;
using Google.Protobuf;
using MaskFormer.Contracts.V1;
using SixLabors.ImageSharp;
using SixLabors.ImageSharp.Formats.Png;
using SixLabors.ImageSharp.PixelFormats;
using Image = SixLabors.ImageSharp.Image;

namespace MaskFormer.Examples;

/// <summary>
/// Turns a delta stream's results (StreamConfig.delta) back into complete frames, as the Python example's
/// delta.py: a result may send its semantic label map (semantic.label_map_delta) and its panoptic segment-id
/// map (panoptic.segment_id_delta) as the rectangles that changed since the previous result, each patch
/// holding, per sample, what to add to the previous map modulo the sample's size; and an instance whose mask
/// did not change as mask_unchanged with its track_id. Feed it every result of one stream, in order; errors
/// and skipped frames do not change what it holds.
/// </summary>
internal sealed class DeltaRebuilder
{
    private ulong? _frameId;
    private LabelMap? _semanticHeader;
    private uint[]? _semantic;
    private uint[]? _panoptic;
    private Dictionary<uint, Rle> _masks = [];

    /// <summary>Results that came (at least partly) as deltas.</summary>
    public int Deltas { get; private set; }

    /// <summary>A complete result (from a stream without deltas) as a <see cref="Frame"/>.</summary>
    public static Frame Decode(SegmentResponse result) => new DeltaRebuilder().Apply(result);

    /// <summary>Rebuilds one result; <see cref="InvalidDataException"/> when it refers to what this stream has not sent.</summary>
    public Frame Apply(SegmentResponse result)
    {
        var width = (int)result.Width;
        var delta = false;
        uint[]? semantic = null;
        if (result.Semantic is { } s)
        {
            if (s.LabelMapDelta is { } patches)
            {
                var bits = (int)Base(patches, _semanticHeader).BitsPerPixel;
                semantic = Patch(Base(patches, _semantic), width, patches, data => DecodeLabels(data, _semanticHeader!.Encoding, bits), bits == 16 ? AddWords : AddBytes);
                delta = true;
            }
            else
            {
                _semanticHeader = s.LabelMap.Clone();
                _semanticHeader.Data = ByteString.Empty;
                semantic = DecodeLabels(s.LabelMap.Data, s.LabelMap.Encoding, (int)s.LabelMap.BitsPerPixel);
            }
        }

        uint[]? panoptic = null;
        if (result.Panoptic is { } p)
        {
            delta |= p.SegmentIdDelta is not null;
            panoptic = p.SegmentIdDelta is { } patches
                ? Patch(Base(patches, _panoptic), width, patches, DecodeSegmentIds, AddBytes)
                : DecodeSegmentIds(p.SegmentIdPng);
        }

        var instances = new List<Instance>();
        foreach (var instance in result.Instance?.Instances ?? [])
        {
            if (!instance.MaskUnchanged)
            {
                instances.Add(instance);
                continue;
            }

            var rebuilt = instance.Clone();
            rebuilt.Mask = _masks.TryGetValue(instance.TrackId, out var mask)
                ? mask.Clone()
                : throw new InvalidDataException($"frame {result.FrameId}: an instance refers to track {instance.TrackId}, which the previous result does not have");
            rebuilt.MaskUnchanged = false;
            instances.Add(rebuilt);
            delta = true;
        }

        // Masks by track id for the next result, of the track ids that name one instance.
        _masks = instances.Where(i => i.TrackId != 0).GroupBy(i => i.TrackId).Where(g => g.Count() == 1).ToDictionary(g => g.Key, g => g.Single().Mask);
        (_semantic, _panoptic, _frameId) = (semantic, panoptic, result.FrameId);
        Deltas += delta ? 1 : 0;
        return new Frame(result, semantic, panoptic, instances);
    }

    private T Base<T>(MapDelta delta, T? previous)
        where T : class =>
        delta.BaseFrameId == _frameId && previous is not null
            ? previous
            : throw new InvalidDataException($"a delta on frame {delta.BaseFrameId}, but the previous result was frame {_frameId?.ToString(System.Globalization.CultureInfo.InvariantCulture) ?? "none"}");

    // 8-bit samples (8-bit labels; the R, G and B bytes of a segment id), each modulo 256.
    private static uint AddBytes(uint old, uint change) =>
        ((old + change) & 0xFF) | ((((old >> 8) + (change >> 8)) & 0xFF) << 8) | ((((old >> 16) + (change >> 16)) & 0xFF) << 16);

    private static uint AddWords(uint old, uint change) => (old + change) & 0xFFFF;

    private static uint[] Patch(uint[] previous, int width, MapDelta delta, Func<ByteString, uint[]> decode, Func<uint, uint, uint> add)
    {
        var pixels = (uint[])previous.Clone();
        foreach (var patch in delta.Patches)
        {
            var change = decode(patch.Data);
            if (change.Length != patch.Width * patch.Height)
            {
                throw new InvalidDataException($"a patch at ({patch.X}, {patch.Y}) has {change.Length} pixels, not {patch.Width}x{patch.Height}");
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

        // ImageSharp reads 8-bit grey into 16 bits as v * 257.
        using var image = Image.Load<L16>(data.Span);
        var labels = new uint[image.Width * image.Height];
        image.ProcessPixelRows(rows =>
        {
            for (var y = 0; y < rows.Height; y++)
            {
                var row = rows.GetRowSpan(y);
                for (var x = 0; x < row.Length; x++)
                {
                    labels[(y * rows.Width) + x] = bits == 8 ? (uint)(row[x].PackedValue >> 8) : row[x].PackedValue;
                }
            }
        });
        return labels;
    }

    // COCO's panoptic PNG: id = R + 256 G + 256² B.
    private static uint[] DecodeSegmentIds(ByteString png)
    {
        using var image = Image.Load<Rgb24>(png.Span);
        var ids = new uint[image.Width * image.Height];
        image.ProcessPixelRows(rows =>
        {
            for (var y = 0; y < rows.Height; y++)
            {
                var row = rows.GetRowSpan(y);
                for (var x = 0; x < row.Length; x++)
                {
                    ids[(y * rows.Width) + x] = row[x].R + (256u * row[x].G) + (65536u * row[x].B);
                }
            }
        });
        return ids;
    }

    /// <summary>The maps as PNG again (the same pixels, not the server's bytes), for <see cref="Frame.ToResponse"/>.</summary>
    internal static ByteString EncodeLabels(uint[] labels, int width, int height, int bits)
    {
        using var stream = new MemoryStream();
        if (bits == 16)
        {
            using var wide = Image.LoadPixelData<L16>([.. labels.Select(l => new L16((ushort)l))], width, height);
            wide.SaveAsPng(stream, new PngEncoder { ColorType = PngColorType.Grayscale, BitDepth = PngBitDepth.Bit16 });
        }
        else
        {
            using var grey = Image.LoadPixelData<L8>([.. labels.Select(l => new L8((byte)l))], width, height);
            grey.SaveAsPng(stream, new PngEncoder { ColorType = PngColorType.Grayscale, BitDepth = PngBitDepth.Bit8 });
        }

        return ByteString.CopyFrom(stream.ToArray());
    }

    internal static ByteString EncodeSegmentIds(uint[] ids, int width, int height)
    {
        using var stream = new MemoryStream();
        using var image = Image.LoadPixelData<Rgb24>([.. ids.Select(id => new Rgb24((byte)id, (byte)(id >> 8), (byte)(id >> 16)))], width, height);
        image.SaveAsPng(stream, new PngEncoder { ColorType = PngColorType.Rgb, BitDepth = PngBitDepth.Bit8 });
        return ByteString.CopyFrom(stream.ToArray());
    }
}

/// <summary>A complete result as pixels and masks; <see cref="Result"/> is the response as received.</summary>
internal sealed record Frame(SegmentResponse Result, uint[]? Semantic, uint[]? Panoptic, IReadOnlyList<Instance> Instances)
{
    /// <summary>The ways two frames differ (none when equal): size, every pixel of both maps, every instance with its mask, the classes and segments.</summary>
    public IReadOnlyList<string> Differences(Frame other)
    {
        var differences = new List<string>();
        Check("size", (Result.Width, Result.Height) == (other.Result.Width, other.Result.Height));
        Check("semantic map", Same(Semantic, other.Semantic));
        Check("panoptic map", Same(Panoptic, other.Panoptic));
        Check("instances", Instances.SequenceEqual(other.Instances));
        Check("semantic classes", Equals(Result.Semantic?.Classes, other.Result.Semantic?.Classes));
        Check("panoptic segments", Equals(Result.Panoptic?.Segments, other.Result.Panoptic?.Segments));
        return differences;

        void Check(string what, bool same)
        {
            if (!same)
            {
                differences.Add(what);
            }
        }

        static bool Same(uint[]? a, uint[]? b) => a is null ? b is null : b is not null && a.AsSpan().SequenceEqual(b);
    }

    /// <summary>The complete response: the maps PNG-encoded again, every mask in place.</summary>
    public SegmentResponse ToResponse()
    {
        var response = Result.Clone();
        var (width, height) = ((int)Result.Width, (int)Result.Height);
        if (response.Semantic is { LabelMapDelta: not null } semantic)
        {
            semantic.LabelMapDelta = null;
            semantic.LabelMap ??= new LabelMap { Encoding = LabelMapEncoding.Png, Width = Result.Width, Height = Result.Height, BitsPerPixel = 8 };
            semantic.LabelMap.Encoding = LabelMapEncoding.Png;
            semantic.LabelMap.Data = DeltaRebuilder.EncodeLabels(Semantic!, width, height, (int)Math.Max(8, semantic.LabelMap.BitsPerPixel));
        }

        if (response.Panoptic is { SegmentIdDelta: not null } panoptic)
        {
            panoptic.SegmentIdDelta = null;
            panoptic.SegmentIdPng = DeltaRebuilder.EncodeSegmentIds(Panoptic!, width, height);
        }

        if (response.Instance is { } instance)
        {
            instance.Instances.Clear();
            instance.Instances.AddRange(Instances);
        }

        return response;
    }
}
