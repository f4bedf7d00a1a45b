namespace MaskFormer.Engine.Postprocessing;

/// <summary>
/// How many threads a post-processing pass may use. Small images run on the caller's thread: under
/// load many requests post-process at once and share the cores with ONNX Runtime, so splitting a small
/// image across threads costs more in scheduling than it saves.
/// </summary>
internal static class RowParallelism
{
    // About a quarter of a million mask values: below this a pass takes well under a millisecond.
    private const long ParallelThreshold = 1L << 18;

    private static readonly ParallelOptions s_sequential = new() { MaxDegreeOfParallelism = 1 };
    private static readonly ParallelOptions s_parallel = new();

    public static ParallelOptions For(int width, int height, int queries) =>
        (long)width * height * Math.Max(1, queries) >= ParallelThreshold ? s_parallel : s_sequential;
}
