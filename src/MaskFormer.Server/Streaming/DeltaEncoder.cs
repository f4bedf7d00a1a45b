using Google.Protobuf;
using MaskFormer.Contracts.V1;
using MaskFormer.Engine.Encoding;
using LabelMap = MaskFormer.Engine.Postprocessing.LabelMap;

namespace MaskFormer.Server.Streaming;

/// <summary>A result's maps as pixels, kept so the next result can be sent as what changed.</summary>
internal sealed record DeltaMaps(ushort[]? Semantic, ushort[]? Panoptic);

/// <summary>
/// Rewrites a stream's results as deltas (StreamConfig.delta) against the previous result written to
/// the client, which is the only one the client is sure to hold: the stream's writer calls it in answer
/// order, for results only, so skipped and failed frames never become a base. Holds that base: the
/// complete maps as pixels and the instance masks by track id.
/// </summary>
internal sealed class DeltaEncoder
{
    private StreamSettings? _settings;
    private ulong _frameId;
    private uint _width;
    private uint _height;
    private DeltaMaps? _maps;
    private Dictionary<uint, Rle> _masks = [];
    private int _sinceKeyframe;

    /// <summary>
    /// Turns the complete <paramref name="response"/> into a delta against the previous result, where the
    /// rules allow, and makes it the base of the next.
    /// </summary>
    public void Encode(SegmentResponse response, DeltaMaps? maps, StreamSettings settings)
    {
        if (settings.Delta is not { } delta || maps is null)
        {
            _settings = null;
            return;
        }

        var keyframe = !ReferenceEquals(_settings, settings) || _maps is null || response.Width != _width || response.Height != _height
            || (delta.KeyframeInterval > 0 && _sinceKeyframe >= delta.KeyframeInterval);
        var masks = MasksByTrack(response.Instance);
        if (!keyframe)
        {
            EncodeSemantic(response.Semantic, maps.Semantic);
            EncodePanoptic(response.Panoptic, maps.Panoptic);
            EncodeInstances(response.Instance);
        }

        _sinceKeyframe = keyframe ? 1 : _sinceKeyframe + 1;
        (_settings, _frameId, _width, _height, _maps, _masks) = (settings, response.FrameId, response.Width, response.Height, maps, masks);
    }

    /// <summary>The last result never reached the client: the next one is complete.</summary>
    public void Forget() => _maps = null;

    private void EncodeSemantic(SemanticResult? semantic, ushort[]? pixels)
    {
        if (semantic?.LabelMap is not { } full || pixels is null || _maps?.Semantic is not { } previous)
        {
            return;
        }

        var bits = (int)full.BitsPerPixel;
        var raw = full.Encoding == LabelMapEncoding.Raw;
        var patches = Patches(previous, pixels, bits, change => raw ? LabelMapPngEncoder.EncodeRaw(change, bits) : MapPatches.EncodeChangePng(change, bits));
        if (Smaller(patches, full.Data.Length))
        {
            semantic.LabelMap = null;
            semantic.LabelMapDelta = patches;
        }
    }

    private void EncodePanoptic(PanopticResult? panoptic, ushort[]? pixels)
    {
        if (panoptic is null || pixels is null || _maps?.Panoptic is not { } previous)
        {
            return;
        }

        var patches = Patches(previous, pixels, 8, change => MapPatches.EncodeChangePng(change, 24));
        if (Smaller(patches, panoptic.SegmentIdPng.Length))
        {
            panoptic.SegmentIdPng = ByteString.Empty;
            panoptic.SegmentIdDelta = patches;
        }
    }

    private void EncodeInstances(InstanceResult? instances)
    {
        if (instances is null)
        {
            return;
        }

        foreach (var instance in instances.Instances)
        {
            if (instance.TrackId != 0 && _masks.TryGetValue(instance.TrackId, out var previous) && previous.Equals(instance.Mask))
            {
                instance.Mask = null;
                instance.MaskUnchanged = true;
            }
        }
    }

    private MapDelta Patches(ushort[] previous, ushort[] current, int sampleBits, Func<LabelMap, byte[]> encode)
    {
        var (width, height) = ((int)_width, (int)_height);
        var delta = new MapDelta { BaseFrameId = _frameId };
        foreach (var rectangle in MapPatches.Changed(previous, current, width, height))
        {
            using var change = MapPatches.Change(previous, current, width, rectangle, sampleBits);
            delta.Patches.Add(new MapPatch
            {
                X = (uint)rectangle.X,
                Y = (uint)rectangle.Y,
                Width = (uint)rectangle.Width,
                Height = (uint)rectangle.Height,
                Data = UnsafeByteOperations.UnsafeWrap(encode(change)),
            });
        }

        return delta;
    }

    // A delta that would not be smaller than the complete map is not worth the client's work.
    private static bool Smaller(MapDelta delta, int fullBytes) => delta.CalculateSize() < fullBytes;

    // Only a track id that names one instance can stand for its mask.
    private static Dictionary<uint, Rle> MasksByTrack(InstanceResult? instances)
    {
        var masks = new Dictionary<uint, Rle>();
        if (instances is null)
        {
            return masks;
        }

        var repeated = new HashSet<uint>();
        foreach (var instance in instances.Instances)
        {
            if (instance.TrackId != 0 && instance.Mask is not null && !masks.TryAdd(instance.TrackId, instance.Mask))
            {
                repeated.Add(instance.TrackId);
            }
        }

        foreach (var trackId in repeated)
        {
            masks.Remove(trackId);
        }

        return masks;
    }
}
