namespace MaskFormer.Engine.Sessions;

/// <summary>
/// A device configured as required cannot be used (for CUDA: the provider or the GPU cannot be loaded).
/// Start-up fails with it rather than falling back to the CPU, so a misconfigured GPU pod never becomes ready.
/// </summary>
public sealed class DeviceUnavailableException : Exception
{
    /// <summary>Creates the exception for <paramref name="device"/>.</summary>
    public DeviceUnavailableException(string device, string reason, Exception? innerException = null)
        : base($"Required device {device} cannot be used: {reason}", innerException)
    {
        Device = device;
        Reason = reason;
    }

    /// <summary>The device, as configured ("cuda:0").</summary>
    public string Device { get; }

    /// <summary>Why it cannot be used, as ONNX Runtime said.</summary>
    public string Reason { get; }
}
