using MaskFormer.Engine.Batching;
using MaskFormer.Engine.Diagnostics;
using MaskFormer.Engine.Models;
using MaskFormer.Engine.Preprocessing;
using MaskFormer.Engine.Sessions;

namespace MaskFormer.Engine;

/// <summary>A model loaded into sessions and ready to take requests.</summary>
public sealed class ServedModel : IAsyncDisposable
{
    private int _numQueries;

    internal ServedModel(ModelFolder folder, BatchScheduler scheduler, int numQueries, bool isDefault)
    {
        Folder = folder;
        Scheduler = scheduler;
        Preprocessor = new ImagePreprocessor(folder.Preprocessor);
        _numQueries = numQueries;
        IsDefault = isDefault;
    }

    /// <summary>The model's files and configs.</summary>
    public ModelFolder Folder { get; }

    /// <summary>The name requests use.</summary>
    public string Name => Folder.Name;

    /// <summary>The version.</summary>
    public string Version => Folder.Version;

    /// <summary>The labels, by id.</summary>
    public IReadOnlyList<Models.ModelLabel> Labels => Folder.Config.Labels;

    /// <summary>
    /// Number of queries: as the config states it, else as the model's first output (the warm-up's, when
    /// on) gave it; 0 until then.
    /// </summary>
    public int NumQueries => Volatile.Read(ref _numQueries);

    /// <summary>True for the model used when a request names none.</summary>
    public bool IsDefault { get; }

    /// <summary>The tasks this engine can answer with this model.</summary>
#pragma warning disable CA1822 // Per model once exports without mask outputs (semantic-only) are served.
    public SegmentationTasks SupportedTasks => SegmentationTasks.Semantic | SegmentationTasks.Instance | SegmentationTasks.Panoptic;
#pragma warning restore CA1822

    /// <summary>Where each session runs.</summary>
    public IReadOnlyList<SessionPlacement> Placements => [.. Scheduler.Sessions.Select(s => s.Placement)];

    /// <summary>This model's telemetry: its statistics since start.</summary>
    public ModelTelemetry Telemetry => Scheduler.Telemetry;

    /// <summary>The scheduler's counters now.</summary>
    public SchedulerCounters GetCounters() => Scheduler.GetCounters();

    internal ImagePreprocessor Preprocessor { get; }

    // An export with a dynamic query axis and a config without num_queries (transformers' MaskFormer
    // keeps it in decoder_config; a hand-written config.json may leave it out) says it in its output.
    internal void ObserveQueries(int queries)
    {
        if (Volatile.Read(ref _numQueries) == 0)
        {
            Interlocked.CompareExchange(ref _numQueries, queries, 0);
        }
    }

    internal BatchScheduler Scheduler { get; }

    /// <inheritdoc />
    public ValueTask DisposeAsync() => Scheduler.DisposeAsync();
}
