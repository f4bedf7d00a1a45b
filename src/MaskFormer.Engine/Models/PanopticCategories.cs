using System.Globalization;
using System.Text.Json;

namespace MaskFormer.Engine.Models;

/// <summary>
/// The sidecar a user adds next to a HuggingFace export, whose <c>config.json</c> only has
/// <c>id2label</c>, to say which labels are things: <c>panoptic_categories.json</c>, either COCO's
/// panoptic category list as it is (<c>[{"id", "name", "isthing"}, ...]</c>, matched to the model's
/// labels by name when every name is one of them, else by id) or <c>{"thing_ids": [...]}</c>.
/// </summary>
public static class PanopticCategories
{
    /// <summary>The sidecar's file name.</summary>
    public const string FileName = "panoptic_categories.json";

    /// <summary>Reads the sidecar in <paramref name="directory"/>; null when there is none.</summary>
    public static IReadOnlySet<int>? TryLoad(string directory, IReadOnlyList<ModelLabel> labels)
    {
        var path = Path.Combine(directory, FileName);
        if (!File.Exists(path))
        {
            return null;
        }

        using var document = ModelJson.Parse(path, allowArray: true);
        var root = document.RootElement;
        if (root.ValueKind == JsonValueKind.Object && root.TryGetProperty("thing_ids", out var ids) && ids.ValueKind == JsonValueKind.Array)
        {
            return ids.EnumerateArray().Select(e => CheckedId(e, labels, path)).ToHashSet();
        }

        var categories = root.ValueKind == JsonValueKind.Array
            ? root
            : root.TryGetProperty("categories", out var list) && list.ValueKind == JsonValueKind.Array
                ? list
                : throw new ModelLoadException(path, "must be a list of {\"id\", \"name\", \"isthing\"}, {\"categories\": [...]} or {\"thing_ids\": [...]}.");

        var entries = categories.EnumerateArray().Select(e => e.ValueKind == JsonValueKind.Object
            ? (Id: e.TryGetProperty("id", out var id) ? id : default, Name: e.TryGetProperty("name", out var name) ? name.GetString() : null, IsThing: IsThing(e, path))
            : throw new ModelLoadException(path, "every category must be an object.")).ToArray();

        var byName = labels.ToDictionary(l => l.Name, l => l.Id, StringComparer.Ordinal);
        if (entries.Length > 0 && entries.All(e => e.Name is not null && byName.ContainsKey(e.Name)))
        {
            return entries.Where(e => e.IsThing).Select(e => byName[e.Name!]).ToHashSet();
        }

        return entries.Where(e => e.IsThing).Select(e => CheckedId(e.Id, labels, path)).ToHashSet();
    }

    private static bool IsThing(JsonElement category, string path) =>
        category.TryGetProperty("isthing", out var flag)
            ? flag.ValueKind switch
            {
                JsonValueKind.True => true,
                JsonValueKind.False => false,
                JsonValueKind.Number => flag.GetInt32() != 0,
                _ => throw new ModelLoadException(path, "'isthing' must be 0/1 or a boolean."),
            }
            : throw new ModelLoadException(path, "every category needs 'isthing'.");

    private static int CheckedId(JsonElement element, IReadOnlyList<ModelLabel> labels, string path) =>
        element.ValueKind == JsonValueKind.Number && element.TryGetInt32(out var id) && id >= 0 && id < labels.Count
            ? id
            : throw new ModelLoadException(path, string.Create(CultureInfo.InvariantCulture, $"names a label id that is not one of the model's labels 0..{labels.Count - 1} and names that match none of its labels."));
}
