using MaskFormer.Contracts.V1;
using MaskFormer.Engine;
using MaskFormer.Engine.Models;

namespace MaskFormer.Server.Mapping;

/// <summary>Describes served models for ListModels.</summary>
internal static class ModelInfoMapper
{
    public static ModelInfo ToModelInfo(ServedModel model)
    {
        var preprocessor = model.Folder.Preprocessor;
        var info = new ModelInfo
        {
            Name = model.Name,
            Version = model.Version,
            ModelType = model.Folder.Config.ModelType,
            NumQueries = (uint)model.NumQueries,
            IsDefault = model.IsDefault,
            InputSize = new InputSize
            {
                Height = (uint)(preprocessor.ResizeMode == ResizeMode.Fixed ? preprocessor.Height : 0),
                Width = (uint)(preprocessor.ResizeMode == ResizeMode.Fixed ? preprocessor.Width : 0),
                ShortestEdge = (uint)(preprocessor.ResizeMode == ResizeMode.ShortestEdge ? preprocessor.ShortestEdge : 0),
                LongestEdge = (uint)(preprocessor.ResizeMode == ResizeMode.ShortestEdge ? preprocessor.LongestEdge : 0),
                SizeDivisor = (uint)preprocessor.SizeDivisor,
            },
        };

        info.ThingStuffSource = model.Folder.Config.ThingSource;
        info.ModelFile = model.Folder.ModelFile.Replace('\\', '/');
        info.ResizeMethod = preprocessor.ResizeMethod == ResizeMethod.Pil ? "pil" : "interpolate";
        info.Labels.AddRange(model.Labels.Select(label => new Label { Id = (uint)label.Id, Name = label.Name, IsThing = label.IsThing }));
        foreach (var (task, flag) in new[] { (SegmentationTask.Semantic, SegmentationTasks.Semantic), (SegmentationTask.Instance, SegmentationTasks.Instance), (SegmentationTask.Panoptic, SegmentationTasks.Panoptic) })
        {
            if ((model.SupportedTasks & flag) != 0)
            {
                info.SupportedTasks.Add(task);
            }
        }

        foreach (var group in model.Placements.GroupBy(p => (p.Requested, p.ExecutionProvider, p.FallbackReason)))
        {
            info.Devices.Add(new DeviceInfo
            {
                Name = group.Key.Requested.ToString(),
                ExecutionProvider = group.Key.ExecutionProvider,
                Sessions = (uint)group.Count(),
                FellBackToCpu = group.Key.FallbackReason is not null,
                FallbackReason = group.Key.FallbackReason ?? string.Empty,
            });
        }

        return info;
    }
}
