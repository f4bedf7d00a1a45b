namespace MaskFormer.Benchmarks.Soak;

/// <summary><c>soak [options]</c>: runs <see cref="SoakRun"/>, prints its figures; exit code 1 when a property failed.</summary>
internal static class SoakReport
{
    public static async Task<int> RunAsync(string[] args)
    {
        var settings = SoakSettings.Parse(args);
        using var interrupt = new CancellationTokenSource();
        Console.CancelKeyPress += (_, e) =>
        {
            e.Cancel = true;
            interrupt.Cancel();
        };
        var result = await SoakRun.RunAsync(settings, interrupt.Token);
        foreach (var line in result.Report())
        {
            Console.WriteLine(line);
        }

        return result.Violations.Count == 0 ? 0 : 1;
    }
}
