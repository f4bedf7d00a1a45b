namespace MaskFormer.Server.Security;

/// <summary>
/// What identifies a version of a mounted file: its resolved target's path, time and size. A Kubernetes
/// secret update swaps the ..data symlink, so the resolved path changes for certain even when file
/// watchers miss it.
/// </summary>
internal static class FileStamp
{
    public static string Of(string path)
    {
        if (path.Length == 0)
        {
            return "";
        }

        try
        {
            var file = new FileInfo(path);
            var target = file.ResolveLinkTarget(returnFinalTarget: true) as FileInfo ?? file;
            target.Refresh();
            return target.Exists ? $"{target.FullName}|{target.LastWriteTimeUtc.Ticks}|{target.Length}" : "missing";
        }
        catch (Exception ex) when (ex is IOException or UnauthorizedAccessException)
        {
            // ResolveLinkTarget throws for a path that no longer exists (a secret key removed, a file moved
            // away): a stamp of its own, so the reader tries to load it, fails, and keeps what it had.
            return "missing";
        }
    }
}
