using System.Diagnostics;
using System.Diagnostics.Metrics;

namespace MaskFormer.Engine.Diagnostics;

/// <summary>
/// The service's one <see cref="System.Diagnostics.ActivitySource"/> and one <see cref="System.Diagnostics.Metrics.Meter"/>,
/// created once, as OpenTelemetry .NET's own instrumentation libraries do. The engine opens its spans
/// where it already takes stage timings; the host opens the call spans on the same source.
/// </summary>
public static class MaskFormerTelemetry
{
    /// <summary>The name of the activity source and the meter: what an OpenTelemetry set-up subscribes to.</summary>
    public const string Name = "MaskFormer";

    private static readonly string? s_version = typeof(MaskFormerTelemetry).Assembly.GetName().Version?.ToString();

    /// <summary>Every span the service opens.</summary>
    public static ActivitySource ActivitySource { get; } = new(Name, s_version);

    /// <summary>Every instrument the service records.</summary>
    public static Meter Meter { get; } = new(Name, s_version);

    /// <summary>Bucket boundaries for durations in seconds, from 0.5 ms to 10 s.</summary>
    public static IReadOnlyList<double> DurationBuckets { get; } = [0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.075, 0.1, 0.25, 0.5, 0.75, 1, 2.5, 5, 10];

    /// <summary>
    /// Starts a span without making it the current one, for spans that outlive the code that opens them
    /// (a stream's frames, answered later by another loop).
    /// </summary>
    public static Activity? StartDetached(string name, ActivityKind kind, ActivityContext parent, IEnumerable<KeyValuePair<string, object?>>? tags = null)
    {
        var previous = Activity.Current;
        var activity = ActivitySource.StartActivity(name, kind, parent, tags);
        Activity.Current = previous;
        return activity;
    }
}
