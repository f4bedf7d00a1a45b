using System.Runtime.InteropServices;

namespace MaskFormer.Benchmarks.Report;

/// <summary>
/// This process's CPU time, every thread, from <c>getrusage(RUSAGE_SELF)</c> (microseconds, where
/// <see cref="System.Diagnostics.Process.TotalProcessorTime"/> on Linux counts 10 ms clock ticks).
/// </summary>
internal static class ProcessCpu
{
    public static double Milliseconds()
    {
        if (!OperatingSystem.IsLinux() || GetResourceUsage(0, out var usage) != 0)
        {
            return System.Diagnostics.Process.GetCurrentProcess().TotalProcessorTime.TotalMilliseconds;
        }

        return ((usage.UserSeconds + usage.SystemSeconds) * 1e3) + ((usage.UserMicroseconds + usage.SystemMicroseconds) / 1e3);
    }

#pragma warning disable SYSLIB1054 // LibraryImport needs unsafe code, which the build does not allow.
    [DllImport("libc", EntryPoint = "getrusage")]
    [DefaultDllImportSearchPaths(DllImportSearchPath.SafeDirectories)]
    private static extern int GetResourceUsage(int who, out ResourceUsage usage);
#pragma warning restore SYSLIB1054

    // struct rusage on 64-bit Linux: two timevals, then fourteen longs.
    [StructLayout(LayoutKind.Sequential)]
    private struct ResourceUsage
    {
        public long UserSeconds;
        public long UserMicroseconds;
        public long SystemSeconds;
        public long SystemMicroseconds;
        public long MaxResident;
        public long Ixrss;
        public long Idrss;
        public long Isrss;
        public long MinorFaults;
        public long MajorFaults;
        public long Swaps;
        public long BlockIn;
        public long BlockOut;
        public long MessagesSent;
        public long MessagesReceived;
        public long Signals;
        public long VoluntarySwitches;
        public long InvoluntarySwitches;
    }
}
