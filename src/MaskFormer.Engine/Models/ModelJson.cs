using System.Text.Json;

namespace MaskFormer.Engine.Models;

internal static class ModelJson
{
    public static JsonDocument Parse(string path, bool allowArray = false)
    {
        if (!File.Exists(path))
        {
            throw new ModelLoadException(path, "does not exist.");
        }

        try
        {
            using var stream = File.OpenRead(path);
            var document = JsonDocument.Parse(stream, new JsonDocumentOptions { AllowTrailingCommas = true, CommentHandling = JsonCommentHandling.Skip });
            if (document.RootElement.ValueKind != JsonValueKind.Object && !(allowArray && document.RootElement.ValueKind == JsonValueKind.Array))
            {
                document.Dispose();
                throw new ModelLoadException(path, "is not a JSON object.");
            }

            return document;
        }
        catch (JsonException ex)
        {
            throw new ModelLoadException(path, $"is not valid JSON ({ex.Message}).", ex);
        }
        catch (IOException ex)
        {
            throw new ModelLoadException(path, $"cannot be read ({ex.Message}).", ex);
        }
    }
}
