using MaskFormer.Engine.Admission;

namespace MaskFormer.Engine;

/// <summary>
/// Giving memory back after a burst (issue 10 item 3): once admission control has been idle for
/// <see cref="AdmissionOptions.ReturnMemoryAfterIdle"/>, the decoder's pool and the engine's array pools
/// (<see cref="EngineArrayPool"/>) are released, a compacting
/// garbage collection in aggressive mode decommits the free managed heap (large object heap included),
/// and glibc's heaps are trimmed. ONNX Runtime's CPU arena keeps what its largest run needed unless
/// <see cref="Sessions.CpuArenaMode.Shrink"/> is chosen (it costs every run). These are the memory-return settings; the GC mode
/// (server or workstation, DOTNET_gcServer) and thread settings belong to the performance work and are
/// not set here.
/// </summary>
public sealed partial class SegmentationEngine
{
    private ITimer? _memoryReturn;
    private long _memoryReturns;

    /// <summary>How many times memory was given back after the engine went idle.</summary>
    public long MemoryReturns => Interlocked.Read(ref _memoryReturns);

    private void StartMemoryReturn()
    {
        var after = _admission.Options.ReturnMemoryAfterIdle;
        if (after <= TimeSpan.Zero || _memoryReturn is not null)
        {
            return;
        }

        _memoryReturn = time.CreateTimer(_ => ReturnMemoryIfIdle(), null, Timeout.InfiniteTimeSpan, Timeout.InfiniteTimeSpan);
        _admission.BecameIdle += ArmMemoryReturn;
    }

    private void StopMemoryReturn()
    {
        _admission.BecameIdle -= ArmMemoryReturn;
        _memoryReturn?.Dispose();
        _memoryReturn = null;
    }

    private void ArmMemoryReturn() => _memoryReturn?.Change(_admission.Options.ReturnMemoryAfterIdle, Timeout.InfiniteTimeSpan);

    // A request that arrived meanwhile keeps its memory; the next idle moment arms the timer again.
    private void ReturnMemoryIfIdle()
    {
        if (!_admission.IsIdle)
        {
            return;
        }

        decoder.ReleaseRetainedMemory();
        EngineArrayPool.ReleaseAll();
        GC.Collect(GC.MaxGeneration, GCCollectionMode.Aggressive, blocking: true, compacting: true);
        NativeMemoryTrim.Trim();
        Interlocked.Increment(ref _memoryReturns);
    }
}
