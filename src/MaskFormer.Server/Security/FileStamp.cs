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

        var file = new FileInfo(path);
        var target = file.ResolveLinkTarget(returnFinalTarget: true) as FileInfo ?? file;
        target.Refresh();
        return target.Exists ? $"{target.FullName}|{target.LastWriteTimeUtc.Ticks}|{target.Length}" : "missing";
    }
}
