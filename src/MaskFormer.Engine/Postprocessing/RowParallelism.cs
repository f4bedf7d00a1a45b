namespace MaskFormer.Engine.Postprocessing;

/// <summary>
/// How many threads a post-processing pass may use. Small images run on the caller's thread: under
/// load many requests post-process at once and share the cores with ONNX Runtime, so splitting a small
/// image across threads costs more in scheduling than it saves. A large one uses the idle cores, never
/// more threads than there are cores.
/// </summary>
internal static class RowParallelism
{
    // About a quarter of a million mask values: below this a pass takes well under a millisecond.
    private const long ParallelThreshold = 1L << 18;

    private static readonly ParallelOptions s_sequential = new() { MaxDegreeOfParallelism = 1 };
    private static readonly ParallelOptions s_parallel = new() { MaxDegreeOfParallelism = Environment.ProcessorCount };

    public static ParallelOptions For(int width, int height, int queries) => ForWork((long)width * height * Math.Max(1, queries));

    /// <summary>Options for a pass of about <paramref name="work"/> multiply-adds.</summary>
    public static ParallelOptions ForWork(long work) => work >= ParallelThreshold ? s_parallel : s_sequential;
}
