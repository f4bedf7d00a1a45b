using System.Runtime.InteropServices;

namespace MaskFormer.Engine.Admission;

/// <summary>
/// glibc's malloc_trim: returns to the system the free memory at the top of malloc's heaps and, since
/// glibc 2.8, the free pages inside them. ONNX Runtime (without its arena, or after shrinking it) and
/// ImageSharp's unmanaged pool free through malloc, whose dynamic mmap threshold keeps large freed
/// blocks in the heap, so resident memory stays high after a burst until this runs.
/// </summary>
internal static class NativeMemoryTrim
{
    /// <summary>Trims malloc's heaps; false where there is no glibc (Windows, macOS, musl).</summary>
    public static bool Trim()
    {
        if (!OperatingSystem.IsLinux())
        {
            return false;
        }

        try
        {
            return MallocTrim(0) != 0;
        }
        catch (Exception ex) when (ex is DllNotFoundException or EntryPointNotFoundException)
        {
            return false;
        }
    }

    // LibraryImport would need unsafe blocks, which the build forbids; the signature is blittable.
#pragma warning disable SYSLIB1054
    [DllImport("libc.so.6", EntryPoint = "malloc_trim")]
    [DefaultDllImportSearchPaths(DllImportSearchPath.SafeDirectories)]
    private static extern int MallocTrim(nuint pad);
#pragma warning restore SYSLIB1054
}
