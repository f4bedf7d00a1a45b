namespace MaskFormer.Engine;

/// <summary>
/// Client-supplied strings echoed in error messages are cut to <see cref="MaxLength"/> characters: a
/// status message travels in a header (grpc-message) that clients limit to a few KB, and a 1 MiB model
/// name echoed whole breaks the client's connection.
/// </summary>
public static class ClientText
{
    /// <summary>The most characters of one client-supplied string an error message repeats.</summary>
    public const int MaxLength = 256;

    /// <summary>The string, or its first <see cref="MaxLength"/> characters and how long it was.</summary>
    public static string Shorten(string value) =>
        value.Length <= MaxLength ? value : $"{value.AsSpan(0, MaxLength)}... ({value.Length} characters)";
}
