namespace MaskFormer.Engine.Batching;

/// <summary>A snapshot of a model's scheduler.</summary>
public sealed record SchedulerCounters
{
    /// <summary>Requests waiting in the queue now.</summary>
    public required int Queued { get; init; }

    /// <summary>Requests taken into a batch and not yet answered.</summary>
    public required int InFlight { get; init; }

    /// <summary>Requests answered by a model run since the model was ready (warm-up not counted).</summary>
    public required long Completed { get; init; }

    /// <summary>Requests turned away because the queue was full.</summary>
    public required long Rejected { get; init; }

    /// <summary>Requests dropped because their deadline passed while queued.</summary>
    public required long Expired { get; init; }

    /// <summary>Requests that left the queue because their caller cancelled.</summary>
    public required long Cancelled { get; init; }

    /// <summary>Times a caller found the queue full and waited for room instead of being turned away (QUEUE-policy stream frames).</summary>
    public long WaitedForRoom { get; init; }

    /// <summary>Model runs since start.</summary>
    public required long Batches { get; init; }

    /// <summary>Model runs that threw: their requests failed, the session went on serving.</summary>
    public long FailedRuns { get; init; }

    /// <summary>Model runs past the run timeout: their requests (none for a replacement's warm-up run) were answered UNAVAILABLE and the session replaced.</summary>
    public long HungRuns { get; init; }

    /// <summary>Model runs by batch size: element i counts runs of i + 1 images.</summary>
    public required IReadOnlyList<long> BatchSizeCounts { get; init; }

    /// <summary>The largest batch run so far.</summary>
    public int LargestBatch => BatchSizeCounts.Select((count, i) => count > 0 ? i + 1 : 0).DefaultIfEmpty(0).Max();
}
