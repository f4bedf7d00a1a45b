using System.Globalization;
using System.Runtime.InteropServices;
using Microsoft.ML.OnnxRuntime;

namespace MaskFormer.Benchmarks.Report;

/// <summary>What the numbers were measured on: cores, CPU, memory, versions, and how busy it was.</summary>
internal static class MachineInfo
{
    public static string CpuModel() => ReadField("/proc/cpuinfo", "model name") ?? RuntimeInformation.ProcessArchitecture.ToString();

    public static string Memory()
    {
        var total = ReadField("/proc/meminfo", "MemTotal");
        return total is null ? "unknown" : string.Create(CultureInfo.InvariantCulture, $"{long.Parse(total.Split(' ', StringSplitOptions.RemoveEmptyEntries)[0], CultureInfo.InvariantCulture) / 1024.0 / 1024.0:F1} GiB");
    }

    /// <summary>The 1, 5 and 15 minute load averages.</summary>
    public static string LoadAverage() => File.Exists("/proc/loadavg") ? string.Join(' ', File.ReadAllText("/proc/loadavg").Split(' ').Take(3)) : "unknown";

    public static string DotNet() => RuntimeInformation.FrameworkDescription;

    public static string OnnxRuntime() => OrtEnv.Instance().GetVersionString();

    public static string Os() => RuntimeInformation.OSDescription;

    private static string? ReadField(string file, string name)
    {
        if (!File.Exists(file))
        {
            return null;
        }

        foreach (var line in File.ReadLines(file))
        {
            var colon = line.IndexOf(':', StringComparison.Ordinal);
            if (colon > 0 && line[..colon].Trim() == name)
            {
                return line[(colon + 1)..].Trim();
            }
        }

        return null;
    }
}
