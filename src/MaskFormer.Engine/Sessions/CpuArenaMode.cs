namespace MaskFormer.Engine.Sessions;

/// <summary>What ONNX Runtime's CPU memory arena does with memory a model run no longer uses.</summary>
public enum CpuArenaMode
{
    /// <summary>
    /// The arena is shrunk at the end of every run (the run option
    /// <c>memory.enable_memory_arena_shrinkage = cpu:0</c>): memory a large image needed goes back.
    /// </summary>
    Shrink,

    /// <summary>ONNX Runtime's default: the arena only grows, to the largest input seen.</summary>
    Keep,

    /// <summary>No arena: every tensor is allocated and freed on its own.</summary>
    Off,
}
