using System.Diagnostics;
using Google.Protobuf;
using MaskFormer.Contracts.V1;
using MaskFormer.Engine;
using MaskFormer.Engine.Diagnostics;
using MaskFormer.Engine.Encoding;
using MaskFormer.Engine.Tracking;

namespace MaskFormer.Server.Mapping;

/// <summary>Encodes engine results into contract messages.</summary>
internal static class ResponseMapper
{
    // About a megapixel: below it a response's label maps take a millisecond or two to encode.
    private const long ParallelPixels = 1L << 20;

    // About 65,000 runs in all of a response's instance masks: their RLE takes a millisecond or more on one
    // core (a realistic-width model's hundred instances at 512x512 hold about 127,000 runs, 3-4 ms with
    // their strings), split at about a hundred runs a microsecond of scheduling.
    private const long ParallelRuns = 1L << 16;

    private static readonly ParallelOptions s_parallel = new() { MaxDegreeOfParallelism = Environment.ProcessorCount };

    public static SegmentResponse ToResponse(SegmentationResult result, SegmentRequest request, TimeProvider time, long startedAt) =>
        ToResponse(result, request.FrameId, request.Options, null, time, startedAt);

    public static SegmentResponse ToResponse(SegmentationResult result, ulong frameId, SegmentationOptions? options, TrackedFrame? tracks, TimeProvider time, long startedAt)
    {
        var encodeStarted = time.GetTimestamp();
        // Under a call's or a frame's span; the warm-up's results have none and export no trace of their own.
        using var span = Activity.Current is null ? null : MaskFormerTelemetry.ActivitySource.StartActivity("maskformer.encode");
        var response = new SegmentResponse
        {
            FrameId = frameId,
            Model = result.Model.Name,
            ModelVersion = result.Model.Version,
            Width = (uint)result.Width,
            Height = (uint)result.Height,
            Device = result.Device,
        };

        void Semantic()
        {
            if (result.Semantic is { } semantic)
            {
                response.Semantic = ToSemantic(semantic, result.Model, options?.LabelMapEncoding ?? LabelMapEncoding.Unspecified);
            }
        }

        void Instances(bool parallel)
        {
            if (result.Instances is { } instances)
            {
                response.Instance = ToInstances(instances, result.Model.Labels, options?.RleFormat ?? RleFormat.Unspecified, tracks?.InstanceTrackIds, parallel);
            }
        }

        void Panoptic()
        {
            if (result.Panoptic is { } panoptic)
            {
                response.Panoptic = ToPanoptic(panoptic, result.Model, tracks?.PanopticTrackIds);
            }
        }

        // A large image's maps and masks are encoded side by side on the idle cores, and so are many masks
        // of many runs; a small image's few masks on this thread, where splitting would cost more in
        // scheduling than it saves under load.
        if ((long)result.Width * result.Height >= ParallelPixels)
        {
            Parallel.Invoke(s_parallel, Semantic, () => Instances(parallel: true), Panoptic);
        }
        else
        {
            Semantic();
            Instances(parallel: result.Instances is { } instances && EncodesSideBySide(instances));
            Panoptic();
        }

        var timings = result.Timings;
        response.Timings = new Contracts.V1.StageTimings
        {
            DecodeMs = timings.Decode.TotalMilliseconds,
            PreprocessMs = timings.Preprocess.TotalMilliseconds,
            QueueMs = timings.Queue.TotalMilliseconds,
            InferenceMs = timings.Inference.TotalMilliseconds,
            PostprocessMs = timings.Postprocess.TotalMilliseconds,
            EncodeMs = time.GetElapsedTime(encodeStarted).TotalMilliseconds,
            TotalMs = time.GetElapsedTime(startedAt).TotalMilliseconds,
            BatchSize = (uint)timings.BatchSize,
        };
        return response;
    }

    /// <summary>Whether instance masks of an image under a megapixel are encoded side by side: when they hold many runs in all.</summary>
    internal static bool EncodesSideBySide(IReadOnlyList<Engine.Postprocessing.InstanceMask> instances) =>
        instances.Sum(instance => (long)instance.RunCount) >= ParallelRuns;

    /// <summary>Fills in the track ids of a response encoded before its frame's turn to be tracked.</summary>
    public static void SetTrackIds(SegmentResponse response, TrackedFrame tracks)
    {
        if (response.Instance is { } instances)
        {
            for (var i = 0; i < instances.Instances.Count; i++)
            {
                instances.Instances[i].TrackId = (uint)tracks.InstanceTrackIds[i];
                instances.Instances[i].TrackLabelId = (uint)tracks.InstanceTrackClasses[i];
            }
        }

        if (response.Panoptic is { } panoptic)
        {
            for (var i = 0; i < panoptic.Segments.Count; i++)
            {
                panoptic.Segments[i].TrackId = (uint)tracks.PanopticTrackIds[i];
                panoptic.Segments[i].TrackCategoryId = (uint)tracks.PanopticTrackClasses[i];
            }
        }
    }

    internal static InstanceResult ToInstances(IReadOnlyList<Engine.Postprocessing.InstanceMask> instances, IReadOnlyList<Engine.Models.ModelLabel> labels, RleFormat format, IReadOnlyList<int>? trackIds, bool parallel)
    {
        // A query kept under several classes gives instances with one mask: each mask is encoded once,
        // by the first instance of its query, and its counts and string are handed to the others.
        var encodedBy = new int[instances.Count];
        var firstOfQuery = new Dictionary<int, int>();
        for (var i = 0; i < instances.Count; i++)
        {
            var query = instances[i].Query;
            encodedBy[i] = query < 0 || firstOfQuery.TryAdd(query, i) ? i : firstOfQuery[query];
        }

        var masks = new (uint[] Counts, string? Compressed)[instances.Count];
        void EncodeMask(int i)
        {
            if (encodedBy[i] == i)
            {
                var counts = CocoRle.Encode(instances[i]);
                masks[i] = (counts, format != RleFormat.Counts ? CocoRle.Compress(counts) : null);
            }
        }

        if (parallel)
        {
            Parallel.For(0, instances.Count, s_parallel, EncodeMask);
        }
        else
        {
            for (var i = 0; i < instances.Count; i++)
            {
                EncodeMask(i);
            }
        }

        var result = new InstanceResult();
        for (var i = 0; i < instances.Count; i++)
        {
            var instance = instances[i];
            var (counts, compressed) = masks[encodedBy[i]];
            var rle = new Rle { Height = (uint)instance.Height, Width = (uint)instance.Width };
            if (format != RleFormat.Compressed)
            {
                rle.Counts.AddRange(counts);
            }

            if (compressed is not null)
            {
                rle.Compressed = compressed;
            }

            result.Instances.Add(new Instance
            {
                LabelId = (uint)instance.LabelId,
                LabelName = labels[instance.LabelId].Name,
                Score = instance.Score,
                Area = (ulong)instance.Area,
                Bbox = ToBox(instance.Box),
                Mask = rle,
                TrackId = trackIds is null ? 0u : (uint)trackIds[i],
            });
        }

        return result;
    }

    private static PanopticResult ToPanoptic(Engine.Postprocessing.PanopticResult panoptic, ServedModel model, IReadOnlyList<int>? trackIds)
    {
        var result = new PanopticResult { SegmentIdPng = UnsafeByteOperations.UnsafeWrap(PanopticPngEncoder.Encode(panoptic.SegmentIds)) };
        result.Segments.AddRange(panoptic.Segments.Select((segment, i) => new PanopticSegment
        {
            Id = (uint)segment.Id,
            CategoryId = (uint)segment.CategoryId,
            LabelName = model.Labels[segment.CategoryId].Name,
            IsThing = segment.IsThing,
            Score = segment.Score,
            Area = (ulong)segment.Area,
            Bbox = ToBox(segment.Box),
            TrackId = trackIds is null ? 0u : (uint)trackIds[i],
        }));
        return result;
    }

    private static BoundingBox ToBox(Engine.Postprocessing.PixelBox box) =>
        new() { X = (uint)box.X, Y = (uint)box.Y, Width = (uint)box.Width, Height = (uint)box.Height };

    private static SemanticResult ToSemantic(Engine.Postprocessing.LabelMap map, ServedModel model, LabelMapEncoding encoding)
    {
        var bits = LabelMapPngEncoder.BitsPerPixel(model.Labels.Count);
        var raw = encoding == LabelMapEncoding.Raw;
        var result = new SemanticResult
        {
            LabelMap = new Contracts.V1.LabelMap
            {
                Encoding = raw ? LabelMapEncoding.Raw : LabelMapEncoding.Png,
                Width = (uint)map.Width,
                Height = (uint)map.Height,
                BitsPerPixel = (uint)bits,
                Data = UnsafeByteOperations.UnsafeWrap(raw ? LabelMapPngEncoder.EncodeRaw(map, bits) : LabelMapPngEncoder.EncodePng(map, bits)),
            },
        };

        var areas = new long[model.Labels.Count];
        LabelAreas.Count(map, areas);

        for (var id = 0; id < areas.Length; id++)
        {
            if (areas[id] > 0)
            {
                result.Classes.Add(new ClassArea { LabelId = (uint)id, LabelName = model.Labels[id].Name, Area = (ulong)areas[id] });
            }
        }

        return result;
    }
}
