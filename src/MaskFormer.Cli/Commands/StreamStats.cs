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

    /// <summary>Counts, answers per second up to the last answer, and latency percentiles.</summary>
    public string Describe()
    {
        lock (_sync)
        {
            var elapsed = _lastAnswer;
            var sorted = _latencies.Order().ToArray();
            var p50 = sorted.Length > 0 ? sorted[sorted.Length / 2] : 0;
            var p95 = sorted.Length > 0 ? sorted[Math.Min(sorted.Length - 1, (int)(sorted.Length * 0.95))] : 0;
            return $"{_results} done, {_skipped} skipped, {_errors} errors | {_results / Math.Max(elapsed.TotalSeconds, 1e-3):F1} fps | latency p50 {p50:F0} ms p95 {p95:F0} ms";
        }
    }
}
