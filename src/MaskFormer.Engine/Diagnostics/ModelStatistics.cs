namespace MaskFormer.Engine.Diagnostics;

/// <summary>A count and the total time it took, as Triton's statistics extension reports them.</summary>
/// <param name="Count">How many.</param>
/// <param name="Total">Their summed duration.</param>
public sealed record StatisticDuration(long Count, TimeSpan Total);

/// <summary>Model runs of one batch size.</summary>
/// <param name="BatchSize">Images per run.</param>
/// <param name="ComputeInfer">Runs of that size and their summed duration.</param>
public sealed record BatchStatistics(int BatchSize, StatisticDuration ComputeInfer);

/// <summary>Per-model totals since start, in the shape of Triton's statistics extension.</summary>
public sealed record ModelStatistics
{
    /// <summary>The model's name.</summary>
    public required string Name { get; init; }

    /// <summary>The model's version.</summary>
    public required string Version { get; init; }

    /// <summary>When the model last ran, or null if it never has.</summary>
    public DateTimeOffset? LastInference { get; init; }

    /// <summary>Images run through the model.</summary>
    public required long InferenceCount { get; init; }

    /// <summary>Model runs (batches).</summary>
    public required long ExecutionCount { get; init; }

    /// <summary>Requests answered, and their time from decode to result.</summary>
    public required StatisticDuration Success { get; init; }

    /// <summary>Requests that failed, and their time until they failed.</summary>
    public required StatisticDuration Failure { get; init; }

    /// <summary>Requests that reached a model run, and their summed queue wait.</summary>
    public required StatisticDuration Queue { get; init; }

    /// <summary>Requests that reached a model run, and their summed share of the run's time.</summary>
    public required StatisticDuration ComputeInfer { get; init; }

    /// <summary>Model runs per batch size (only sizes that ran).</summary>
    public required IReadOnlyList<BatchStatistics> Batches { get; init; }
}
