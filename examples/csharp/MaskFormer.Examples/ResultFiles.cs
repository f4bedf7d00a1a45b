using System.Text.Json;
using System.Text.Json.Nodes;
using Google.Protobuf;
using MaskFormer.Contracts.V1;

namespace MaskFormer.Examples;

/// <summary>
/// What a result is written as, named after its image (0000.png gives 0000.*): the semantic label map as
/// the server sent it (0000.labels.png, an 8-bit grey PNG of label ids), the panoptic segment ids as sent
/// (0000.panoptic.png, COCO's id = R + 256 G + 256² B) and 0000.json, the whole response in protobuf's JSON
/// mapping without those bytes, beside the image's path and the files' names.
/// </summary>
internal static class ResultFiles
{
    private static readonly JsonFormatter s_formatter = new(JsonFormatter.Settings.Default.WithFormatDefaultValues(true));
    private static readonly JsonSerializerOptions s_indented = new() { WriteIndented = true };

    /// <summary>
    /// Creates <paramref name="folder"/>, before any call: a folder that cannot be made fails the command
    /// (exit 2) before the server is asked anything.
    /// </summary>
    public static void CreateFolder(string folder)
    {
        try
        {
            Directory.CreateDirectory(folder);
        }
        catch (Exception ex) when (ex is IOException or UnauthorizedAccessException)
        {
            throw CannotWrite(folder, ex);
        }
    }

    /// <summary>Writes the files into <paramref name="folder"/> and returns their names; an <see cref="IOException"/> names the folder.</summary>
    public static async Task<IReadOnlyList<string>> WriteAsync(string folder, string imagePath, SegmentResponse response, CancellationToken cancellationToken)
    {
        try
        {
            return await WriteFilesAsync(folder, imagePath, response, cancellationToken);
        }
        catch (Exception ex) when (ex is IOException or UnauthorizedAccessException)
        {
            throw CannotWrite(folder, ex);
        }
    }

    private static IOException CannotWrite(string folder, Exception ex) => new($"cannot write into {folder}: {ex.Message}", ex);

    private static async Task<IReadOnlyList<string>> WriteFilesAsync(string folder, string imagePath, SegmentResponse response, CancellationToken cancellationToken)
    {
        Directory.CreateDirectory(folder);
        var stem = Path.GetFileNameWithoutExtension(imagePath);
        var names = new List<string>();
        var summary = response.Clone();
        if (response.Semantic?.LabelMap is { Data.IsEmpty: false } labelMap)
        {
            await WriteAsync($"{stem}.labels.png", labelMap.Data);
            summary.Semantic.LabelMap.Data = ByteString.Empty;
        }

        if (response.Panoptic is { SegmentIdPng.IsEmpty: false } panoptic)
        {
            await WriteAsync($"{stem}.panoptic.png", panoptic.SegmentIdPng);
            summary.Panoptic.SegmentIdPng = ByteString.Empty;
        }

        names.Add($"{stem}.json");
        var json = new JsonObject
        {
            ["image"] = Path.GetFullPath(imagePath),
            ["files"] = new JsonArray([.. names.Select(n => JsonValue.Create(n))]),
            ["response"] = JsonNode.Parse(s_formatter.Format(summary)),
        };
        await File.WriteAllTextAsync(Path.Combine(folder, $"{stem}.json"), json.ToJsonString(s_indented) + "\n", cancellationToken);
        return names;

        async Task WriteAsync(string name, ByteString bytes)
        {
            await File.WriteAllBytesAsync(Path.Combine(folder, name), bytes.Memory, cancellationToken);
            names.Add(name);
        }
    }
}
