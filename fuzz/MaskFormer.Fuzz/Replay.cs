namespace MaskFormer.Fuzz;

/// <summary>Runs saved inputs (the corpus, or crashes AFL++ found) once each, outside AFL++.</summary>
internal static class Replay
{
    public static int Run(string[] paths)
    {
        var files = paths.SelectMany(p => Directory.Exists(p) ? Directory.EnumerateFiles(p, "*", SearchOption.AllDirectories) : [p])
            .Where(f => !Path.GetFileName(f).StartsWith('.') && !f.EndsWith("README.txt", StringComparison.Ordinal))
            .Order(StringComparer.Ordinal)
            .ToList();
        var failures = 0;
        foreach (var file in files)
        {
            try
            {
                FuzzTarget.Run(File.ReadAllBytes(file));
            }
            catch (Exception ex)
            {
                failures++;
                Console.WriteLine($"FAIL {file}: {ex.GetType().Name}: {ex.Message}");
            }
        }

        Console.WriteLine($"{files.Count} inputs, {failures} contract violations; decoding errors by library exception: " +
            string.Join(", ", Stats.InnerExceptions.OrderByDescending(p => p.Value).Select(p => $"{p.Key} {p.Value}")));
        return failures == 0 && files.Count > 0 ? 0 : 1;
    }
}
