namespace MaskFormer.Engine.Sessions;

/// <summary>
/// How a thread that waits for the GPU (ONNX Runtime copying a run's outputs back, synchronising its
/// stream) waits: the scheduling flag of the device's primary CUDA context, which every session on the
/// device shares. Waits on CUDA events made without their own blocking flag busy-wait whatever it says.
/// Each value is cuda.h's CU_CTX_SCHED_* flag for it.
/// </summary>
public enum CudaHostWait
{
    /// <summary>
    /// Leave the context as CUDA makes it (the default): CUDA's own heuristic, which spins on a core
    /// unless the process has more CUDA contexts than the machine has logical processors: so always
    /// in a one-GPU pod (the node's processors count, not the pod's CPU limit).
    /// </summary>
    Auto = 0x00,

    /// <summary>Spin on a core until the GPU is done: the least latency, a core busy for every waiting thread.</summary>
    Spin = 0x01,

    /// <summary>Yield the core to other threads between checks.</summary>
    Yield = 0x02,

    /// <summary>Sleep until the GPU signals: no core spent on waiting, a little more latency per wait.</summary>
    BlockingSync = 0x04,
}
