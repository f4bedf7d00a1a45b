using System.Globalization;
using System.Text.Json;

namespace MaskFormer.Engine.Models;

/// <summary>
/// The parts of a HuggingFace-style <c>config.json</c> the service needs: architecture, labels and
/// which labels are things.
/// </summary>
public sealed record ModelConfig
{
    /// <summary>"maskformer" or "mask2former"; selects the panoptic pixel rule.</summary>
    public required string ModelType { get; init; }

    /// <summary>Labels by id, without the "no object" class.</summary>
    public required IReadOnlyList<ModelLabel> Labels { get; init; }

    /// <summary>Whether the config names its thing classes (otherwise every class counts as a thing).</summary>
    public required bool DeclaresThings { get; init; }

    /// <summary>Where the thing/stuff split came from, or "none (every label is a thing)".</summary>
    public string ThingSource { get; init; } = NoThingSource;

    /// <summary>The <see cref="ThingSource"/> of a model that names no things.</summary>
    public const string NoThingSource = "none (every label is a thing)";

    /// <summary>The number of queries, when the config states it (num_queries, or decoder_config's); else 0.</summary>
    public int NumQueries { get; init; }

    /// <summary>The model's version from the config, if it gives one.</summary>
    public string? Version { get; init; }

    /// <summary>True for Mask2Former exports, whose panoptic rule also requires sigmoid ≥ 0.5.</summary>
    public bool IsMask2Former => string.Equals(ModelType, "mask2former", StringComparison.OrdinalIgnoreCase);

    /// <summary>Parses <paramref name="path"/>; throws <see cref="ModelLoadException"/> naming it.</summary>
    public static ModelConfig Load(string path)
    {
        using var document = ModelJson.Parse(path);
        var root = document.RootElement;
        var modelType = root.TryGetProperty("model_type", out var type) && type.ValueKind == JsonValueKind.String
            ? type.GetString()!
            : "maskformer";

        if (!root.TryGetProperty("id2label", out var id2Label) || id2Label.ValueKind != JsonValueKind.Object)
        {
            throw new ModelLoadException(path, "has no 'id2label' object.");
        }

        var (thingIds, thingSource) = ReadThingIds(root, path);
        var names = new SortedDictionary<int, string>();
        foreach (var entry in id2Label.EnumerateObject())
        {
            if (!int.TryParse(entry.Name, NumberStyles.None, CultureInfo.InvariantCulture, out var id) || id > ushort.MaxValue)
            {
                throw new ModelLoadException(path, $"'id2label' key '{entry.Name}' is not a label id between 0 and 65535.");
            }

            names[id] = entry.Value.GetString() ?? throw new ModelLoadException(path, $"label {id} has no name.");
        }

        var expectedId = 0;
        foreach (var id in names.Keys)
        {
            if (id != expectedId++)
            {
                throw new ModelLoadException(path, $"'id2label' ids must run 0..{names.Count - 1} without gaps; {expectedId - 1} is missing.");
            }
        }

        if (names.Count == 0)
        {
            throw new ModelLoadException(path, "'id2label' is empty.");
        }

        var labels = names
            .Select(pair => new ModelLabel(pair.Key, pair.Value, thingIds is null || thingIds.Contains(pair.Key)))
            .ToArray();

        return new ModelConfig
        {
            ModelType = modelType,
            Labels = labels,
            DeclaresThings = thingIds is not null,
            ThingSource = thingSource,
            NumQueries = ReadNumQueries(root),
            Version = root.TryGetProperty("version", out var version) && version.ValueKind == JsonValueKind.String
                ? version.GetString()
                : null,
        };
    }

    // Mask2Former's config states num_queries at the top; transformers' MaskFormer config keeps it in its
    // DETR decoder_config.
    private static int ReadNumQueries(JsonElement root)
    {
        foreach (var scope in (JsonElement[])[root, root.TryGetProperty("decoder_config", out var decoder) && decoder.ValueKind == JsonValueKind.Object ? decoder : default])
        {
            if (scope.ValueKind == JsonValueKind.Object && scope.TryGetProperty("num_queries", out var queries) && queries.TryGetInt32(out var count) && count > 0)
            {
                return count;
            }
        }

        return 0;
    }

    /// <summary>The same labels with <paramref name="thingIds"/> as the things, recording <paramref name="source"/>.</summary>
    public ModelConfig WithThings(IReadOnlySet<int> thingIds, string source) => this with
    {
        Labels = [.. Labels.Select(l => l with { IsThing = thingIds.Contains(l.Id) })],
        DeclaresThings = true,
        ThingSource = source,
    };

    // Exports name things in different ways: an explicit "thing_ids" list, "label2isthing" flags per
    // label, or detectron2's metadata ("thing_ids" or "thing_classes" by name). None of them means
    // "treat every class as a thing" (what transformers' own config.json gives: only id2label).
    private static (HashSet<int>? ThingIds, string Source) ReadThingIds(JsonElement root, string path)
    {
        if (root.TryGetProperty("thing_ids", out var thingIds) && thingIds.ValueKind == JsonValueKind.Array)
        {
            return (ReadIds(thingIds, path, "thing_ids"), "config.json thing_ids");
        }

        if (root.TryGetProperty("label2isthing", out var isThing) && isThing.ValueKind == JsonValueKind.Object)
        {
            return (isThing.EnumerateObject()
                .Where(e => e.Value.ValueKind == JsonValueKind.True)
                .Select(e => int.Parse(e.Name, CultureInfo.InvariantCulture))
                .ToHashSet(), "config.json label2isthing");
        }

        if (root.TryGetProperty("metadata", out var metadata) && metadata.ValueKind == JsonValueKind.Object)
        {
            if (metadata.TryGetProperty("thing_ids", out var metadataIds) && metadataIds.ValueKind == JsonValueKind.Array)
            {
                return (ReadIds(metadataIds, path, "metadata.thing_ids"), "config.json metadata.thing_ids");
            }

            if (metadata.TryGetProperty("thing_classes", out var thingClasses) && thingClasses.ValueKind == JsonValueKind.Array
                && root.TryGetProperty("id2label", out var id2Label) && id2Label.ValueKind == JsonValueKind.Object)
            {
                var names = thingClasses.EnumerateArray().Select(e => e.GetString()).ToHashSet(StringComparer.Ordinal);
                return (id2Label.EnumerateObject()
                    .Where(e => names.Contains(e.Value.GetString()))
                    .Select(e => int.Parse(e.Name, CultureInfo.InvariantCulture))
                    .ToHashSet(), "config.json metadata.thing_classes");
            }
        }

        return (null, NoThingSource);
    }

    private static HashSet<int> ReadIds(JsonElement array, string path, string key) =>
        array.EnumerateArray().Select(e => e.TryGetInt32(out var id)
            ? id
            : throw new ModelLoadException(path, $"'{key}' must hold integers.")).ToHashSet();
}
