namespace MaskFormer.Engine.Models;

/// <summary>
/// Turns the configured <see cref="ModelRepositoryOptions.Path"/> into a folder. Unset, it is the
/// <c>models</c> folder the server ships with: beside the server's binaries (a published server, the
/// container image), else at the root of the source checkout the binaries were built in (found the way
/// <c>WebApplicationFactory</c> finds a content root, by the solution file above the binaries), so
/// <c>dotnet run</c> finds it whatever working directory it picks. A configured relative path is
/// relative to the working directory, as any path typed on a command line.
/// </summary>
public static class ModelRepositoryLocator
{
    /// <summary>The name of the shipped model repository folder.</summary>
    public const string DefaultFolderName = "models";

    /// <summary>The file that marks the root of a source checkout.</summary>
    public const string CheckoutMarker = "MaskFormer.sln";

    /// <summary>The setting that chooses the repository.</summary>
    public const string Setting = ModelRepositoryOptions.SectionName + ":Path";

    /// <summary>
    /// The repository folder, as a full path. Throws <see cref="ModelLoadException"/> naming every place
    /// looked at when none exists.
    /// </summary>
    public static string Locate(string? configuredPath, string applicationDirectory, string currentDirectory)
    {
        if (!string.IsNullOrWhiteSpace(configuredPath))
        {
            var full = Path.GetFullPath(configuredPath, currentDirectory);
            return Directory.Exists(full)
                ? full
                : throw ModelLoadException.RepositoryNotFound(
                    full,
                    Path.IsPathRooted(configuredPath)
                        ? $"No model repository at '{full}' ({Setting})."
                        : $"No model repository at '{full}' ({Setting} '{configuredPath}', relative to the working directory '{currentDirectory}').");
        }

        var candidates = DefaultCandidates(applicationDirectory);
        return candidates.FirstOrDefault(c => Directory.Exists(c.Path)).Path
            ?? throw ModelLoadException.RepositoryNotFound(
                candidates[0].Path,
                $"No model repository: {Setting} is not set and the shipped '{DefaultFolderName}' folder is not at {string.Join(" nor at ", candidates.Select(c => $"'{c.Path}' ({c.Where})"))}.");
    }

    private static List<(string Path, string Where)> DefaultCandidates(string applicationDirectory)
    {
        var application = Path.GetFullPath(applicationDirectory);
        var candidates = new List<(string, string)> { (Path.Combine(application, DefaultFolderName), "beside the server") };
        for (var directory = new DirectoryInfo(application).Parent; directory is not null; directory = directory.Parent)
        {
            if (File.Exists(Path.Combine(directory.FullName, CheckoutMarker)))
            {
                candidates.Add((Path.Combine(directory.FullName, DefaultFolderName), "in the checkout it was built from"));
                break;
            }
        }

        return candidates;
    }
}
