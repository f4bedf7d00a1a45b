using System.Globalization;
using MaskFormer.Contracts.V1;

namespace MaskFormer.Cli.Rendering;

/// <summary>
/// The segments to draw for each kind of result. Semantic and panoptic segments take their class's
/// colour; instances each get their own (by track id on a stream, so an object keeps its colour).
/// Tags name the class, with the track id on a stream and the score for instances.
/// </summary>
internal static class ResultPictures
{
    public static SegmentMap Semantic(SegmentResponse response, IReadOnlyDictionary<int, string> labelNames)
    {
        var map = response.Semantic.LabelMap;
        var labels = OverlayRenderer.DecodeLabelMap(map.Data.ToByteArray(), (int)map.BitsPerPixel, (int)response.Width, (int)response.Height);
        return SegmentMaps.FromSemantic(labels, (int)response.Width, (int)response.Height, id => labelNames.GetValueOrDefault(id, id.ToString(CultureInfo.InvariantCulture)));
    }

    public static SegmentMap Panoptic(SegmentResponse response, bool streaming) =>
        SegmentMaps.FromPanoptic(response.Panoptic, s => streaming && s.IsThing ? $"{s.LabelName} #{s.TrackId}" : s.LabelName);

    public static SegmentMap Instances(SegmentResponse response, bool streaming) =>
        SegmentMaps.FromInstances(
            response.Instance.Instances,
            (int)response.Width,
            (int)response.Height,
            (instance, index) => streaming ? (int)instance.TrackId : index,
            instance => InstanceTag(instance, streaming));

    public static string InstanceTag(Instance instance, bool streaming) => streaming
        ? string.Create(CultureInfo.InvariantCulture, $"{instance.LabelName} #{instance.TrackId} {instance.Score:0.00}")
        : string.Create(CultureInfo.InvariantCulture, $"{instance.LabelName} {instance.Score:0.00}");

    /// <summary>The legend of a unary result: the classes present and their share of the image.</summary>
    public static IReadOnlyList<LegendEntry> SemanticLegend(SegmentResponse response)
    {
        var total = (double)response.Width * response.Height;
        return [.. response.Semantic.Classes.Select(c => new LegendEntry(Palette.ForId((int)c.LabelId), Share(c.LabelName, c.Area / total)))];
    }

    /// <summary>The legend of a unary panoptic result: each class present, how many segments, their share.</summary>
    public static IReadOnlyList<LegendEntry> PanopticLegend(SegmentResponse response)
    {
        var total = (double)response.Width * response.Height;
        return
        [
            .. response.Panoptic.Segments
                .GroupBy(s => s.CategoryId)
                .OrderBy(g => g.Key)
                .Select(g => new LegendEntry(
                    Palette.ForId((int)g.Key),
                    Share(g.First().IsThing ? $"{g.First().LabelName} x{g.Count()}" : g.First().LabelName, g.Sum(s => (double)s.Area) / total))),
        ];
    }

    /// <summary>The legend of a unary instance result: one line per instance, in its colour.</summary>
    public static IReadOnlyList<LegendEntry> InstanceLegend(SegmentResponse response) =>
        [.. response.Instance.Instances.Select((instance, i) => new LegendEntry(Palette.ForId(i), InstanceTag(instance, streaming: false)))];

    /// <summary>A legend of every class the model knows, for videos, whose frames must all be one size.</summary>
    public static IReadOnlyList<LegendEntry> ModelLegend(ModelInfo model) =>
        [.. model.Labels.OrderBy(l => l.Id).Select(l => new LegendEntry(Palette.ForId((int)l.Id), l.Name))];

    private static string Share(string name, double fraction) => string.Create(CultureInfo.InvariantCulture, $"{name} {fraction * 100:F1}%");
}
