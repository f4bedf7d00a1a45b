using System.Text.Json;

namespace MaskFormer.Engine.Models;

internal static class ModelJson
{
    private const long MaxBytes = 16 << 20;

    /// <summary>
    /// Runs <paramref name="read"/>, which reads <paramref name="path"/>'s values: a value of the wrong JSON
    /// kind or form (a number where a string belongs, "2.5" for a whole number, a repeated name) fails start-up
    /// naming the file, instead of escaping as the accessor's exception.
    /// </summary>
    public static T Read<T>(string path, Func<T> read)
    {
        try
        {
            return read();
        }
        catch (Exception ex) when (ex is InvalidOperationException or FormatException or ArgumentException or OverflowException or KeyNotFoundException)
        {
            throw new ModelLoadException(path, $"has a value of the wrong kind or form ({ex.Message}).", ex);
        }
    }

    public static JsonDocument Parse(string path, bool allowArray = false)
    {
        if (!File.Exists(path))
        {
            throw new ModelLoadException(path, "does not exist.");
        }

        // A settings file is a few kilobytes. A FIFO or a device reports no length: opening a FIFO would
        // block start-up for ever, and /dev/zero would be read without end.
        var file = new FileInfo(path);
        var length = (file.LinkTarget is null ? file : file.ResolveLinkTarget(returnFinalTarget: true) as FileInfo)?.Length ?? 0;
        if (length == 0 || length > MaxBytes)
        {
            throw new ModelLoadException(path, length == 0 ? "is empty, or not a regular file." : $"is {length} bytes; a settings file may have at most {MaxBytes}.");
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
        catch (Exception ex) when (ex is IOException or UnauthorizedAccessException)
        {
            throw new ModelLoadException(path, $"cannot be read ({ex.Message}).", ex);
        }
    }
}
