using Google.Protobuf;
using MaskFormer.Contracts.V1;
using MaskFormer.Engine;
using MaskFormer.Engine.Encoding;

namespace MaskFormer.Server.Mapping;

/// <summary>Encodes engine results into contract messages.</summary>
internal static class ResponseMapper
{
    public static SegmentResponse ToResponse(SegmentationResult result, SegmentRequest request, TimeProvider time, long startedAt)
    {
        var encodeStarted = time.GetTimestamp();
        var response = new SegmentResponse
        {
            FrameId = request.FrameId,
            Model = result.Model.Name,
            ModelVersion = result.Model.Version,
            Width = (uint)result.Width,
            Height = (uint)result.Height,
            Device = result.Device,
        };

        if (result.Semantic is { } semantic)
        {
            response.Semantic = ToSemantic(semantic, result.Model, request.Options?.LabelMapEncoding ?? LabelMapEncoding.Unspecified);
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

    private static SemanticResult ToSemantic(Engine.Postprocessing.LabelMap map, ServedModel model, LabelMapEncoding encoding)
    {
        var bits = LabelMapPngEncoder.BitsPerPixel(map);
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
        foreach (var label in map.Values)
        {
            if (label < areas.Length)
            {
                areas[label]++;
            }
        }

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
