using System.Collections.Concurrent;
using System.Diagnostics.Metrics;

namespace MaskFormer.Engine.Diagnostics;

/// <summary>
/// The engine's instruments, created once on <see cref="MaskFormerTelemetry.Meter"/>. Names and units
/// follow OpenTelemetry's conventions (seconds for durations, UCUM annotations for counts); the README's
/// metric table lists them.
/// </summary>
internal static class EngineMetrics
{
    private static readonly ConcurrentDictionary<ModelTelemetry, Func<int>> s_queues = new();
    private static readonly ConcurrentDictionary<Admission.AdmissionGate, byte> s_gates = new();

    public static readonly Counter<long> Requests = MaskFormerTelemetry.Meter.CreateCounter<long>(
        "maskformer.requests", "{request}", "Images the engine was asked to segment, by model, tasks and error.type (absent on success).");

    public static readonly Histogram<double> RequestDuration = MaskFormerTelemetry.Meter.CreateHistogram(
        "maskformer.request.duration", "s", "One image from decode to post-processed result, by model, tasks and error.type.",
        advice: new InstrumentAdvice<double> { HistogramBucketBoundaries = MaskFormerTelemetry.DurationBuckets });

    public static readonly Histogram<double> QueueDuration = MaskFormerTelemetry.Meter.CreateHistogram(
        "maskformer.queue.duration", "s", "Time a request waited for a batch and a free session, by model.",
        advice: new InstrumentAdvice<double> { HistogramBucketBoundaries = MaskFormerTelemetry.DurationBuckets });

    public static readonly Histogram<int> BatchSize = MaskFormerTelemetry.Meter.CreateHistogram(
        "maskformer.batch.size", "{image}", "Images per model run, by model and device.",
        advice: new InstrumentAdvice<int> { HistogramBucketBoundaries = [1, 2, 3, 4, 6, 8, 12, 16, 24, 32, 64, 128, 256] });

    public static readonly Histogram<double> ModelRunDuration = MaskFormerTelemetry.Meter.CreateHistogram(
        "maskformer.model_run.duration", "s", "One batched model run, by model and device.",
        advice: new InstrumentAdvice<double> { HistogramBucketBoundaries = MaskFormerTelemetry.DurationBuckets });

    public static readonly Counter<double> SessionBusyTime = MaskFormerTelemetry.Meter.CreateCounter<double>(
        "maskformer.session.busy_time", "s", "Time sessions spent running the model, by model and device; its rate over time is the busy fraction.");

    public static readonly Histogram<long> ImagePixels = MaskFormerTelemetry.Meter.CreateHistogram(
        "maskformer.image.pixels", "{pixel}", "Decoded image size (width x height), by model.",
        advice: new InstrumentAdvice<long> { HistogramBucketBoundaries = [4096, 16384, 65536, 262144, 1048576, 2097152, 4194304, 8388608, 16777216, 40000000] });

    public static readonly Counter<long> DecodeFailures = MaskFormerTelemetry.Meter.CreateCounter<long>(
        "maskformer.decode.failures", "{image}", "Images that could not be decoded, by sniffed format (png, jpeg, ..., raw, unknown).");

    public static readonly Counter<long> AdmissionRejected = MaskFormerTelemetry.Meter.CreateCounter<long>(
        "maskformer.admission.rejected", "{request}", "Requests admission control turned away (RESOURCE_EXHAUSTED with RetryInfo).");

    static EngineMetrics()
    {
        MaskFormerTelemetry.Meter.CreateObservableUpDownCounter(
            "maskformer.queue.size", ObserveQueues, "{request}", "Requests waiting for a batch now, by model.");
        MaskFormerTelemetry.Meter.CreateObservableUpDownCounter(
            "maskformer.admission.running", () => s_gates.Keys.Sum(g => g.GetCounters().Running), "{request}", "Requests decoding, pre-processing, post-processing or encoding now (at most MaskFormer:Admission:MaxConcurrency).");
        MaskFormerTelemetry.Meter.CreateObservableUpDownCounter(
            "maskformer.admission.pixels", () => s_gates.Keys.Sum(g => g.GetCounters().PixelsInFlight), "{pixel}", "Pixels of requests between decoding and encoded result now (at most MaskFormer:Admission:MaxPixelsInFlight).");
        MaskFormerTelemetry.Meter.CreateObservableUpDownCounter(
            "maskformer.admission.waiting", () => s_gates.Keys.Sum(g => g.GetCounters().Waiting), "{request}", "Requests waiting for admission control now.");
    }

    /// <summary>Reports the gate's state until <see cref="Untrack(Admission.AdmissionGate)"/>.</summary>
    public static void Track(Admission.AdmissionGate gate) => s_gates[gate] = 0;

    public static void Untrack(Admission.AdmissionGate gate) => s_gates.TryRemove(gate, out _);

    /// <summary>Reports <paramref name="queued"/> as the model's queue size until <see cref="Untrack(ModelTelemetry)"/>.</summary>
    public static void Track(ModelTelemetry model, Func<int> queued) => s_queues[model] = queued;

    public static void Untrack(ModelTelemetry model) => s_queues.TryRemove(model, out _);

    private static IEnumerable<Measurement<int>> ObserveQueues() =>
        s_queues.Select(entry => new Measurement<int>(entry.Value(), entry.Key.ModelTags));
}
