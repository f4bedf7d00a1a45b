namespace MaskFormer.Benchmarks;

internal static class BenchPaths
{
    public static string Root { get; } = FindRoot();

    public static string Models => Path.Combine(Root, "models");

    public static string HeldOut => Path.Combine(Models, "tiny-shapes", "heldout");

    public static string Clip => Path.Combine(Models, "tiny-shapes", "clip");

    private static string FindRoot()
    {
        for (var directory = new DirectoryInfo(AppContext.BaseDirectory); directory is not null; directory = directory.Parent)
        {
            if (File.Exists(Path.Combine(directory.FullName, "MaskFormer.sln")))
            {
                return directory.FullName;
            }
        }

        throw new InvalidOperationException("MaskFormer.sln not found: run the benchmarks from the repository.");
    }
}
