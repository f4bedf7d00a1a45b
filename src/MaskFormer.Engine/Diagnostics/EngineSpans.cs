using System.Diagnostics;
using MaskFormer.Engine.Batching;

namespace MaskFormer.Engine.Diagnostics;

/// <summary>The engine's span names, and the spans whose times come from the scheduler's own timings.</summary>
internal static class EngineSpans
{
    public const string Segment = "maskformer.segment";
    public const string Decode = "maskformer.decode";
    public const string Preprocess = "maskformer.preprocess";
    public const string Queue = "maskformer.queue";
    public const string Postprocess = "maskformer.postprocess";

    /// <summary>A stage span, under the request's segment span; none without one (the warm-up's synthetic requests).</summary>
    public static Activity? Start(string name) =>
        Activity.Current is null ? null : MaskFormerTelemetry.ActivitySource.StartActivity(name);

    public static Activity? StartPostprocess(string task) => Start(Postprocess)?.SetTag(TelemetryTags.Task, task);

    /// <summary>The queue wait, recorded after the fact from the scheduler's measured wait so span and timing agree.</summary>
    public static void RecordQueue(DateTime enqueuedAt, BatchedOutput batched)
    {
        if (Activity.Current is null)
        {
            return;
        }

        var activity = MaskFormerTelemetry.ActivitySource.StartActivity(Queue, ActivityKind.Internal, parentContext: default, startTime: enqueuedAt);
        if (activity is not null)
        {
            activity.SetTag(TelemetryTags.BatchSize, batched.BatchSize);
            activity.SetEndTime(enqueuedAt + batched.QueueTime);
            activity.Dispose();
        }
    }

    public static void RecordDecodeFailure(ImageSource source, Activity? span)
    {
        var format = ImageFormatSniffer.Sniff(source);
        EngineMetrics.DecodeFailures.Add(1, new KeyValuePair<string, object?>(TelemetryTags.ImageFormat, format));
        span?.SetTag(TelemetryTags.ImageFormat, format);
    }
}
