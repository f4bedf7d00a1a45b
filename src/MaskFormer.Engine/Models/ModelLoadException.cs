namespace MaskFormer.Engine.Models;

/// <summary>
/// A model folder that cannot be served: a file is missing, unreadable or inconsistent.
/// The message always names the file at fault.
/// </summary>
public sealed class ModelLoadException : Exception
{
    /// <summary>Creates the exception for <paramref name="filePath"/>.</summary>
    public ModelLoadException(string filePath, string problem, Exception? innerException = null)
        : base($"Model file '{filePath}': {problem}", innerException)
    {
        FilePath = filePath;
    }

    /// <summary>The file at fault.</summary>
    public string FilePath { get; }
}
