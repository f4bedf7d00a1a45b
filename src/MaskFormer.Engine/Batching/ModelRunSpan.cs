using System.Diagnostics;
using MaskFormer.Engine.Diagnostics;

namespace MaskFormer.Engine.Batching;

/// <summary>
/// The span of one batched model run. It serves several requests, often of different traces, so it
/// links to every request span it served (OpenTelemetry's pattern for batch operations) and is a child
/// of the first of them that is sampled, so a sampled request's trace shows the run it rode in.
/// </summary>
internal static class ModelRunSpan
{
    public const string Name = "maskformer.model_run";

    public static Activity? Start(List<BatchWorkItem> batch, string device, ModelTelemetry model)
    {
        if (!MaskFormerTelemetry.ActivitySource.HasListeners())
        {
            return null;
        }

        var links = new List<ActivityLink>(batch.Count);
        ActivityContext parent = default;
        foreach (var item in batch)
        {
            if (item.TraceContext == default)
            {
                continue;
            }

            links.Add(new ActivityLink(item.TraceContext));
            if (parent == default || ((parent.TraceFlags & ActivityTraceFlags.Recorded) == 0 && (item.TraceContext.TraceFlags & ActivityTraceFlags.Recorded) != 0))
            {
                parent = item.TraceContext;
            }
        }

        if (parent == default)
        {
            // Only the warm-up's synthetic requests: nothing to trace.
            return null;
        }

        TagList tags = default;
        tags.Add(TelemetryTags.ModelName, model.Name);
        tags.Add(TelemetryTags.ModelVersion, model.Version);
        tags.Add(TelemetryTags.Device, device);
        tags.Add(TelemetryTags.BatchSize, batch.Count);
        return MaskFormerTelemetry.ActivitySource.StartActivity(Name, ActivityKind.Internal, parent, tags, links);
    }
}
