using Google.Protobuf;
using MaskFormer.Contracts.V1;
using MaskFormer.Engine.Encoding;
using MaskFormer.Server.Streaming;
using EngineLabelMap = MaskFormer.Engine.Postprocessing.LabelMap;

namespace MaskFormer.Server.Tests;

/// <summary>
/// The keyframe rules of <see cref="DeltaEncoder"/> on hand-made results, including the ones a stream can
/// reach only by timing (an output size the latency contract changed without a new config).
/// </summary>
public sealed class DeltaEncoderTests
{
    private static readonly StreamSettings s_deltas = new() { Delta = new DeltaSettings(0) };

    [Fact]
    public void Encode_SameSettingsAndSize_FirstCompleteThenOnlyTheChangedRectangle()
    {
        var encoder = new DeltaEncoder();
        var (first, firstMaps) = Result(1, 160, 120, changedAt: null, seed: 3);
        var (second, secondMaps) = Result(2, 160, 120, changedAt: (5, 20), seed: 3);

        encoder.Encode(first, firstMaps, s_deltas);
        encoder.Encode(second, secondMaps, s_deltas);

        Assert.NotNull(first.Semantic.LabelMap);
        Assert.False(first.Panoptic.SegmentIdPng.IsEmpty);
        Assert.Null(second.Semantic.LabelMap);
        var patch = Assert.Single(second.Semantic.LabelMapDelta.Patches);
        Assert.Equal((5u, 20u, 1u, 1u), (patch.X, patch.Y, patch.Width, patch.Height));
        Assert.Equal(1ul, second.Semantic.LabelMapDelta.BaseFrameId);
        Assert.True(second.Panoptic.SegmentIdPng.IsEmpty);
        Assert.Single(second.Panoptic.SegmentIdDelta.Patches);
    }

    [Fact]
    public void Encode_SizeChangesWithoutANewConfig_Keyframe()
    {
        var encoder = new DeltaEncoder();
        encoder.Encode(Result(1, 40, 30, null).Response, Result(1, 40, 30, null).Maps, s_deltas);
        var (smaller, maps) = Result(2, 20, 15, null);

        encoder.Encode(smaller, maps, s_deltas);

        Assert.NotNull(smaller.Semantic.LabelMap);
        Assert.Null(smaller.Panoptic.SegmentIdDelta);
    }

    [Fact]
    public void Encode_NewSettingsObject_KeyframeEvenWithTheSameValues()
    {
        var encoder = new DeltaEncoder();
        encoder.Encode(Result(1, 40, 30, null).Response, Result(1, 40, 30, null).Maps, s_deltas);
        var (next, maps) = Result(2, 40, 30, null);

        encoder.Encode(next, maps, s_deltas with { });

        Assert.NotNull(next.Semantic.LabelMap);
    }

    [Fact]
    public void Encode_KeyframeInterval3_EveryThirdResultComplete()
    {
        var encoder = new DeltaEncoder();
        var settings = new StreamSettings { Delta = new DeltaSettings(3) };
        var complete = new List<bool>();
        for (var i = 1; i <= 7; i++)
        {
            var (response, maps) = Result((ulong)i, 40, 30, null);
            encoder.Encode(response, maps, settings);
            complete.Add(response.Semantic.LabelMap is not null);
        }

        Assert.Equal([true, false, false, true, false, false, true], complete);
    }

    [Fact]
    public void Encode_DeltasOff_NothingChangedAndTheNextDeltaStreamStartsWithAKeyframe()
    {
        var encoder = new DeltaEncoder();
        encoder.Encode(Result(1, 40, 30, null).Response, Result(1, 40, 30, null).Maps, s_deltas);
        var (off, _) = Result(2, 40, 30, null);
        var expected = off.Clone();
        encoder.Encode(off, null, new StreamSettings());
        var (on, maps) = Result(3, 40, 30, null);

        encoder.Encode(on, maps, s_deltas);

        Assert.Equal(expected, off);
        Assert.NotNull(on.Semantic.LabelMap);
    }

    [Fact]
    public void Encode_MasksByTrack_OnlyUnchangedMasksOfTracksNamingOneInstance()
    {
        var encoder = new DeltaEncoder();
        var (first, maps) = Result(1, 40, 30, null);
        first.Instance = Instances((7, 1), (8, 1), (8, 2), (0, 3), (9, 4));
        encoder.Encode(first, maps, s_deltas);
        var (second, secondMaps) = Result(2, 40, 30, null);
        second.Instance = Instances((7, 1), (8, 1), (0, 3), (9, 5));

        encoder.Encode(second, secondMaps, s_deltas);

        // Track 7: same mask, sent by id. Track 8 named two instances before, track 0 is untracked, track 9's mask changed.
        Assert.Equal([true, false, false, false], second.Instance.Instances.Select(i => i.MaskUnchanged));
        Assert.Null(second.Instance.Instances[0].Mask);
        Assert.All(second.Instance.Instances.Skip(1), i => Assert.NotNull(i.Mask));
    }

    [Fact]
    public void Encode_EveryPixelChanged_CompleteMapBecauseTheDeltaIsNotSmaller()
    {
        var encoder = new DeltaEncoder();
        var (first, firstMaps) = Result(1, 40, 30, null, seed: 1);
        var (second, secondMaps) = Result(2, 40, 30, null, seed: 2);

        encoder.Encode(first, firstMaps, s_deltas);
        encoder.Encode(second, secondMaps, s_deltas);

        Assert.NotNull(second.Semantic.LabelMap);
        Assert.Null(second.Semantic.LabelMapDelta);
    }

    // A result with a semantic and a panoptic map: stripes (seed 0), or noise (any other seed); one pixel changed if asked.
    private static (SegmentResponse Response, DeltaMaps Maps) Result(ulong frameId, int width, int height, (int X, int Y)? changedAt, int seed = 0)
    {
        var random = new Random(seed);
        var pixels = new ushort[width * height];
        for (var i = 0; i < pixels.Length; i++)
        {
            pixels[i] = seed == 0 ? (ushort)(i / width / 5) : (ushort)random.Next(0, 200);
        }

        if (changedAt is { } at)
        {
            pixels[(at.Y * width) + at.X] = 77;
        }

        using var map = new EngineLabelMap(width, height);
        pixels.CopyTo(map.Values);
        var response = new SegmentResponse
        {
            FrameId = frameId,
            Width = (uint)width,
            Height = (uint)height,
            Semantic = new SemanticResult
            {
                LabelMap = new LabelMap { Encoding = LabelMapEncoding.Png, Width = (uint)width, Height = (uint)height, BitsPerPixel = 8, Data = ByteString.CopyFrom(LabelMapPngEncoder.EncodePng(map, 8)) },
            },
            Panoptic = new PanopticResult { SegmentIdPng = ByteString.CopyFrom(PanopticPngEncoder.Encode(map)) },
        };
        return (response, new DeltaMaps(pixels, (ushort[])pixels.Clone()));
    }

    private static InstanceResult Instances(params (uint TrackId, uint MaskSeed)[] instances)
    {
        var result = new InstanceResult();
        foreach (var (trackId, maskSeed) in instances)
        {
            result.Instances.Add(new Instance { TrackId = trackId, Mask = new Rle { Height = 30, Width = 40, Counts = { maskSeed, 10, 1190 - maskSeed } } });
        }

        return result;
    }
}
