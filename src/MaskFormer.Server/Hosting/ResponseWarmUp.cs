using Google.Protobuf;
using MaskFormer.Contracts.V1;
using MaskFormer.Engine;
using MaskFormer.Engine.Hosting;
using MaskFormer.Engine.Tracking;
using MaskFormer.Server.Mapping;

namespace MaskFormer.Server.Hosting;

/// <summary>
/// The host's half of the warm-up: each of the engine's warm-up results is mapped to a response with
/// every label-map encoding and RLE format and serialised, alone and inside a stream response, and the
/// request messages are parsed and mapped, so the first real call finds this code compiled.
/// </summary>
internal sealed class ResponseWarmUp(TimeProvider time) : IResultWarmUp
{
    private static readonly SegmentationOptions[] s_options =
    [
        new() { LabelMapEncoding = LabelMapEncoding.Png, RleFormat = RleFormat.Both },
        new() { LabelMapEncoding = LabelMapEncoding.Raw, RleFormat = RleFormat.Counts },
        new() { LabelMapEncoding = LabelMapEncoding.Png, RleFormat = RleFormat.Compressed, Convention = PostProcessingConvention.Huggingface },
    ];

    public void WarmUp(SegmentationResult result)
    {
        foreach (var options in s_options)
        {
            var response = ResponseMapper.ToResponse(result, 1, options, null, time, time.GetTimestamp());
            int[] instances = [.. Enumerable.Repeat(1, response.Instance?.Instances.Count ?? 0)];
            int[] panoptic = [.. Enumerable.Repeat(1, response.Panoptic?.Segments.Count ?? 0)];
            ResponseMapper.SetTrackIds(response, new TrackedFrame(instances, panoptic, instances, panoptic));
            _ = new SegmentStreamResponse { FrameId = 1, Result = response }.ToByteArray();

            var request = new SegmentRequest
            {
                Image = new Image { Encoded = ByteString.CopyFrom(1, 2, 3) },
                Tasks = { SegmentationTask.Semantic, SegmentationTask.Instance, SegmentationTask.Panoptic },
                Options = options,
            };
            _ = RequestMapper.ToEngineRequest(SegmentRequest.Parser.ParseFrom(request.ToByteArray()), DateTime.MaxValue);
            var frame = new SegmentStreamRequest
            {
                Frame = new StreamFrame
                {
                    FrameId = 1,
                    Image = new Image { Raw = new RawFrame { Width = 1, Height = 1, PixelFormat = PixelFormat.Rgb24, Data = ByteString.CopyFrom(1, 2, 3) } },
                },
            };
            _ = SegmentStreamRequest.Parser.ParseFrom(frame.ToByteArray());
            _ = SegmentStreamRequest.Parser.ParseFrom(new SegmentStreamRequest { Config = new StreamConfig { Tasks = { SegmentationTask.Panoptic }, Options = options } }.ToByteArray());
        }
    }
}
