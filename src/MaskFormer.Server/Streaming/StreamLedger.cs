using MaskFormer.Contracts.V1;

namespace MaskFormer.Server.Streaming;

/// <summary>
/// What one stream has received and answered, the ages of its recent results, its rates and its
/// unwritten bytes: the figures of its <see cref="StreamStatus"/> messages.
/// </summary>
internal sealed class StreamLedger(TimeProvider time)
{
    // Recent results and arrivals the percentiles and rates are taken over.
    private const int Window = 256;

    private readonly Lock _lock = new();
    private readonly double[] _ages = new double[Window];
    private readonly long[] _written = new long[Window];
    private readonly long[] _arrived = new long[Window];
    private readonly Dictionary<SkipReason, ulong> _skips = [];
    private ulong _received;
    private ulong _answered;
    private ulong _failed;
    private ulong _skipped;
    private long _unwrittenBytes;
    private long _peakUnwrittenBytes;

    public long UnwrittenBytes
    {
        get
        {
            lock (_lock)
            {
                return _unwrittenBytes;
            }
        }
    }

    public void Received(long at)
    {
        lock (_lock)
        {
            _arrived[_received % Window] = at;
            _received++;
        }
    }

    /// <summary>Frames read per second over the last frames; 0 until two have arrived.</summary>
    public double InputFps()
    {
        lock (_lock)
        {
            return Rate(_arrived, _received);
        }
    }

    /// <summary>Counts a finished answer's bytes as held until <see cref="Written"/>.</summary>
    public void Hold(long bytes)
    {
        lock (_lock)
        {
            _unwrittenBytes += bytes;
            _peakUnwrittenBytes = Math.Max(_peakUnwrittenBytes, _unwrittenBytes);
        }
    }

    /// <summary>Counts an answer handed to the transport, <paramref name="age"/> after its frame arrived.</summary>
    public void Written(FrameOutcome outcome, TimeSpan age)
    {
        lock (_lock)
        {
            _unwrittenBytes -= outcome.Bytes;
            if (outcome.Result is not null)
            {
                _ages[_answered % Window] = age.TotalMilliseconds;
                _written[_answered % Window] = time.GetTimestamp();
                _answered++;
            }
            else if (outcome.Error is not null)
            {
                _failed++;
            }
            else
            {
                _skipped++;
                _skips[outcome.Skip] = _skips.GetValueOrDefault(outcome.Skip) + 1;
            }
        }
    }

    public StreamStatus Snapshot(LatencyGovernor governor, int inFlight, float outputScale, bool final)
    {
        var service = governor.ServiceSeconds;
        lock (_lock)
        {
            var status = new StreamStatus
            {
                FramesReceived = _received,
                FramesAnswered = _answered,
                FramesFailed = _failed,
                FramesSkipped = _skipped,
                FramesPending = _received - _answered - _failed - _skipped,
                ResultAge = Percentiles(),
                AchievedFps = (float)Rate(_written, _answered),
                SustainableFps = service > 0 ? (float)(inFlight / service) : 0f,
                InputFps = (float)Rate(_arrived, _received),
                ServiceTimeMs = (float)(service * 1000),
                MaxInFlight = (uint)inFlight,
                OutputScale = outputScale,
                UnwrittenBytes = (ulong)Math.Max(0, _unwrittenBytes),
                PeakUnwrittenBytes = (ulong)_peakUnwrittenBytes,
                Final = final,
            };
            status.Skips.AddRange(_skips.OrderBy(s => s.Key).Select(s => new SkipCount { Reason = s.Key, Count = s.Value }));
            return status;
        }
    }

    private AgePercentiles Percentiles()
    {
        var count = (int)Math.Min(_answered, Window);
        if (count == 0)
        {
            return new AgePercentiles();
        }

        var sorted = _ages.AsSpan(0, count).ToArray();
        Array.Sort(sorted);
        return new AgePercentiles
        {
            P50Ms = (float)sorted[(count - 1) / 2],
            P90Ms = (float)sorted[(int)Math.Ceiling(0.9 * count) - 1],
            P99Ms = (float)sorted[(int)Math.Ceiling(0.99 * count) - 1],
            MaxMs = (float)sorted[^1],
        };
    }

    // Events per second over the last ones recorded in a ring: (n - 1) intervals between the oldest and newest.
    private double Rate(long[] ring, ulong total)
    {
        var count = (int)Math.Min(total, Window);
        if (count < 2)
        {
            return 0;
        }

        var newest = ring[(total - 1) % Window];
        var oldest = ring[(total - (ulong)count) % Window];
        var seconds = time.GetElapsedTime(oldest, newest).TotalSeconds;
        return seconds > 0 ? (count - 1) / seconds : 0;
    }
}
