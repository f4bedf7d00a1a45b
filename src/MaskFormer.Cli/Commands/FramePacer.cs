namespace MaskFormer.Cli.Commands;

/// <summary>
/// Sends frame i at start + i / fps, the way a camera or a played video delivers them. The schedule is
/// absolute, so a late frame does not push every later one back.
/// </summary>
internal sealed class FramePacer(double framesPerSecond, TimeProvider time)
{
    private long _start = -1;

    public double FramesPerSecond { get; } = framesPerSecond > 0
        ? framesPerSecond
        : throw new UsageException($"--fps {framesPerSecond}: the frame rate must be above 0.");

    /// <summary>How long to wait before frame <paramref name="index"/> when <paramref name="elapsed"/> has passed since frame 0.</summary>
    public TimeSpan DelayBefore(long index, TimeSpan elapsed)
    {
        var due = TimeSpan.FromSeconds(index / FramesPerSecond);
        return due > elapsed ? due - elapsed : TimeSpan.Zero;
    }

    public Task WaitAsync(long index, CancellationToken cancellationToken)
    {
        if (_start < 0)
        {
            _start = time.GetTimestamp();
        }

        var delay = DelayBefore(index, time.GetElapsedTime(_start));
        return delay > TimeSpan.Zero ? Task.Delay(delay, time, cancellationToken) : Task.CompletedTask;
    }
}
