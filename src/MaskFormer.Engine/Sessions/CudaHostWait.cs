namespace MaskFormer.Engine.Sessions;

/// <summary>
/// How a thread that waits for the GPU (ONNX Runtime copying a run's outputs back, synchronising its
/// stream) waits: the scheduling flag of the device's primary CUDA context, which every session on the
/// device shares.
/// </summary>
public enum CudaHostWait
{
    /// <summary>
    /// Leave the context as CUDA makes it (the default): CUDA's own heuristic, which spins on a core
    /// whenever the process has fewer CUDA contexts than the machine has cores, as a one-GPU pod does.
    /// </summary>
    Auto,

    /// <summary>Spin on a core until the GPU is done: the least latency, a core busy for every waiting thread.</summary>
    Spin,

    /// <summary>Yield the core to other threads between checks.</summary>
    Yield,

    /// <summary>Sleep until the GPU signals: no core spent on waiting, a little more latency per wait.</summary>
    BlockingSync,
}
