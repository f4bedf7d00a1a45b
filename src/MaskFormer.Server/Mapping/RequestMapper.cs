using Grpc.Core;
using MaskFormer.Contracts.V1;
using MaskFormer.Engine;
using MaskFormer.Engine.Decoding;
using MaskFormer.Engine.Postprocessing;

namespace MaskFormer.Server.Mapping;

/// <summary>Checks and converts contract messages into engine requests.</summary>
internal static class RequestMapper
{
    public static SegmentationRequest ToEngineRequest(SegmentRequest request, DateTime deadline)
    {
        ValidateOptions(request.Options);
        return new SegmentationRequest
        {
            Model = request.Model,
            ModelVersion = request.ModelVersion,
            Image = ToImageSource(request.Image),
            Tasks = ToTasks(request.Tasks),
            Postprocess = ToPostprocessOptions(request.Options),
            Deadline = deadline == DateTime.MaxValue ? null : new DateTimeOffset(deadline.ToUniversalTime(), TimeSpan.Zero),
        };
    }

    public static SegmentationTasks ToTasks(IEnumerable<SegmentationTask> tasks)
    {
        var result = SegmentationTasks.None;
        foreach (var task in tasks)
        {
            result |= task switch
            {
                SegmentationTask.Semantic => SegmentationTasks.Semantic,
                SegmentationTask.Instance => SegmentationTasks.Instance,
                SegmentationTask.Panoptic => SegmentationTasks.Panoptic,
                _ => throw SegmentationException.Invalid("tasks", $"Task {task} is not a task; use SEGMENTATION_TASK_SEMANTIC, _INSTANCE or _PANOPTIC."),
            };
        }

        return result == SegmentationTasks.None ? SegmentationTasks.Semantic : result;
    }

    public static ImageSource ToImageSource(Image? image)
    {
        switch (image?.SourceCase)
        {
            case Image.SourceOneofCase.Encoded:
                return ImageSource.Encoded(image.Encoded.Memory);
            case Image.SourceOneofCase.Raw:
                var raw = image.Raw;
                var format = raw.PixelFormat switch
                {
                    PixelFormat.Rgb24 => RawPixelFormat.Rgb24,
                    PixelFormat.Bgr24 => RawPixelFormat.Bgr24,
                    PixelFormat.Rgba32 => RawPixelFormat.Rgba32,
                    PixelFormat.Gray8 => RawPixelFormat.Gray8,
                    _ => throw SegmentationException.Invalid("image.raw.pixel_format", $"Pixel format {raw.PixelFormat} is not supported; use RGB24, BGR24, RGBA32 or GRAY8."),
                };
                var invalid = raw.Width is 0 or > int.MaxValue ? "width" : raw.Height is 0 or > int.MaxValue ? "height" : raw.Stride > int.MaxValue ? "stride" : null;
                if (invalid is not null)
                {
                    throw SegmentationException.Invalid($"image.raw.{invalid}", $"A raw frame of {raw.Width}x{raw.Height} (stride {raw.Stride}) is not valid: image.raw.{invalid} is out of range.");
                }

                return ImageSource.Raw(raw.Data.Memory, new RawFrameLayout((int)raw.Width, (int)raw.Height, (int)raw.Stride, format));
            default:
                throw SegmentationException.Invalid("image", "No image was sent: set image.encoded or image.raw.");
        }
    }

    public static PostprocessOptions ToPostprocessOptions(SegmentationOptions? options)
    {
        if (options is null)
        {
            return PostprocessOptions.Detectron2;
        }

        var defaults = options.Convention == PostProcessingConvention.Huggingface ? PostprocessOptions.HuggingFace : PostprocessOptions.Detectron2;
        return defaults with
        {
            ObjectMaskThreshold = options.HasObjectMaskThreshold ? options.ObjectMaskThreshold : defaults.ObjectMaskThreshold,
            OverlapThreshold = options.HasOverlapThreshold ? options.OverlapThreshold : defaults.OverlapThreshold,
            InstanceTopK = options.HasInstanceTopK ? (int)options.InstanceTopK : defaults.InstanceTopK,
            InstanceScoreThreshold = options.HasInstanceScoreThreshold ? options.InstanceScoreThreshold : defaults.InstanceScoreThreshold,
            InstanceThingsOnly = options.HasInstanceThingsOnly ? options.InstanceThingsOnly : defaults.InstanceThingsOnly,
            MaskThreshold = options.HasMaskThreshold ? options.MaskThreshold : defaults.MaskThreshold,
            LabelIdsToFuse = options.LabelIdsToFuse.Count > 0 ? options.LabelIdsToFuse.Select(id => (int)id).ToHashSet() : null,
            Output = ToOutputSize(options.OutputSize),
        };
    }

    public static Engine.Postprocessing.OutputSize ToOutputSize(Contracts.V1.OutputSize? size) => size?.SizeCase switch
    {
        Contracts.V1.OutputSize.SizeOneofCase.ModelInput when size.ModelInput => Engine.Postprocessing.OutputSize.ModelInput,
        Contracts.V1.OutputSize.SizeOneofCase.Exact => Engine.Postprocessing.OutputSize.Exact((int)Math.Min(size.Exact.Width, int.MaxValue), (int)Math.Min(size.Exact.Height, int.MaxValue)),
        Contracts.V1.OutputSize.SizeOneofCase.Scale => Engine.Postprocessing.OutputSize.Scaled(size.Scale),
        _ => Engine.Postprocessing.OutputSize.Original,
    };

    public static void ValidateOptions(SegmentationOptions? options)
    {
        if (options is null)
        {
            return;
        }

        CheckProbability(options.HasObjectMaskThreshold, options.ObjectMaskThreshold, "options.object_mask_threshold");
        CheckProbability(options.HasOverlapThreshold, options.OverlapThreshold, "options.overlap_threshold");
        CheckProbability(options.HasInstanceScoreThreshold, options.InstanceScoreThreshold, "options.instance_score_threshold");
        CheckProbability(options.HasMaskThreshold, options.MaskThreshold, "options.mask_threshold");
        if (options.HasInstanceTopK && options.InstanceTopK is 0 or > 10_000)
        {
            throw SegmentationException.Invalid("options.instance_top_k", $"instance_top_k must be between 1 and 10000 (was {options.InstanceTopK}).");
        }

        // A uint past int's range would become a negative id, which the model's range check then lets by.
        if (options.LabelIdsToFuse.FirstOrDefault(id => id > int.MaxValue) is var huge and > 0)
        {
            throw SegmentationException.Invalid("options.label_ids_to_fuse", $"Label id {huge} is not a label id.");
        }

        if (!Enum.IsDefined(options.RleFormat))
        {
            throw SegmentationException.Invalid("options.rle_format", $"rle_format {options.RleFormat} is not known to this server.");
        }

        if (!Enum.IsDefined(options.Convention))
        {
            throw SegmentationException.Invalid("options.convention", $"convention {options.Convention} is not known to this server.");
        }

        if (options.OutputSize is { SizeCase: Contracts.V1.OutputSize.SizeOneofCase.Exact } exact
            && (exact.Exact.Width is 0 or > Engine.Postprocessing.OutputSize.MaxSide || exact.Exact.Height is 0 or > Engine.Postprocessing.OutputSize.MaxSide))
        {
            throw SegmentationException.Invalid("options.output_size.exact", $"output_size.exact must be between 1x1 and {Engine.Postprocessing.OutputSize.MaxSide}x{Engine.Postprocessing.OutputSize.MaxSide} (was {exact.Exact.Width}x{exact.Exact.Height}).");
        }

        if (options.OutputSize is { SizeCase: Contracts.V1.OutputSize.SizeOneofCase.Scale } scaled && !(scaled.Scale > 0f && scaled.Scale <= 16f))
        {
            throw SegmentationException.Invalid("options.output_size.scale", $"output_size.scale must be above 0 and at most 16 (was {scaled.Scale}).");
        }

        if (!Enum.IsDefined(options.LabelMapEncoding))
        {
            throw SegmentationException.Invalid("options.label_map_encoding", $"Label map encoding {options.LabelMapEncoding} is not known.");
        }
    }

    private static void CheckProbability(bool isSet, float value, string field)
    {
        if (isSet && !(value >= 0f && value <= 1f))
        {
            throw SegmentationException.Invalid(field, $"{field} must be between 0 and 1 (was {value}).");
        }
    }
}
