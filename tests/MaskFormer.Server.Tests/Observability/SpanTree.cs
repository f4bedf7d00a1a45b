using System.Diagnostics;
using System.Text;

namespace MaskFormer.Server.Tests.Observability;

/// <summary>Renders spans as an indented tree (name, duration, chosen attributes, links), for assertions' messages and the report.</summary>
internal static class SpanTree
{
    private static readonly string[] s_shown = ["rpc.method", "rpc.grpc.status_code", "maskformer.model.name", "maskformer.device", "maskformer.batch.size", "maskformer.task", "maskformer.frame.index", "maskformer.frame.outcome", "maskformer.image.width", "maskformer.image.height"];

    public static string Render(IReadOnlyList<Activity> spans)
    {
        var text = new StringBuilder();
        var ids = spans.Select(s => s.SpanId).ToHashSet();
        foreach (var root in spans.Where(s => !ids.Contains(s.ParentSpanId)).OrderBy(s => s.StartTimeUtc))
        {
            Write(root, spans, 0, text);
        }

        return text.ToString();
    }

    private static void Write(Activity span, IReadOnlyList<Activity> spans, int depth, StringBuilder text)
    {
        var tags = string.Join(' ', s_shown.Select(key => (key, value: span.GetTagItem(key))).Where(t => t.value is not null).Select(t => $"{t.key}={t.value}"));
        var links = span.Links.Any() ? $" links=[{string.Join(',', span.Links.Select(l => l.Context.SpanId.ToHexString()[..8]))}]" : string.Empty;
        text.Append(' ', depth * 2).Append($"{span.DisplayName} [{span.SpanId.ToHexString()[..8]}] {span.Duration.TotalMilliseconds:F2} ms {tags}{links}").AppendLine();
        foreach (var child in spans.Where(s => s.ParentSpanId == span.SpanId).OrderBy(s => s.StartTimeUtc))
        {
            Write(child, spans, depth + 1, text);
        }
    }
}
