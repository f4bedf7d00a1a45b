using System.Buffers;

namespace MaskFormer.Engine;

/// <summary>
/// The engine's array pools, one per element type, each replaced by an empty pool when the engine gives
/// memory back after a burst (<see cref="ReleaseAll"/>). <see cref="ArrayPool{T}.Shared"/> lets go of an
/// idle array only one per bucket and per full garbage collection at least a minute apart, so the buffers
/// of one burst of large images stayed resident for many minutes (issue 10 item 3).
/// </summary>
internal static class EngineArrayPool
{
    private static readonly Lock s_gate = new();
    private static readonly List<Action> s_releases = [];

    /// <summary>Replaces every element type's pool by an empty one; arrays rented before may still be returned (and are let go).</summary>
    public static void ReleaseAll()
    {
        Action[] releases;
        lock (s_gate)
        {
            releases = [.. s_releases];
        }

        foreach (var release in releases)
        {
            release();
        }
    }

    internal static void Register(Action release)
    {
        lock (s_gate)
        {
            s_releases.Add(release);
        }
    }
}

/// <summary>The pool of <typeparamref name="T"/> arrays the engine rents its buffers from.</summary>
internal static class EngineArrayPool<T>
{
    // Buckets up to 2^30 elements, as the shared pool, so a 1080p image's buffers are pooled too. An array
    // rented before a release and returned after it is let go by the new pool (it holds only what it lent).
    private static ArrayPool<T> s_pool = Create();

    static EngineArrayPool() => EngineArrayPool.Register(() => Volatile.Write(ref s_pool, Create()));

    public static ArrayPool<T> Shared => Volatile.Read(ref s_pool);

    private static ArrayPool<T> Create() => ArrayPool<T>.Create(maxArrayLength: 1 << 30, maxArraysPerBucket: 32);
}
