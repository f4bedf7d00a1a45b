using System.Diagnostics;
using System.Globalization;
using System.Threading.Channels;
using Google.Protobuf;
using Grpc.Core;
using MaskFormer.Contracts.V1;
using Status = Grpc.Core.Status;

namespace MaskFormer.Examples;

/// <summary>
/// One logical SegmentStream that outlives its server, as docs/deploy.md ("Drain") asks of a client: on an
/// answer or a status message marked <c>draining</c> it half-closes the call (the server still answers every
/// frame it holds, then ends the call OK) and goes on with a new call; when a call ends UNAVAILABLE (the drain time ran out,
/// the server was killed or is not up yet) it opens a new one after the server's RetryInfo delay or a
/// backoff (0.25 s doubling to 4 s), and sends again every frame that got no result (no answer, or skipped
/// as draining). Answers come out once each, in frame order, whatever call they came on. It gives up when a
/// frame has waited <c>reconnectFor</c> with no answer; while no frame waits (a paused camera) a server that
/// is away is tried again and again.
/// </summary>
/// <remarks>
/// Frame ids must increase: they order the answers across calls. A frame is pending before it is written,
/// so none is lost between calls. A new call is a new stream on the server: its track ids start again.
/// </remarks>
internal sealed class ResumingStream(SegmentationService.SegmentationServiceClient client, StreamConfig config, TimeSpan reconnectFor)
{
    // A stream with no frame in flight (a paused camera) gets no answer to carry draining = true: a status
    // message every second tells it of a drain all the same, so it half-closes then rather than holding the
    // server until its drain time runs out. An interval the caller chose (0: never) is kept.
    private const uint StatusIntervalMs = 1000;

    private readonly StreamConfig _config = config.HasStatusIntervalMs ? config : new StreamConfig(config) { StatusIntervalMs = StatusIntervalMs };
    private readonly Channel<Queued> _frames = Channel.CreateBounded<Queued>(new BoundedChannelOptions(1) { SingleReader = true, SingleWriter = true });
    private readonly Channel<SegmentStreamResponse> _answers = Channel.CreateUnbounded<SegmentStreamResponse>(new UnboundedChannelOptions { SingleReader = true, SingleWriter = true });

    // Frames given to a call and not yet passed on, by id: the answer once it came (kept until every earlier
    // frame's has been passed on), or null while the frame must be answered (again).
    private readonly SortedDictionary<ulong, Pending> _pending = [];
    private readonly HashSet<ulong> _sentAgain = [];
    private readonly Lock _sync = new();

    /// <summary>Calls opened after the first one.</summary>
    public int Reconnects { get; private set; }

    /// <summary>Frames sent again on a later call because the one they were sent on gave them no result.</summary>
    public int FramesSentAgain
    {
        get
        {
            lock (_sync)
            {
                return _sentAgain.Count;
            }
        }
    }

    /// <summary>The size of every answer received, on every call, as protobuf encodes it (status messages left out).</summary>
    public long Bytes { get; private set; }

    /// <summary>Why the last new call was opened (null before any).</summary>
    public string? LastReconnect { get; private set; }

    /// <summary>Answers that broke the stream's contract on their call (an answer to no frame sent, or out of order).</summary>
    public List<string> Problems { get; } = [];

    /// <summary>Sends a frame; waits while the previous one has not been taken by a call.</summary>
    public ValueTask SendAsync(StreamFrame frame, CancellationToken cancellationToken) =>
        _frames.Writer.WriteAsync(new Queued(frame, Stopwatch.GetTimestamp()), cancellationToken);

    /// <summary>No more frames: the stream ends once every frame sent has its answer.</summary>
    public void Complete() => _frames.Writer.TryComplete();

    /// <summary>The answers, once each and in frame order, and the server's StreamStatus messages as they come.</summary>
    public IAsyncEnumerable<SegmentStreamResponse> ReadAllAsync(CancellationToken cancellationToken) => _answers.Reader.ReadAllAsync(cancellationToken);

    /// <summary>Runs calls until every frame is answered; throws (and ends the answers with) the first failure that is not retried.</summary>
    public async Task RunAsync(CancellationToken cancellationToken)
    {
        try
        {
            var lastAnswer = Stopwatch.GetTimestamp();
            for (int attempt = 0, failures = 0; ; attempt++)
            {
                var (status, answered, drained, retryDelay) = await RunCallAsync(attempt, cancellationToken);
                bool finished;
                long? waitingSince;
                lock (_sync)
                {
                    finished = _frames.Reader.Completion.IsCompleted && _pending.Count == 0;
                    waitingSince = _pending.Values.Where(p => p.Answer is null).Select(p => (long?)p.Since).Min();
                }

                if (_frames.Reader.TryPeek(out var queued) && (waitingSince is null || queued.Since < waitingSince))
                {
                    waitingSince = queued.Since;
                }

                if (answered)
                {
                    (lastAnswer, failures) = (Stopwatch.GetTimestamp(), 0);
                }

                // Every frame answered: a call that then lost its connection before its trailers lost nothing.
                if (finished && status.StatusCode is StatusCode.OK or StatusCode.Unavailable)
                {
                    _answers.Writer.TryComplete();
                    return;
                }

                if (status.StatusCode == StatusCode.OK && (answered || drained))
                {
                    // Half-closed on a drain (an answer or a status message said so): the server answered
                    // everything it held; go on at once.
                    LastReconnect = "the server is draining: continued on a new stream";
                    continue;
                }

                // A call that ended OK without an answer is retried as an unavailable one, within the same time.
                if (status.StatusCode is not (StatusCode.Unavailable or StatusCode.OK))
                {
                    throw new RpcException(status);
                }

                // Time without answers counts only while a frame waits for one: a paused camera's silence does not.
                var quiet = waitingSince is { } since ? Stopwatch.GetElapsedTime(Math.Max(lastAnswer, since)) : TimeSpan.Zero;
                var delay = retryDelay ?? RetryingCall.Backoff(failures++);
                if (quiet + delay > reconnectFor)
                {
                    throw new RpcException(new Status(StatusCode.Unavailable, string.Create(CultureInfo.InvariantCulture, $"{status.Detail} (no answer for {quiet.TotalSeconds:0} s of reconnecting; gave up)")));
                }

                LastReconnect = string.Create(CultureInfo.InvariantCulture, $"the stream ended UNAVAILABLE (\"{status.Detail}\"): reconnecting in {delay.TotalSeconds:0.##} s");
                await Task.Delay(delay, cancellationToken);
            }
        }
        catch (Exception ex)
        {
            _answers.Writer.TryComplete(ex);
            throw;
        }
    }

    // One call: the frames still to answer first, then new ones until the input ends or the server drains.
    private async Task<(Status Status, bool Answered, bool Drained, TimeSpan? RetryDelay)> RunCallAsync(int attempt, CancellationToken cancellationToken)
    {
        using var stop = CancellationTokenSource.CreateLinkedTokenSource(cancellationToken);
        using var call = client.SegmentStream(cancellationToken: stop.Token);
        if (attempt > 0)
        {
            Reconnects++;
        }

        var sent = new List<ulong>();
        var draining = new TaskCompletionSource(TaskCreationOptions.RunContinuationsAsynchronously);
        var writing = WriteAsync(call.RequestStream, sent, draining.Task, stop.Token);
        var answered = false;
        var index = 0;
        Status status;
        try
        {
            await foreach (var response in call.ResponseStream.ReadAllAsync(stop.Token))
            {
                if (response.Draining)
                {
                    draining.TrySetResult();
                }

                if (response.OutcomeCase == SegmentStreamResponse.OutcomeOneofCase.Status)
                {
                    _answers.Writer.TryWrite(response);
                    continue;
                }

                Bytes += response.CalculateSize();
                CheckOrder(response, sent, index++, attempt);

                // A frame skipped as draining got no result: it goes again, and does not count as progress.
                answered |= response.Skipped?.Reason != SkipReason.Draining;
                Answer(response);
            }

            status = call.GetStatus();
        }
        catch (RpcException ex) when (!cancellationToken.IsCancellationRequested)
        {
            status = ClosedUnderTheCall(ex.Status) ? new Status(StatusCode.Unavailable, ex.Status.Detail) : ex.Status;
        }
        finally
        {
            // The writer may wait for a frame or be stuck on a call that ended: it is done either way.
            await stop.CancelAsync();
            try
            {
                await writing;
            }
            catch (Exception) when (!cancellationToken.IsCancellationRequested)
            {
                // A write on a call that ended: its frames stay pending and go again on the next call.
            }
        }

        return (status, answered, draining.Task.IsCompleted, RetryDelay(call, status));
    }

    private async Task WriteAsync(IClientStreamWriter<SegmentStreamRequest> requests, List<ulong> sent, Task draining, CancellationToken cancellationToken)
    {
        await requests.WriteAsync(new SegmentStreamRequest { Config = _config }, cancellationToken);
        List<StreamFrame> again;
        lock (_sync)
        {
            again = [.. _pending.Values.Where(p => p.Answer is null).Select(p => p.Frame)];
            _sentAgain.UnionWith(again.Select(f => f.FrameId));
            sent.AddRange(again.Select(f => f.FrameId));
        }

        foreach (var frame in again)
        {
            await requests.WriteAsync(new SegmentStreamRequest { Frame = frame }, cancellationToken);
        }

        while (!draining.IsCompleted)
        {
            var ready = _frames.Reader.WaitToReadAsync(cancellationToken).AsTask();
            if (await Task.WhenAny(ready, draining) == draining || !await ready)
            {
                break;
            }

            if (!_frames.Reader.TryRead(out var next))
            {
                continue;
            }

            // Pending before it is written: a frame taken here is answered on this call or sent again.
            lock (_sync)
            {
                _pending[next.Frame.FrameId] = new Pending(next.Frame, next.Since);
                sent.Add(next.Frame.FrameId);
            }

            await requests.WriteAsync(new SegmentStreamRequest { Frame = next.Frame }, cancellationToken);
        }

        // Half-closes the request stream: the server answers the frames it holds and ends the call OK.
        await requests.CompleteAsync();
    }

    // The server answers each frame of a call once, in the order they were sent on it.
    private void CheckOrder(SegmentStreamResponse response, List<ulong> sent, int index, int attempt)
    {
        lock (_sync)
        {
            var onCall = attempt > 0 ? $" on call {attempt + 1}" : "";
            if (index >= sent.Count)
            {
                Problems.Add($"response {index}{onCall} (frame_id {response.FrameId}) answers no sent frame");
            }
            else if (sent[index] != response.FrameId)
            {
                Problems.Add($"response {index}{onCall} has frame_id {response.FrameId}, expected {sent[index]}");
            }
        }
    }

    // Keeps the answer until every earlier frame's has been passed on.
    private void Answer(SegmentStreamResponse response)
    {
        lock (_sync)
        {
            if (!_pending.TryGetValue(response.FrameId, out var pending) || pending.Answer is not null || response.Skipped?.Reason == SkipReason.Draining)
            {
                return;
            }

            _pending[response.FrameId] = pending with { Answer = response };
            while (_pending.Count > 0 && _pending.First() is { Value.Answer: { } answer } first)
            {
                _pending.Remove(first.Key);
                _answers.Writer.TryWrite(answer);
            }
        }
    }

    // .NET's client fails a call whose connection the server closed under it (a drain that ran out, the
    // trailers lost in the close; a connection closed before the call started) INTERNAL with its own HTTP
    // error: the server said nothing, so the frames go again, as on UNAVAILABLE.
    private static bool ClosedUnderTheCall(Status status)
    {
        if (status.StatusCode != StatusCode.Internal)
        {
            return false;
        }

        for (var e = status.DebugException; e is not null; e = e.InnerException)
        {
            if (e is HttpProtocolException or IOException)
            {
                return true;
            }
        }

        return false;
    }

    // The server's RetryInfo delay when above 0; else the backoff decides.
    private static TimeSpan? RetryDelay(AsyncDuplexStreamingCall<SegmentStreamRequest, SegmentStreamResponse> call, Status status)
    {
        if (status.StatusCode == StatusCode.OK)
        {
            return null;
        }

        try
        {
            return RetryingCall.RetryInfoDelay(call.GetTrailers()) is { } delay && delay > TimeSpan.Zero ? delay : null;
        }
        catch (InvalidOperationException)
        {
            return null;
        }
    }

    private readonly record struct Queued(StreamFrame Frame, long Since);

    private sealed record Pending(StreamFrame Frame, long Since, SegmentStreamResponse? Answer = null);
}
