using System.Diagnostics;
using MaskFormer.Contracts.V1;

namespace MaskFormer.Benchmarks.Report;

/// <summary>
/// The steady-state part of a load cell. The first answers warm the path and let the callers (or the
/// stream's frames) settle; the window then runs until it has at least a set number of answers and a
/// set time. Answers come in groups (a batch's callers are answered together, and stay in step), so
/// counting answers between two arbitrary answers can miss or add a whole group; the window therefore
/// starts and ends at the answer with the longest gap after it among a group's worth of candidates,
/// the end of a group. Server CPU is sampled at every answer, so it covers the same interval.
/// </summary>
internal sealed class LoadWindow(ServerProcess server, int warm, int group, TimeSpan duration, int minImages, CancellationTokenSource stop)
{
    private const int MaxErrors = 100;

    private readonly Lock _lock = new();
    private readonly List<Answer> _answers = [];
    private readonly Stopwatch _clock = Stopwatch.StartNew();
    private int _errors;
    private string? _firstError;
    private bool _filled;

    /// <summary>Records an answer; closes the window (cancels <c>stop</c>) once it holds enough.</summary>
    public void Answered(double latencyMs, StageTimings timings)
    {
        var cpu = server.CpuTime();
        lock (_lock)
        {
            if (stop.IsCancellationRequested)
            {
                return;
            }

            _answers.Add(new Answer(_clock.Elapsed, cpu, latencyMs, timings));

            // Room for both ends' candidates, and one answer past the last, to see the gap after it.
            var first = warm - 1;
            var measured = _answers.Count - 1 - first;
            if (measured >= Math.Max(minImages, 1) + (2 * group) - 1 && _clock.Elapsed - _answers[first].At >= duration)
            {
                _filled = true;
                stop.Cancel();
            }
        }
    }

    /// <summary>Counts a failed call or frame; the first failure's description is kept for the report.</summary>
    public void Failed(string description)
    {
        Interlocked.CompareExchange(ref _firstError, description, null);
        if (Interlocked.Increment(ref _errors) == MaxErrors)
        {
            // The cell has failed; calls failing fast would otherwise repeat until its limit.
            stop.Cancel();
        }
    }

    /// <summary>
    /// The longest a cell may run: a server that stops answering (or a stream that ends) must fail the cell
    /// with what it saw, not hold the report (and CI) until something outside kills it.
    /// </summary>
    public static TimeSpan Limit(TimeSpan duration) => TimeSpan.FromSeconds(Math.Max(120, 10 * duration.TotalSeconds));

    /// <summary>Whether the window closed itself, holding its answers (not by its limit, its failures or the caller).</summary>
    public bool Filled
    {
        get
        {
            lock (_lock)
            {
                return _filled;
            }
        }
    }

    public CellResult Summarize(CellKey key, double wallSeconds)
    {
        lock (_lock)
        {
            if (!_filled)
            {
                // Closed by its limit, its failures or a stream that ended, before it held its answers.
                var last = _answers.Count > 0 ? $", the last {(_clock.Elapsed - _answers[^1].At).TotalSeconds:F0} s ago" : "";
                _firstError ??= $"the window did not fill: {_answers.Count} answers in {wallSeconds:F0} s{last} (it needs {warm + Math.Max(minImages, 1) + (2 * group)} over {duration.TotalSeconds:0.#} s)";
                _errors = Math.Max(_errors, 1);
            }

            var (start, end) = Bounds();
            var answers = end > start ? _answers[(start + 1)..(end + 1)] : [];
            var seconds = end > start ? (_answers[end].At - _answers[start].At).TotalSeconds : 0;
            var cpu = end > start ? (_answers[end].Cpu - _answers[start].Cpu).TotalMilliseconds : 0;
            return new CellResult
            {
                Model = key.Model,
                Scenario = key.Scenario,
                Tasks = key.Tasks,
                Concurrency = key.Concurrency,
                Round = key.Round,
                Images = answers.Count,
                Seconds = seconds,
                WallSeconds = wallSeconds,
                CpuMsPerImage = answers.Count > 0 ? cpu / answers.Count : double.NaN,
                LatencyP50Ms = Stats.Median(answers.Select(s => s.LatencyMs)),
                LatencyP95Ms = Stats.Quantile(answers.Select(s => s.LatencyMs), 0.95),
                InferenceMsPerImage = Stats.Median(answers.Select(s => s.Timings.InferenceMs / Math.Max(1, s.Timings.BatchSize))),
                PostprocessMs = Stats.Median(answers.Select(s => s.Timings.PostprocessMs)),
                EncodeMs = Stats.Median(answers.Select(s => s.Timings.EncodeMs)),
                MeanBatch = answers.Count > 0 ? answers.Average(s => (double)s.Timings.BatchSize) : 0,
                Errors = _errors,
                FirstError = _firstError,
            };
        }
    }

    // The answers the window runs between (exclusive start, inclusive end): each the end of its group.
    private (int Start, int End) Bounds()
    {
        var first = warm - 1;
        if (_answers.Count < first + 2)
        {
            return (0, 0);
        }

        var last = _answers.Count - 2;
        return (GroupEnd(first, Math.Min(first + group - 1, last)), GroupEnd(Math.Max(first + 1, last - group + 1), last));
    }

    private int GroupEnd(int from, int to)
    {
        var best = from;
        for (var i = from; i <= to && i + 1 < _answers.Count; i++)
        {
            if (_answers[i + 1].At - _answers[i].At > _answers[best + 1].At - _answers[best].At)
            {
                best = i;
            }
        }

        return best;
    }

    private sealed record Answer(TimeSpan At, TimeSpan Cpu, double LatencyMs, StageTimings Timings);
}
