using System.Threading.Channels;
using Google.Rpc;
using Grpc.Core;
using MaskFormer.Contracts.V1;
using Status = Grpc.Core.Status;

namespace MaskFormer.Cli.Commands;

/// <summary>
/// One logical SegmentStream that outlives the server's drain, as docs/deploy.md asks of a client: on an
/// answer or a status message marked <c>draining</c> it half-closes the call (the server still answers
/// every frame it holds) and goes on with a new call; when a call ends <c>UNAVAILABLE</c> (the drain time ran out, the server
/// went away, it is not up yet) it opens a new one, after the server's RetryInfo delay or a backoff, and
/// sends again every frame that got no result (no answer, or skipped as draining). Answers come out
/// once each, in frame order, whatever call they came on. It gives up when a frame has waited
/// <c>reconnectFor</c> with no call answering; while no frame waits (a paused camera), a server that is
/// away costs nothing and is tried again.
/// </summary>
/// <remarks>
/// Frame ids must increase: they order the answers across calls. A new call starts a new server-side
/// stream, so its track ids and delta bases start again (its first result is complete).
/// </remarks>
internal sealed class ResumingStream
{
    private readonly SegmentationService.SegmentationServiceClient _client;
    private readonly StreamConfig _config;
    private readonly TimeSpan _reconnectFor;
    private readonly TimeProvider _time;
    private readonly Channel<Queued> _frames = Channel.CreateBounded<Queued>(new BoundedChannelOptions(1) { SingleReader = true, SingleWriter = true });
    private readonly Channel<SegmentStreamResponse> _answers = Channel.CreateUnbounded<SegmentStreamResponse>(new UnboundedChannelOptions { SingleReader = true, SingleWriter = true });

    // Frames handed to a call and not yet passed on, by id: their answer once it came (kept until every
    // earlier frame's answer has been passed on), or null while the frame must be answered (again).
    private readonly SortedDictionary<ulong, Pending> _pending = [];
    private readonly Lock _sync = new();

    public ResumingStream(SegmentationService.SegmentationServiceClient client, StreamConfig config, TimeSpan reconnectFor, TimeProvider? time = null)
    {
        _client = client;
        _config = config;
        _reconnectFor = reconnectFor > TimeSpan.Zero ? reconnectFor : throw new ArgumentOutOfRangeException(nameof(reconnectFor), reconnectFor, "more than 0");
        _time = time ?? TimeProvider.System;
    }

    /// <summary>Calls opened after the first one.</summary>
    public int Reconnects { get; private set; }

    /// <summary>Frames sent again on a later call because the one they were sent on gave them no result.</summary>
    public int FramesSentAgain { get; private set; }

    /// <summary>What happened at the last change of call, for the user (null before any).</summary>
    public string? LastReconnect { get; private set; }

    /// <summary>Sends <paramref name="frame"/>; waits while the stream is between calls.</summary>
    public ValueTask SendAsync(StreamFrame frame, CancellationToken cancellationToken) => _frames.Writer.WriteAsync(new Queued(frame, _time.GetTimestamp()), cancellationToken);

    /// <summary>No more frames: the stream ends once every frame sent has its answer.</summary>
    public void Complete() => _frames.Writer.TryComplete();

    /// <summary>The answers, once each and in frame order, and the server's status messages as they come.</summary>
    public IAsyncEnumerable<SegmentStreamResponse> ReadAllAsync(CancellationToken cancellationToken) => _answers.Reader.ReadAllAsync(cancellationToken);

    /// <summary>Runs the calls until every frame is answered; the answers end with the first failure that is not retried.</summary>
    public async Task RunAsync(CancellationToken cancellationToken)
    {
        try
        {
            var lastAnswer = _time.GetTimestamp();
            var failures = 0;
            for (var attempt = 0; ; attempt++)
            {
                var (status, answered, drained, retryDelay) = await RunCallAsync(attempt, cancellationToken).ConfigureAwait(false);
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
                    (lastAnswer, failures) = (_time.GetTimestamp(), 0);
                }

                // Every frame answered: a call that then lost its connection before its trailers lost nothing.
                if (finished && status.StatusCode is (StatusCode.OK or StatusCode.Unavailable))
                {
                    _answers.Writer.TryComplete();
                    return;
                }

                if (status.StatusCode == StatusCode.OK && (answered || drained))
                {
                    // Half-closed on a drain (an answer or a status message said so; with no frame in flight
                    // only a status message can): the server answered everything it held; go on at once.
                    LastReconnect = "the server is draining: continued on a new stream";
                    continue;
                }

                // An OK call that answered nothing is retried as an unavailable one, within the same time.
                if (status.StatusCode is not (StatusCode.Unavailable or StatusCode.OK))
                {
                    throw new RpcException(status);
                }

                // Time without answers counts only while a frame waits for one: a paused camera's silence does not.
                var quiet = waitingSince is { } since ? _time.GetElapsedTime(Math.Max(lastAnswer, since)) : TimeSpan.Zero;
                var delay = retryDelay ?? RetryingCall.Backoff(failures++);
                if (quiet + delay > _reconnectFor)
                {
                    throw new RpcException(new Status(StatusCode.Unavailable, $"{status.Detail} (no answer for {quiet.TotalSeconds:0} s of reconnecting; gave up)", status.DebugException));
                }

                LastReconnect = $"the stream ended UNAVAILABLE (\"{status.Detail}\"): reconnecting in {delay.TotalSeconds:0.##} s";
                await Task.Delay(delay, _time, cancellationToken).ConfigureAwait(false);
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
        using var call = _client.SegmentStream(cancellationToken: stop.Token);
        if (attempt > 0)
        {
            Reconnects++;
        }

        var draining = new TaskCompletionSource(TaskCreationOptions.RunContinuationsAsynchronously);
        var writing = WriteAsync(call.RequestStream, attempt, draining.Task, stop.Token);
        var answered = false;
        Status status;
        try
        {
            await foreach (var response in call.ResponseStream.ReadAllAsync(stop.Token).ConfigureAwait(false))
            {
                // A status message says so as an answer does: a stream with no frame in flight (a long
                // --fps gap, a paused camera) gets no answer, and would hold the server for its drain time.
                if (response.Draining)
                {
                    draining.TrySetResult();
                }

                if (response.OutcomeCase == SegmentStreamResponse.OutcomeOneofCase.Status)
                {
                    _answers.Writer.TryWrite(response);
                    continue;
                }

                // A frame skipped as draining got no result: it goes again, and does not count as progress.
                answered |= response.Skipped?.Reason != SkipReason.Draining;
                Answer(response);
            }

            status = call.GetStatus();
        }
        catch (RpcException ex) when (!cancellationToken.IsCancellationRequested)
        {
            // The connection closed under the call, before it started or without an error (a drain that ran
            // out, its trailers lost): the server said nothing; as UNAVAILABLE, so the frames go again.
            status = RetryingCall.IsConnectionClosedBeforeTheCall(ex.Status) || RetryingCall.IsConnectionClosedByTheServer(ex.Status)
                ? new Status(StatusCode.Unavailable, ex.Status.Detail, ex.Status.DebugException)
                : ex.Status;
        }
        finally
        {
            // The writer may wait for a frame or be stuck on a call that ended: it is done either way.
            await stop.CancelAsync().ConfigureAwait(false);
            try
            {
                await writing.ConfigureAwait(false);
            }
            catch (Exception) when (!cancellationToken.IsCancellationRequested)
            {
                // A write on a call that ended; its frames stay pending and go again on the next call.
            }
        }

        return (status, answered, draining.Task.IsCompleted, RetryDelay(call, status));
    }

    private async Task WriteAsync(IClientStreamWriter<SegmentStreamRequest> requests, int attempt, Task draining, CancellationToken cancellationToken)
    {
        await requests.WriteAsync(new SegmentStreamRequest { Config = _config }, cancellationToken).ConfigureAwait(false);
        List<StreamFrame> again;
        lock (_sync)
        {
            again = [.. _pending.Values.Where(p => p.Answer is null).Select(p => p.Frame)];
        }

        FramesSentAgain += again.Count;
        foreach (var frame in again)
        {
            await requests.WriteAsync(new SegmentStreamRequest { Frame = frame }, cancellationToken).ConfigureAwait(false);
        }

        while (!draining.IsCompleted)
        {
            var ready = _frames.Reader.WaitToReadAsync(cancellationToken).AsTask();
            if (await Task.WhenAny(ready, draining).ConfigureAwait(false) == draining || !await ready.ConfigureAwait(false))
            {
                break;
            }

            // Pending before it is written: a frame read here is answered on this call or sent again.
            if (!_frames.Reader.TryRead(out var next))
            {
                continue;
            }

            lock (_sync)
            {
                _pending[next.Frame.FrameId] = new Pending(next.Frame, next.Since);
            }

            await requests.WriteAsync(new SegmentStreamRequest { Frame = next.Frame }, cancellationToken).ConfigureAwait(false);
        }

        await requests.CompleteAsync().ConfigureAwait(false);
    }

    // Keeps the answer until every earlier frame's has been passed on; a frame skipped as draining got no
    // result and goes again on the next call.
    private void Answer(SegmentStreamResponse response)
    {
        lock (_sync)
        {
            if (!_pending.TryGetValue(response.FrameId, out var pending) || pending.Answer is not null)
            {
                return;
            }

            if (response.Skipped?.Reason == SkipReason.Draining)
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

    private static TimeSpan? RetryDelay(AsyncDuplexStreamingCall<SegmentStreamRequest, SegmentStreamResponse> call, Status status)
    {
        if (status.StatusCode == StatusCode.OK)
        {
            return null;
        }

        try
        {
            // A delay of 0 or less would retry without a pause: the backoff decides then.
            return call.GetTrailers().GetRpcStatus(ignoreParseError: true)?.GetDetail<RetryInfo>()?.RetryDelay?.ToTimeSpan() is { } delay && delay > TimeSpan.Zero ? delay : null;
        }
        catch (InvalidOperationException)
        {
            return null;
        }
    }

    // A frame and when it was given to the stream (a timestamp of the stream's TimeProvider).
    private readonly record struct Queued(StreamFrame Frame, long Since);

    private sealed record Pending(StreamFrame Frame, long Since, SegmentStreamResponse? Answer = null);
}
