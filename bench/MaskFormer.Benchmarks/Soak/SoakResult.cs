using System.Globalization;

namespace MaskFormer.Benchmarks.Soak;

/// <summary>What a soak run saw; <see cref="Violations"/> empty means every property held.</summary>
internal sealed class SoakResult
{
    private readonly List<string> _violations = [];

    public required SoakSettings Settings { get; init; }

    public List<string> Violations
    {
        get
        {
            lock (_violations)
            {
                return [.. _violations];
            }
        }
    }

    public long FramesSent;
    public long FrameResults;
    public long FramesSkipped;
    public long FrameErrorsResourceExhausted;
    public long UnaryOk;
    public long UnaryResourceExhausted;
    public long DisconnectedFramesSent;
    public TimeSpan StreamsElapsed;
    public TimeSpan Elapsed;
    public long IdleRss;
    public long StartRss;
    public long PeakRss;
    public long EndRss;
    public long AfterDisconnectsRss;
    public double SlopeMiBPerMinute;
    public IReadOnlyList<(double Seconds, long Bytes)> RssTimeline = [];
    public double ActiveStreamsAfter = double.NaN;
    public double QueueAfter = double.NaN;

    public long FramesAnswered => FrameResults + FramesSkipped + FrameErrorsResourceExhausted;

    public void Violation(string message)
    {
        lock (_violations)
        {
            // One line per kind is enough to see what failed; the count says how often.
            if (_violations.Count < 50)
            {
                _violations.Add(message);
            }
        }
    }

    public IEnumerable<string> Report()
    {
        static string MiB(long bytes) => (bytes / 1048576.0).ToString("F0", CultureInfo.InvariantCulture);
        var s = Settings;
        yield return $"soak: {s.Streams} streams x {s.FramesPerStream} frames (paced over {s.Duration.TotalSeconds:F0} s, max_in_flight {s.MaxInFlight}) + {s.UnaryCallers} unary callers for {s.Duration.TotalSeconds:F0} s, then {s.Disconnects} streams disconnected mid-stream; {Environment.ProcessorCount} cores, load average {LoadAverage()}";
        yield return "";
        yield return "| frames sent | answered once | results | skipped (DROP_OLDEST / LATEST_ONLY) | per-frame RESOURCE_EXHAUSTED | unary OK | unary RESOURCE_EXHAUSTED + RetryInfo | streams done in | run |";
        yield return "| ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: |";
        yield return $"| {FramesSent} | {FramesAnswered} | {FrameResults} | {FramesSkipped} | {FrameErrorsResourceExhausted} | {UnaryOk} ({UnaryOk / s.Duration.TotalSeconds:F1}/s) | {UnaryResourceExhausted} | {StreamsElapsed.TotalSeconds:F0} s | {Elapsed.TotalSeconds:F0} s |";
        yield return "";
        yield return "| RSS idle | start of load | peak | end of load | slope, second half | after disconnects | open streams after | queue after |";
        yield return "| ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: |";
        yield return $"| {MiB(IdleRss)} MiB | {MiB(StartRss)} MiB | {MiB(PeakRss)} MiB | {MiB(EndRss)} MiB | {SlopeMiBPerMinute:+0.0;-0.0} MiB/min | {MiB(AfterDisconnectsRss)} MiB | {ActiveStreamsAfter} | {QueueAfter} |";
        yield return "";
        yield return $"RSS during the load (s: MiB): {string.Join(", ", RssTimeline.Select(t => $"{t.Seconds:F0}: {MiB(t.Bytes)}"))}";
        yield return "";
        var violations = Violations;
        yield return violations.Count == 0 ? "PASS: every frame answered exactly once, only OK and documented overload outcomes, memory flat, nothing left after disconnects" : $"FAIL ({violations.Count}):";
        foreach (var violation in violations)
        {
            yield return $"- {violation}";
        }
    }

    private static string LoadAverage()
    {
        try
        {
            return File.ReadAllText("/proc/loadavg").Split(' ')[0];
        }
        catch (IOException)
        {
            return "?";
        }
    }
}
