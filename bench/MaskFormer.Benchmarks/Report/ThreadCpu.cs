using System.Globalization;

namespace MaskFormer.Benchmarks.Report;

/// <summary>The calling thread's CPU time, from Linux's <c>/proc/thread-self/schedstat</c> (nanoseconds on a CPU); zero elsewhere.</summary>
internal static class ThreadCpu
{
    private const string SchedStat = "/proc/thread-self/schedstat";

    public static TimeSpan Now() =>
        File.Exists(SchedStat) && long.TryParse(File.ReadAllText(SchedStat).Split(' ')[0], NumberStyles.Integer, CultureInfo.InvariantCulture, out var nanoseconds)
            ? TimeSpan.FromTicks(nanoseconds / 100)
            : TimeSpan.Zero;
}
