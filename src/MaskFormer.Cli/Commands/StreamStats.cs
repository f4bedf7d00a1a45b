using System.Globalization;
using MaskFormer.Contracts.V1;

namespace MaskFormer.Cli.Commands;

/// <summary>
/// Answers counted as they arrive. Latency runs from just before a frame is written to the stream to
/// the moment its answer is read, so the client's own drawing and encoding are not in it.
/// </summary>
internal sealed class StreamStats
{
    private readonly List<double> _latencies = [];
    private readonly Lock _sync = new();
    private int _results;
    private int _errors;
    private int _skipped;
    private TimeSpan _lastAnswer;
    private StreamStatus? _status;

    public int Errors
    {
        get
        {
            lock (_sync)
            {
                return _errors;
            }
        }
    }

    /// <summary>Counts an answer read <paramref name="at"/> (since the stream began), <paramref name="latency"/> after its frame was sent.</summary>
    public void Record(SegmentStreamResponse response, TimeSpan latency, TimeSpan at)
    {
        lock (_sync)
        {
            _lastAnswer = at;
            switch (response.OutcomeCase)
            {
                case SegmentStreamResponse.OutcomeOneofCase.Result:
                    _results++;
                    _latencies.Add(latency.TotalMilliseconds);
                    break;
                case SegmentStreamResponse.OutcomeOneofCase.Error:
                    _errors++;
                    break;
                default:
                    _skipped++;
                    break;
            }
        }
    }

    /// <summary>Keeps the server's latest status message.</summary>
    public void Record(StreamStatus status)
    {
        lock (_sync)
        {
            _status = status;
        }
    }

    /// <summary>Counts, answers per second up to the last answer, and latency percentiles; the server's figures when it sent some.</summary>
    public string Describe()
    {
        lock (_sync)
        {
            var elapsed = _lastAnswer;
            var sorted = _latencies.Order().ToArray();
            var p50 = sorted.Length > 0 ? sorted[sorted.Length / 2] : 0;
            var p95 = sorted.Length > 0 ? sorted[Math.Min(sorted.Length - 1, (int)(sorted.Length * 0.95))] : 0;
            var client = string.Create(CultureInfo.InvariantCulture, $"{_results} done, {_skipped} skipped, {_errors} errors | {_results / Math.Max(elapsed.TotalSeconds, 1e-3):F1} fps | latency p50 {p50:F0} ms p95 {p95:F0} ms");
            return _status is { } status
                ? string.Create(CultureInfo.InvariantCulture, $"{client} | server {status.AchievedFps:F1} fps (sustainable {status.SustainableFps:F1}), age p50 {status.ResultAge.P50Ms:F0} p99 {status.ResultAge.P99Ms:F0} ms, {status.FramesSkipped} skipped, {status.MaxInFlight} in flight")
                : client;
        }
    }

    /// <summary>The server's final figures against the contract, one line; null when it sent no status.</summary>
    public string? ServerSummary(LatencyContract? contract)
    {
        lock (_sync)
        {
            if (_status is not { } status)
            {
                return null;
            }

            var skips = status.Skips.Count == 0 ? "none" : string.Join(", ", status.Skips.Select(s => $"{SkipName(s.Reason)} {s.Count}"));
            return string.Create(
                CultureInfo.InvariantCulture,
                $"server: {DescribeContract(contract)} | achieved {status.AchievedFps:F1} fps, sustainable {status.SustainableFps:F1} fps | result age p50 {status.ResultAge.P50Ms:F0} p90 {status.ResultAge.P90Ms:F0} p99 {status.ResultAge.P99Ms:F0} max {status.ResultAge.MaxMs:F0} ms | {status.FramesAnswered} answered, {status.FramesSkipped} skipped ({skips}), {status.FramesFailed} failed of {status.FramesReceived} | {status.MaxInFlight} in flight, scale {status.OutputScale:0.##}");
        }
    }

    /// <summary>"target 30 fps, max age 100 ms", or "no target".</summary>
    public static string DescribeContract(LatencyContract? contract)
    {
        if (contract is null || (contract.TargetFps <= 0 && contract.MaxAgeMs == 0))
        {
            return "no target";
        }

        var parts = new List<string>();
        if (contract.TargetFps > 0)
        {
            parts.Add(string.Create(CultureInfo.InvariantCulture, $"target {contract.TargetFps:0.##} fps"));
        }

        if (contract.MaxAgeMs > 0)
        {
            parts.Add(string.Create(CultureInfo.InvariantCulture, $"max age {contract.MaxAgeMs} ms"));
        }

        return string.Join(", ", parts);
    }

    private static string SkipName(SkipReason reason) => reason switch
    {
        SkipReason.TooOld => "too_old",
        SkipReason.Superseded => "superseded",
        SkipReason.DroppedOldest => "dropped_oldest",
        SkipReason.StreamEnded => "stream_ended",
        _ => reason.ToString().ToLowerInvariant(),
    };
}
