namespace MaskFormer.Engine.Admission;

/// <summary>A snapshot of the <see cref="AdmissionGate"/>: what it holds now and its totals since start.</summary>
public sealed record AdmissionCounters
{
    /// <summary>Requests in a gated stage (decode, pre-process, post-process, encode) now.</summary>
    public int Running { get; init; }

    /// <summary>Pixels of admitted requests not yet finished.</summary>
    public long PixelsInFlight { get; init; }

    /// <summary>Requests waiting to be admitted or to post-process.</summary>
    public int Waiting { get; init; }

    /// <summary>The most requests ever in gated stages at once.</summary>
    public int PeakRunning { get; init; }

    /// <summary>The most pixels ever in flight at once.</summary>
    public long PeakPixelsInFlight { get; init; }

    /// <summary>Requests admitted.</summary>
    public long Admitted { get; init; }

    /// <summary>Requests that had to wait to be admitted.</summary>
    public long Waited { get; init; }

    /// <summary>Requests turned away (waiting queue full, or their wait ran out).</summary>
    public long Rejected { get; init; }
}
