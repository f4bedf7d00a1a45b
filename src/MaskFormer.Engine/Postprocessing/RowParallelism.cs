namespace MaskFormer.Engine.Postprocessing;

/// <summary>
/// How many threads a post-processing pass may use. Small images run on the caller's thread: splitting
/// them costs more in scheduling than it saves. A large one's pass uses the cores divided among the
/// images being post-processed at that moment (<see cref="Enter"/>): alone, every core; beside as many
/// others as there are cores, its own thread. Under load every core already has an image, and splitting
/// each across all of them adds fork, join and the thread pool's spinning for no more cores.
/// </summary>
internal static class RowParallelism
{
    // About a quarter of a million mask values: below this a pass takes well under a millisecond.
    private const long ParallelThreshold = 1L << 18;

    // Options per degree, 1 to the core count, made once: a pass asks for them several times an image.
    private static readonly ParallelOptions[] s_byDegree = OptionsByDegree(Environment.ProcessorCount, scheduler: null);

    private static readonly ParallelOptions s_unbounded = new();

    private static int s_images;
    private static int s_maxThreads = int.MaxValue;

    /// <summary>Caps the threads of one image's pass (InferenceOptions.PostprocessThreads; 0: no cap but the cores).</summary>
    public static void Configure(int maxThreads) => Volatile.Write(ref s_maxThreads, maxThreads > 0 ? maxThreads : int.MaxValue);

    /// <summary>Counts one image as being post-processed until the scope is disposed.</summary>
    public static ImageScope Enter()
    {
        Interlocked.Increment(ref s_images);
        return new ImageScope();
    }

    public static ParallelOptions For(int width, int height, int queries) => ForWork((long)width * height * Math.Max(1, queries));

    /// <summary>
    /// Options for a pass of about <paramref name="work"/> multiply-adds; on a post-processing thread
    /// (<see cref="IdleThreadScheduler"/>), with its scheduler, so that the pass stays on those threads.
    /// </summary>
    public static ParallelOptions ForWork(long work)
    {
        var options = IdleThreadScheduler.OfCurrentThread?.OptionsByDegree ?? s_byDegree;
        return work >= ParallelThreshold ? options[Math.Min(Degree, options.Length) - 1] : options[0];
    }

    /// <summary>Options for the modes of one image side by side: no limit of their own, on the post-processing threads where the caller is one.</summary>
    public static ParallelOptions ForModes() => IdleThreadScheduler.OfCurrentThread?.Unbounded ?? s_unbounded;

    /// <summary>The threads a large pass may use now: the cores shared among the images being post-processed.</summary>
    public static int Degree => DegreeFor(s_byDegree.Length, Volatile.Read(ref s_images), Volatile.Read(ref s_maxThreads));

    /// <summary>
    /// <paramref name="cores"/> divided among <paramref name="images"/> (the image asking counts), rounded up
    /// so that no core is left out (9 images on 16 cores: 2 each), at most <paramref name="maxThreads"/>.
    /// </summary>
    internal static int DegreeFor(int cores, int images, int maxThreads) => Math.Clamp((cores + Math.Max(1, images) - 1) / Math.Max(1, images), 1, Math.Max(1, Math.Min(cores, maxThreads)));

    /// <summary>Loop options for 1 to <paramref name="degrees"/> threads, on <paramref name="scheduler"/> (null: the loops' default).</summary>
    internal static ParallelOptions[] OptionsByDegree(int degrees, TaskScheduler? scheduler) =>
        [.. Enumerable.Range(1, degrees).Select(d => new ParallelOptions { MaxDegreeOfParallelism = d, TaskScheduler = scheduler })];

    /// <summary>Ends one image's post-processing (<see cref="Enter"/>).</summary>
    public readonly struct ImageScope : IDisposable
    {
        public void Dispose() => Interlocked.Decrement(ref s_images);
    }
}
