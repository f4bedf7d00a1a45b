using System.Globalization;
using System.Runtime.InteropServices;
using System.Runtime.Intrinsics;
using Microsoft.ML.OnnxRuntime;

namespace MaskFormer.Benchmarks.Report;

/// <summary>What the numbers were measured on: cores, CPU, memory, versions, and how busy it was.</summary>
internal static class MachineInfo
{
    /// <summary>
    /// The CPU's model name, clock and widest vectors: the two machines this repository has been measured on
    /// gave ratios that differ by more than a run's spread (an AMD EPYC and a 2.3 GHz Intel Xeon with
    /// AVX-512, which also takes slow assists on subnormal floats), so a reader needs to tell them apart.
    /// </summary>
    public static string CpuModel()
    {
        var name = ReadField("/proc/cpuinfo", "model name") ?? RuntimeInformation.ProcessArchitecture.ToString();
        var clock = double.TryParse(ReadField("/proc/cpuinfo", "cpu MHz"), NumberStyles.Float, CultureInfo.InvariantCulture, out var megahertz)
            ? string.Create(CultureInfo.InvariantCulture, $"{megahertz:F0} MHz, ")
            : string.Empty;
        var vectors = Vector512.IsHardwareAccelerated ? "512-bit" : Vector256.IsHardwareAccelerated ? "256-bit" : "128-bit";
        return $"{name} ({clock}{vectors} vectors)";
    }

    public static string Memory()
    {
        var total = ReadField("/proc/meminfo", "MemTotal");
        return total is null ? "unknown" : string.Create(CultureInfo.InvariantCulture, $"{long.Parse(total.Split(' ', StringSplitOptions.RemoveEmptyEntries)[0], CultureInfo.InvariantCulture) / 1024.0 / 1024.0:F1} GiB");
    }

    /// <summary>The 1, 5 and 15 minute load averages.</summary>
    public static string LoadAverage() => File.Exists("/proc/loadavg") ? string.Join(' ', File.ReadAllText("/proc/loadavg").Split(' ').Take(3)) : "unknown";

    /// <summary>
    /// How many cores other processes kept busy over <paramref name="window"/> (the machine's busy time
    /// from /proc/stat less this process's own), or null where /proc/stat is missing. Unlike the load
    /// average it does not remember the minute before: the build that `dotnet run` does first is over.
    /// </summary>
    public static async Task<double?> OtherProcessesCoresAsync(TimeSpan window, CancellationToken cancellationToken)
    {
        if (MachineBusySeconds() is not { } busyBefore)
        {
            return null;
        }

        var ownBefore = ProcessCpu.Milliseconds();
        var clock = System.Diagnostics.Stopwatch.StartNew();
        await Task.Delay(window, cancellationToken);
        var own = (ProcessCpu.Milliseconds() - ownBefore) / 1e3;
        var busy = (MachineBusySeconds() ?? busyBefore) - busyBefore;
        return Math.Max(0, (busy - own) / clock.Elapsed.TotalSeconds);
    }

    /// <summary>Whether other processes keeping <paramref name="otherCores"/> cores busy make the machine busy: over a quarter of them.</summary>
    public static bool IsBusy(double otherCores) => otherCores > Environment.ProcessorCount * 0.25;

    /// <summary>The GPUs as nvidia-smi names them (name, memory, driver), or null where it is missing or fails.</summary>
    public static string? Gpus()
    {
        try
        {
            using var process = System.Diagnostics.Process.Start(new System.Diagnostics.ProcessStartInfo("nvidia-smi", "--query-gpu=name,memory.total,driver_version --format=csv,noheader")
            {
                RedirectStandardOutput = true,
                UseShellExecute = false,
            });
            if (process is null)
            {
                return null;
            }

            // A hung driver must not hold the report up.
            var output = process.StandardOutput.ReadToEndAsync();
            if (!process.WaitForExit(5000))
            {
                process.Kill();
                return null;
            }

            var text = output.Result.Trim();
            return process.ExitCode == 0 && text.Length > 0 ? string.Join("; ", text.Split('\n', StringSplitOptions.TrimEntries)) : null;
        }
        catch (System.ComponentModel.Win32Exception)
        {
            return null;
        }
    }

    public static string DotNet() => RuntimeInformation.FrameworkDescription;

    public static string OnnxRuntime() => OrtEnv.Instance().GetVersionString();

    public static string Os() => RuntimeInformation.OSDescription;

    // All cores' user, nice, system, irq, softirq and steal time, in seconds (USER_HZ is 100 on Linux).
    private static double? MachineBusySeconds()
    {
        if (!File.Exists("/proc/stat"))
        {
            return null;
        }

        var fields = File.ReadLines("/proc/stat").First().Split(' ', StringSplitOptions.RemoveEmptyEntries);
        if (fields.Length < 9 || fields[0] != "cpu")
        {
            return null;
        }

        long Field(int i) => long.Parse(fields[i], CultureInfo.InvariantCulture);
        return (Field(1) + Field(2) + Field(3) + Field(6) + Field(7) + Field(8)) / 100.0;
    }

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
