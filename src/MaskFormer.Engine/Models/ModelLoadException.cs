namespace MaskFormer.Engine.Models;

/// <summary>
/// A model folder that cannot be served: a file is missing, unreadable or inconsistent, or there is no
/// model repository. The message always names the file or folder at fault.
/// </summary>
public sealed class ModelLoadException : Exception
{
    /// <summary>Creates the exception for <paramref name="filePath"/>.</summary>
    public ModelLoadException(string filePath, string problem, Exception? innerException = null)
        : this(filePath, $"Model file '{filePath}': {problem}", ModelRepositoryLocator.Setting, innerException)
    {
    }

    /// <summary>Creates the exception for <paramref name="filePath"/> when <paramref name="setting"/>, not the repository, is what to change.</summary>
    public ModelLoadException(string filePath, string problem, string setting)
        : this(filePath, $"Model file '{filePath}': {problem}", setting, null)
    {
    }

    private ModelLoadException(string filePath, string message, string setting, Exception? innerException)
        : base(message, innerException)
    {
        FilePath = filePath;
        Setting = setting;
    }

    /// <summary>The file or folder at fault.</summary>
    public string FilePath { get; }

    /// <summary>The setting that chooses another model (or repository), for the start-up error line.</summary>
    public string Setting { get; }

    /// <summary>No model repository where one was looked for; the message says where that was.</summary>
    public static ModelLoadException RepositoryNotFound(string folder, string message) =>
        new(folder, message, ModelRepositoryLocator.Setting, null);

    /// <summary>The configured default model is not in the repository.</summary>
    public static ModelLoadException DefaultModelNotFound(string folder, string message) =>
        new(folder, message, ModelRepositoryOptions.SectionName + ":DefaultModel", null);
}
