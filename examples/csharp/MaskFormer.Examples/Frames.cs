namespace MaskFormer.Examples;

/// <summary>The frames of a folder, as every example picks them.</summary>
internal static class Frames
{
    private static readonly HashSet<string> s_imageExtensions = new(StringComparer.OrdinalIgnoreCase)
    {
        ".png", ".jpg", ".jpeg", ".bmp", ".gif", ".tga", ".tif", ".tiff", ".webp",
    };

    /// <summary>
    /// The folder's images sorted by file name, less ground truth and predictions stored beside frames (a stem
    /// ending with _semantic or _panoptic, or containing _pred). A frame's name whose file is not there (a broken
    /// symbolic link) throws <see cref="IOException"/> naming it, so that the stream is refused before anything is
    /// sent rather than going without it.
    /// </summary>
    public static IReadOnlyList<string> List(string folder)
    {
        if (!Directory.Exists(folder))
        {
            throw new DirectoryNotFoundException($"not a folder: {folder}");
        }

        var frames = new List<string>();
        foreach (var path in Directory.EnumerateFileSystemEntries(folder))
        {
            var stem = Path.GetFileNameWithoutExtension(path);
            if (!s_imageExtensions.Contains(Path.GetExtension(path))
                || stem.EndsWith("_semantic", StringComparison.Ordinal) || stem.EndsWith("_panoptic", StringComparison.Ordinal)
                || stem.Contains("_pred", StringComparison.Ordinal))
            {
                continue;
            }

            if (Directory.Exists(path))
            {
                continue;
            }

            var info = new FileInfo(path);
            if (info.LinkTarget is { } target && info.ResolveLinkTarget(returnFinalTarget: true) is not { Exists: true })
            {
                throw new IOException($"{path} is a broken symbolic link (to {target})");
            }

            if (File.Exists(path))
            {
                frames.Add(path);
            }
        }

        frames.Sort(StringComparer.Ordinal);
        return frames;
    }
}
