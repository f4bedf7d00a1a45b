using System.Globalization;

namespace MaskFormer.Examples;

/// <summary>A delta stream's rebuilt frames compared with a stream's complete answers, and the bytes both took.</summary>
internal sealed class Check
{
    private int _compared;
    private int _equal;
    private long _deltaBytes;
    private long _completeBytes;
    private string? _notComparable;
    private bool _failed;

    /// <summary>The frames whose rebuilt result differs from the complete answer, and how.</summary>
    public List<string> Differences { get; } = [];

    /// <summary>Not comparable only because frames were skipped or calls changed, or every frame compared and equal.</summary>
    public bool Passed => _notComparable is not null ? !_failed : _compared > 0 && _equal == _compared;

    public static Check Compare(StreamRun deltas, StreamRun complete)
    {
        static List<ulong> Answered(StreamRun run) => [.. run.Answers.Where(a => a.Result is not null).Select(a => a.FrameId)];

        var (answered, answeredComplete) = (Answered(deltas), Answered(complete));
        if (!answered.SequenceEqual(answeredComplete))
        {
            // A skipping policy gave the two runs different frames (their tracks then differ); without a
            // skipped frame, a frame failed in one run only: a failure.
            var skipping = deltas.Skipped > 0 || complete.Skipped > 0;
            return new Check
            {
                _failed = !skipping,
                _notComparable = $"the two streams answered different frames ({answered.Count} and {answeredComplete.Count} results; the run without deltas: {complete.Errors} errors, {complete.Skipped} skipped)"
                    + (skipping ? "; use --policy queue, or --no-check" : ""),
            };
        }

        if (deltas.Stream.Reconnects > 0 || complete.Stream.Reconnects > 0)
        {
            // A new call starts tracking again: track ids, and the segment ids they order, differ from one stream's.
            return new Check { _notComparable = $"a stream went on new calls (with deltas {deltas.Stream.Reconnects} time(s), without {complete.Stream.Reconnects}), which start their track ids again" };
        }

        var check = new Check { _deltaBytes = deltas.Stream.Bytes, _completeBytes = complete.Stream.Bytes };
        foreach (var answer in complete.Answers.Where(a => a.Result is not null))
        {
            if (!deltas.Frames.TryGetValue(answer.FrameId, out var rebuilt))
            {
                continue;
            }

            check._compared++;
            var differences = rebuilt.Differences(DeltaRebuilder.Decode(answer.Result));
            if (differences.Count == 0)
            {
                check._equal++;
            }
            else
            {
                check.Differences.Add($"rebuilt frame {answer.FrameId}: {string.Join(", ", differences)} differ");
            }
        }

        return check;
    }

    public IEnumerable<string> Lines()
    {
        if (_notComparable is not null)
        {
            yield return $"check: not made: {_notComparable}";
            yield break;
        }

        var saved = _completeBytes > 0 ? 100.0 * (_completeBytes - _deltaBytes) / _completeBytes : 0;
        yield return $"check: {_equal} of {_compared} rebuilt frames equal the complete answers";
        yield return string.Create(CultureInfo.InvariantCulture, $"bytes: {_deltaBytes:N0} with deltas, {_completeBytes:N0} without ({saved:F1} % saved)");
    }
}
