using System.Diagnostics;

namespace MaskFormer.Engine.Diagnostics;

/// <summary>
/// One served model's telemetry: records each request and model run into the shared instruments
/// (tagged with the model) and into the running totals that <see cref="Snapshot"/> returns.
/// </summary>
public sealed class ModelTelemetry
{
    private readonly long[] _batchCounts;
    private readonly long[] _batchTicks;
    private long _success;
    private long _successTicks;
    private long _failure;
    private long _failureTicks;
    private long _queued;
    private long _queueTicks;
    private long _computeTicks;
    private long _executions;
    private long _inferences;
    private long _lastInferenceUnixMs;
    private volatile bool _recording;

    internal ModelTelemetry(string name, string version, int maxBatchSize)
    {
        Name = name;
        Version = version;
        ModelTags = [new(TelemetryTags.ModelName, name), new(TelemetryTags.ModelVersion, version)];
        _batchCounts = new long[maxBatchSize];
        _batchTicks = new long[maxBatchSize];
    }

    /// <summary>The model's name.</summary>
    public string Name { get; }

    /// <summary>The model's version.</summary>
    public string Version { get; }

    internal KeyValuePair<string, object?>[] ModelTags { get; }

    /// <summary>Starts recording; until then (the warm-up's synthetic requests) nothing is counted.</summary>
    internal void Start() => _recording = true;

    /// <summary>The totals since start.</summary>
    public ModelStatistics Snapshot() => new()
    {
        Name = Name,
        Version = Version,
        LastInference = Interlocked.Read(ref _lastInferenceUnixMs) is > 0 and var ms ? DateTimeOffset.FromUnixTimeMilliseconds(ms) : null,
        InferenceCount = Interlocked.Read(ref _inferences),
        ExecutionCount = Interlocked.Read(ref _executions),
        Success = new(Interlocked.Read(ref _success), TimeSpan.FromTicks(Interlocked.Read(ref _successTicks))),
        Failure = new(Interlocked.Read(ref _failure), TimeSpan.FromTicks(Interlocked.Read(ref _failureTicks))),
        Queue = new(Interlocked.Read(ref _queued), TimeSpan.FromTicks(Interlocked.Read(ref _queueTicks))),
        ComputeInfer = new(Interlocked.Read(ref _queued), TimeSpan.FromTicks(Interlocked.Read(ref _computeTicks))),
        Batches = [.. Enumerable.Range(0, _batchCounts.Length)
            .Where(i => Interlocked.Read(ref _batchCounts[i]) > 0)
            .Select(i => new BatchStatistics(i + 1, new(Interlocked.Read(ref _batchCounts[i]), TimeSpan.FromTicks(Interlocked.Read(ref _batchTicks[i])))))],
    };

    internal void RecordRequest(SegmentationTasks tasks, TimeSpan duration, string? errorType)
    {
        if (!_recording)
        {
            return;
        }

        var tags = new TagList { { TelemetryTags.ModelName, Name }, { TelemetryTags.ModelVersion, Version }, { TelemetryTags.Tasks, TelemetryTags.Label(tasks) } };
        if (errorType is not null)
        {
            tags.Add(TelemetryTags.ErrorType, errorType);
            Interlocked.Increment(ref _failure);
            Interlocked.Add(ref _failureTicks, duration.Ticks);
        }
        else
        {
            Interlocked.Increment(ref _success);
            Interlocked.Add(ref _successTicks, duration.Ticks);
        }

        EngineMetrics.Requests.Add(1, tags);
        EngineMetrics.RequestDuration.Record(duration.TotalSeconds, tags);
    }

    internal void RecordImage(int width, int height)
    {
        if (_recording)
        {
            EngineMetrics.ImagePixels.Record((long)width * height, ModelTags);
        }
    }

    /// <summary>A request's share of a model run: its queue wait, and the run it rode in.</summary>
    internal void RecordQueued(TimeSpan queueTime, TimeSpan inferenceTime)
    {
        if (!_recording)
        {
            return;
        }

        Interlocked.Increment(ref _queued);
        Interlocked.Add(ref _queueTicks, queueTime.Ticks);
        Interlocked.Add(ref _computeTicks, inferenceTime.Ticks);
        EngineMetrics.QueueDuration.Record(queueTime.TotalSeconds, ModelTags);
    }

    internal void RecordModelRun(int batchSize, TimeSpan duration, string device)
    {
        if (!_recording)
        {
            return;
        }

        Interlocked.Increment(ref _executions);
        Interlocked.Add(ref _inferences, batchSize);
        Interlocked.Exchange(ref _lastInferenceUnixMs, DateTimeOffset.UtcNow.ToUnixTimeMilliseconds());
        if (batchSize <= _batchCounts.Length)
        {
            Interlocked.Increment(ref _batchCounts[batchSize - 1]);
            Interlocked.Add(ref _batchTicks[batchSize - 1], duration.Ticks);
        }

        var tags = new TagList { { TelemetryTags.ModelName, Name }, { TelemetryTags.ModelVersion, Version }, { TelemetryTags.Device, device } };
        EngineMetrics.BatchSize.Record(batchSize, tags);
        EngineMetrics.ModelRunDuration.Record(duration.TotalSeconds, tags);
        EngineMetrics.SessionBusyTime.Add(duration.TotalSeconds, tags);
    }
}
