using System.Runtime.InteropServices;

namespace MaskFormer.Engine.Sessions;

/// <summary>
/// The few CUDA driver API calls the service makes itself: ONNX Runtime has no provider option for how a
/// host thread waits for the GPU, but the driver takes it per device, on the primary context every
/// runtime user in the process shares (cuDevicePrimaryCtxSetFlags). Loaded on first use; a machine
/// without the driver gets a reason, not an exception.
/// </summary>
internal static class CudaDriver
{
    // cuda.h: CU_CTX_SCHED_* and the mask over them.
    private const uint SchedulingMask = 0x07;

    private static readonly Lazy<Api?> s_api = new(Load);
    private static readonly HashSet<int> s_setDevices = [];

    /// <summary>The primary context's scheduling flag for <paramref name="wait"/> (cuda.h's CU_CTX_SCHED_*).</summary>
    internal static uint SchedulingFlag(CudaHostWait wait) => (uint)wait;

    /// <summary>
    /// Sets how host threads wait for device <paramref name="deviceId"/> (its primary context's
    /// scheduling flag, the context's other flags kept), once per device and process: the primary
    /// context belongs to the process, whichever factory or model asks. Before the device's first
    /// session, so the context is made with it. False when an earlier call already did (or tried);
    /// else true, with <paramref name="refusal"/> null on success or why not (no driver, no such device,
    /// a driver error naming its call).
    /// </summary>
    public static bool SetHostWaitOnce(int deviceId, CudaHostWait wait, out string? refusal)
    {
        lock (s_setDevices)
        {
            refusal = null;
            if (!s_setDevices.Add(deviceId))
            {
                return false;
            }

            refusal = SetHostWait(deviceId, wait);
            return true;
        }
    }

    /// <summary>The scheduling flag device <paramref name="deviceId"/>'s primary context has now; null where the driver cannot say.</summary>
    internal static CudaHostWait? HostWait(int deviceId)
    {
        if (s_api.Value is not { } api || api.Init(0) != 0 || api.DeviceGet(out var device, deviceId) != 0 || api.GetState(device, out var flags, out _) != 0)
        {
            return null;
        }

        return (CudaHostWait)(flags & SchedulingMask);
    }

    private static string? SetHostWait(int deviceId, CudaHostWait wait)
    {
        if (s_api.Value is not { } api)
        {
            return "the CUDA driver library (libcuda.so.1 / nvcuda.dll) could not be loaded";
        }

        var (call, result) = ("cuInit", api.Init(0));
        if (result == 0)
        {
            (call, result) = ("cuDeviceGet", api.DeviceGet(out var device, deviceId));
            if (result == 0)
            {
                (call, result) = ("cuDevicePrimaryCtxGetState", api.GetState(device, out var flags, out _));
                if (result == 0)
                {
                    (call, result) = ("cuDevicePrimaryCtxSetFlags", api.SetFlags(device, (flags & ~SchedulingMask) | SchedulingFlag(wait)));
                }
            }
        }

        return result == 0 ? null : $"the CUDA driver returned error {result} ({api.ErrorName(result)}) from {call}";
    }

    private static Api? Load()
    {
        string[] names = OperatingSystem.IsWindows() ? ["nvcuda.dll"] : ["libcuda.so.1", "libcuda.so"];
        foreach (var name in names)
        {
            if (NativeLibrary.TryLoad(name, out var library))
            {
                // The _v2 entry point is what cuda.h has called cuDevicePrimaryCtxSetFlags since CUDA 11.
                if (NativeLibrary.TryGetExport(library, "cuInit", out var init)
                    && NativeLibrary.TryGetExport(library, "cuDeviceGet", out var deviceGet)
                    && NativeLibrary.TryGetExport(library, "cuDevicePrimaryCtxGetState", out var getState)
                    && NativeLibrary.TryGetExport(library, "cuDevicePrimaryCtxSetFlags_v2", out var setFlags))
                {
                    return new Api(
                        Marshal.GetDelegateForFunctionPointer<InitFunction>(init),
                        Marshal.GetDelegateForFunctionPointer<DeviceGetFunction>(deviceGet),
                        Marshal.GetDelegateForFunctionPointer<GetStateFunction>(getState),
                        Marshal.GetDelegateForFunctionPointer<SetFlagsFunction>(setFlags),
                        NativeLibrary.TryGetExport(library, "cuGetErrorName", out var errorName) ? Marshal.GetDelegateForFunctionPointer<ErrorNameFunction>(errorName) : null);
                }

                NativeLibrary.Free(library);
            }
        }

        return null;
    }

    private delegate int InitFunction(uint flags);

    private delegate int DeviceGetFunction(out int device, int ordinal);

    private delegate int GetStateFunction(int device, out uint flags, out int active);

    private delegate int SetFlagsFunction(int device, uint flags);

    private delegate int ErrorNameFunction(int result, out nint name);

    private sealed record Api(InitFunction Init, DeviceGetFunction DeviceGet, GetStateFunction GetState, SetFlagsFunction SetFlags, ErrorNameFunction? ErrorNameOf)
    {
        public string ErrorName(int result) =>
            ErrorNameOf is not null && ErrorNameOf(result, out var name) == 0 && name != 0 ? Marshal.PtrToStringAnsi(name) ?? "unknown" : "unknown";
    }
}
