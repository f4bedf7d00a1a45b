using MaskFormer.Contracts.V1;

namespace MaskFormer.Server.Streaming;

/// <summary>
/// Keeps a stream's latency contract with three simple controls driven by one measurement, the
/// per-frame service time (start to result) as an exponentially weighted moving average:
/// frames in flight = target rate × service time (Little's law, with a margin), capped by the stream's
/// max_in_flight; a frame whose wait plus the service time would exceed the maximum age is skipped when
/// it would start; and, when the client allows it, the output resolution steps down while the service
/// time misses the contract and back up when it has room.
/// </summary>
internal sealed class LatencyGovernor
{
    // The output scales tried in turn when the client allows downscaling.
    private static readonly float[] s_scales = [1f, 0.75f, 0.5f, 0.25f];

    // Weight of the newest sample: about the last ten frames count.
    private const double Alpha = 0.2;

    // Frames at one output scale before it may change again, so one slow frame does not flip it.
    private const int FramesPerStep = 8;

    private readonly Lock _lock = new();
    private double _serviceSeconds;
    private double _deviationSeconds;
    private int _scaleLevel;
    private int _framesAtLevel;

    /// <summary>The mean service time in seconds; 0 before the first result.</summary>
    public double ServiceSeconds
    {
        get
        {
            lock (_lock)
            {
                return _serviceSeconds;
            }
        }
    }

    /// <summary>The output scale in use (1 unless downscaling is allowed and needed).</summary>
    public float OutputScale
    {
        get
        {
            lock (_lock)
            {
                return s_scales[_scaleLevel];
            }
        }
    }

    /// <summary>
    /// Frames of the stream to keep in the engine: without a contract the stream's max_in_flight;
    /// with one, enough for the target rate (or the rate frames arrive at) and no more, since every
    /// extra frame in flight makes each one slower.
    /// </summary>
    public int InFlight(StreamSettings settings, double inputFps)
    {
        if (settings.Latency is not { } contract)
        {
            return settings.MaxInFlight;
        }

        var service = ServiceSeconds;
        var rate = contract.TargetFps > 0 ? contract.TargetFps : inputFps;
        if (service <= 0 || rate <= 0)
        {
            return 1;
        }

        var needed = Math.Ceiling(rate * service * 1.2);
        return (int)Math.Clamp(needed, 1, settings.InFlightCap);
    }

    /// <summary>
    /// The frames the stream can have in the engine at once for its status: <see cref="InFlight"/>, but one
    /// while a frame's expected service time alone is over the contract's maximum age, when every frame
    /// but the newest with none in flight is skipped as too old (<see cref="TooOld"/>).
    /// </summary>
    public int UsableInFlight(StreamSettings settings, double inputFps)
    {
        var limit = InFlight(settings, inputFps);
        return limit > 1 && TooOld(settings, 0) ? 1 : limit;
    }

    /// <summary>
    /// True when a frame that arrived <paramref name="waitedSeconds"/> ago is unlikely to be answered
    /// within its contract's maximum age if it starts now: its wait plus the mean service time and twice
    /// the mean deviation (as TCP estimates a retransmission timeout), since on a busy machine single
    /// frames run well past the mean.
    /// </summary>
    public bool TooOld(StreamSettings settings, double waitedSeconds)
    {
        if (settings.Latency is not { MaxAgeMs: > 0 } contract)
        {
            return false;
        }

        double expected;
        lock (_lock)
        {
            expected = _serviceSeconds + (2 * _deviationSeconds);
        }

        return (waitedSeconds + expected) * 1000 > contract.MaxAgeMs;
    }

    /// <summary>Takes one frame's service time into the average and moves the output scale if allowed.</summary>
    public void Served(StreamSettings settings, double seconds)
    {
        lock (_lock)
        {
            if (_serviceSeconds <= 0)
            {
                _serviceSeconds = seconds;
            }
            else
            {
                _deviationSeconds = (Alpha * Math.Abs(seconds - _serviceSeconds)) + ((1 - Alpha) * _deviationSeconds);
                _serviceSeconds = (Alpha * seconds) + ((1 - Alpha) * _serviceSeconds);
            }

            if (!settings.Downscales || settings.Latency is not { } contract || ++_framesAtLevel < FramesPerStep)
            {
                return;
            }

            var sustainable = settings.InFlightCap / _serviceSeconds;
            var ageMs = _serviceSeconds * 1000;
            var behind = (contract.MaxAgeMs > 0 && ageMs > 0.8 * contract.MaxAgeMs) || (contract.TargetFps > 0 && sustainable < contract.TargetFps);
            var room = (contract.MaxAgeMs == 0 || ageMs < 0.4 * contract.MaxAgeMs) && (contract.TargetFps == 0 || sustainable > 2 * contract.TargetFps);
            if (behind && _scaleLevel < s_scales.Length - 1)
            {
                _scaleLevel++;
                _framesAtLevel = 0;
            }
            else if (room && !behind && _scaleLevel > 0)
            {
                _scaleLevel--;
                _framesAtLevel = 0;
            }
        }
    }
}
