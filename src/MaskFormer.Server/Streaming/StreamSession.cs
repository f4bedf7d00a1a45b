using System.Diagnostics;
using System.Runtime.ExceptionServices;
using System.Threading.Channels;
using Grpc.Core;
using MaskFormer.Contracts.V1;
using MaskFormer.Engine;
using MaskFormer.Engine.Tracking;
using MaskFormer.Server.Mapping;
using MaskFormer.Server.Services;

namespace MaskFormer.Server.Streaming;

/// <summary>
/// One SegmentStream call. A reader takes frames in, a pump keeps up to max_in_flight of them in the
/// engine (whose batcher may batch them with other callers'), and a writer answers them strictly in
/// arrival order, tracking segments across frames as it goes. Every buffer is bounded: frames not yet
/// started (PendingFrames; the overload policy decides what happens when it is full) and answers not
/// yet written (MaxUnwrittenResponses; when reached the reader stops, so HTTP/2 flow control holds
/// the client back), and their bytes (MaxUnwrittenBytes; when reached no frame starts, so a client that
/// does not read stops the stream's work rather than having results finished and held for it).
/// A latency contract (<see cref="LatencyGovernor"/>) sets how many frames are in flight and skips
/// frames too old to start; <see cref="StreamLedger"/> counts what the status messages report.
/// When the host starts stopping (<paramref name="draining"/>), the session drains: it goes on serving
/// and marks every answer as draining so the client half-closes and moves on; after
/// <see cref="StreamingOptions.DrainTimeout"/> it stops reading, skips frames not started, answers the
/// ones in the engine and ends the call with UNAVAILABLE, telling the client to reconnect.
/// </summary>
internal sealed class StreamSession(
    IFrameSegmenter engine,
    StreamingOptions limits,
    TimeProvider time,
    IAsyncStreamReader<SegmentStreamRequest> requests,
    IServerStreamWriter<SegmentStreamResponse> responses,
    ServerCallContext context,
    FrameTelemetry frames,
    StreamBuffers buffers,
    CancellationToken draining) : IDisposable
{
    private readonly Lock _lock = new();
    private readonly LinkedList<FrameSlot> _waiting = new();
    private readonly Channel<FrameSlot> _ordered = Channel.CreateUnbounded<FrameSlot>(new UnboundedChannelOptions { SingleReader = true, SingleWriter = true });
    private readonly SemaphoreSlim _unwritten = new(limits.MaxUnwrittenResponses, limits.MaxUnwrittenResponses);
    private readonly SemaphoreSlim _waitingChanged = new(0);
    private readonly SegmentTracker _tracker = new();
    private readonly DeltaEncoder _delta = new();
    private readonly List<Task> _processing = [];
    private readonly CancellationTokenSource _drainDeadline = new(Timeout.InfiniteTimeSpan, time);
    private readonly LatencyGovernor _governor = new();
    private readonly StreamLedger _ledger = new(time);
    private RpcException? _badMessage;
    private StreamSettings _settings = new() { MaxInFlight = limits.DefaultMaxInFlight, Tracking = limits.Tracking };
    private CancellationToken _processingToken;
    private long _heldBytes;
    private long _largestAnswer;
    private int _inFlight;
    private volatile bool _draining;
    private long _frameIndex;
    private long _lastStatus;
    private TimeSpan? _statusInterval;
    private TaskCompletionSource _configArrived = new(TaskCreationOptions.RunContinuationsAsynchronously);
    private FrameSlot? _writing;

    public async Task RunAsync()
    {
        using var abort = CancellationTokenSource.CreateLinkedTokenSource(context.CancellationToken);
        using var stopReading = CancellationTokenSource.CreateLinkedTokenSource(abort.Token, _drainDeadline.Token);
        using var drain = draining.Register(static state => ((StreamSession)state!).BeginDrain(), this);
        _processingToken = abort.Token;
        var writer = WriteAsync(abort);
        var drainTimeRanOut = false;
        try
        {
            try
            {
                await ReadAsync(stopReading.Token, abort.Token).ConfigureAwait(false);
            }
            catch (OperationCanceledException) when (_drainDeadline.IsCancellationRequested && !abort.IsCancellationRequested)
            {
                // Frames not yet started are answered as draining; those in the engine finish and are written.
                drainTimeRanOut = true;
                SkipWaiting(SkipReason.Draining);
            }

            _ordered.Writer.TryComplete();
            await writer.ConfigureAwait(false);
        }
        catch (Exception failure)
        {
            await abort.CancelAsync().ConfigureAwait(false);
            _ordered.Writer.TryComplete();
            SkipWaiting(SkipReason.StreamEnded);

            // A writer that failed stopped the reader (WriteAsync cancels abort): the call ends with the
            // writer's error, not as cancelled.
            if (failure is OperationCanceledException && !context.CancellationToken.IsCancellationRequested)
            {
                await writer.ConfigureAwait(ConfigureAwaitOptions.SuppressThrowing);
                if (writer.Exception?.InnerException is { } writeFailure and not OperationCanceledException)
                {
                    ExceptionDispatchInfo.Throw(writeFailure);
                }
            }

            throw;
        }
        finally
        {
            // In-flight frames observe the cancellation and leave the engine's queue before the call ends.
            Task[] processing;
            lock (_lock)
            {
                processing = [.. _processing];
            }

            await Task.WhenAll(processing).ConfigureAwait(false);
            lock (_lock)
            {
                // Answers never written (the call ended first) are held no more.
                buffers.Add(-_heldBytes);
                _heldBytes = 0;
            }

            try
            {
                await writer.ConfigureAwait(false);
            }
            catch (Exception ex) when (ex is OperationCanceledException or IOException or InvalidOperationException)
            {
            }
            finally
            {
                EndUnwritten();
            }

        }

        if (_badMessage is { } badMessage)
        {
            throw badMessage;
        }

        if (drainTimeRanOut)
        {
            throw RpcErrors.ShuttingDown("The server is shutting down and its drain time ran out; reconnect and send again every frame that got no result.");
        }
    }

    public void Dispose()
    {
        _unwritten.Dispose();
        _waitingChanged.Dispose();
        _drainDeadline.Dispose();
    }

    private void BeginDrain()
    {
        _draining = true;
        _drainDeadline.CancelAfter(limits.DrainTimeout);
    }

    // Reading stops on abort or when the drain time runs out; processing and writing stop only on abort,
    // so frames already in the engine are answered.
    private async Task ReadAsync(CancellationToken reading, CancellationToken processing)
    {
        try
        {
            await ReadMessagesAsync(reading, processing).ConfigureAwait(false);
        }
        catch (RpcException unread) when (unread.StatusCode is StatusCode.ResourceExhausted or StatusCode.Internal && !reading.IsCancellationRequested)
        {
            // A message gRPC would not read (over MaxReceiveMessageSize, or not a message): as for a bad
            // one, reading stops, the frames before it are still answered, then the call ends with its status.
            _badMessage = unread;
        }
    }

    private async Task ReadMessagesAsync(CancellationToken reading, CancellationToken processing)
    {
        await foreach (var message in requests.ReadAllAsync(reading).ConfigureAwait(false))
        {
            switch (message.MessageCase)
            {
                case SegmentStreamRequest.MessageOneofCase.Config:
                    _settings = StreamSettings.From(message.Config, limits, _settings);

                    // Wakes the writer, whose status timer follows the new interval at once (idle or not).
                    Interlocked.Exchange(ref _configArrived, new(TaskCreationOptions.RunContinuationsAsynchronously)).TrySetResult();
                    Pump(processing);
                    break;
                case SegmentStreamRequest.MessageOneofCase.Frame:
                    await AcceptAsync(message.Frame, reading, processing).ConfigureAwait(false);
                    break;
                default:
                    // Reading stops here, but the frames already accepted are still answered before the
                    // call ends with this error (every frame is answered once).
                    _badMessage = RpcErrors.InvalidArgument("message", "A stream message must carry a config or a frame (a newer client's message this server does not know is one too); the stream ended after answering the frames before it.");
                    return;
            }
        }
    }

    private async Task AcceptAsync(StreamFrame frame, CancellationToken reading, CancellationToken processing)
    {
        // Bounded answers: a client that stops reading stops being read.
        await _unwritten.WaitAsync(reading).ConfigureAwait(false);
        var slot = new FrameSlot(frame.FrameId, _settings, frame.Image, time.GetTimestamp()) { Span = frames.Start(frame.FrameId, _frameIndex++) };
        _ledger.Received(slot.ReceivedAt);
        _ordered.Writer.TryWrite(slot);
        try
        {
            await EnqueueAsync(slot, reading).ConfigureAwait(false);
        }
        catch (OperationCanceledException)
        {
            // Never queued, so nothing else will answer it.
            SkipLocked(slot, _draining ? SkipReason.Draining : SkipReason.StreamEnded);
            throw;
        }

        Pump(processing);
    }

    private async Task EnqueueAsync(FrameSlot slot, CancellationToken cancellationToken)
    {
        while (true)
        {
            lock (_lock)
            {
                // Each waiting frame keeps the policy it was sent under: a newer frame supersedes only
                // LATEST_ONLY frames, a full buffer drops only DROP_OLDEST frames, and QUEUE frames are
                // never skipped, whatever config came after them.
                SkipWaitingLocked(OverloadPolicy.LatestOnly, SkipReason.Superseded);
                if (_waiting.Count >= limits.PendingFrames)
                {
                    for (var node = _waiting.First; node is not null; node = node.Next)
                    {
                        if (node.Value.Settings.Policy == OverloadPolicy.DropOldest)
                        {
                            SkipLocked(node.Value, SkipReason.DroppedOldest);
                            _waiting.Remove(node);
                            break;
                        }
                    }
                }

                if (_waiting.Count < limits.PendingFrames)
                {
                    _waiting.AddLast(slot);
                    break;
                }
            }

            // OVERLOAD_POLICY_QUEUE with a full buffer: wait for a frame to start.
            await _waitingChanged.WaitAsync(cancellationToken).ConfigureAwait(false);
        }
    }

    private void Pump(CancellationToken cancellationToken)
    {
        var inFlightLimit = _governor.InFlight(_settings, _ledger.InputFps());
        var now = time.GetTimestamp();
        lock (_lock)
        {
            while (_waiting.Count > 0 && _inFlight < inFlightLimit)
            {
                if (!RoomForAnswerLocked())
                {
                    buffers.HoldBack();
                    break;
                }

                var slot = _waiting.First!.Value;
                _waiting.RemoveFirst();

                // The newest frame still starts when none is in flight: its result is the freshest the
                // stream can have, and skipping it would leave the engine idle.
                if ((_waiting.Count > 0 || _inFlight > 0) && _governor.TooOld(slot.Settings, time.GetElapsedTime(slot.ReceivedAt, now).TotalSeconds))
                {
                    SkipLocked(slot, SkipReason.TooOld);
                    continue;
                }

                _inFlight++;
                _processing.RemoveAll(t => t.IsCompleted);
                _processing.Add(ProcessAsync(slot, cancellationToken));
            }

            if (_waitingChanged.CurrentCount == 0)
            {
                _waitingChanged.Release();
            }
        }
    }

    // Bounded bytes: a frame starts only while the answers held, those in flight (each guessed as large
    // as the largest so far) and its own fit under MaxUnwrittenBytes. Before the first result nothing is
    // known, so one frame at a time; an answer larger than the bound still goes through alone.
    private bool RoomForAnswerLocked() =>
        (_inFlight == 0 && _heldBytes == 0)
        || (_largestAnswer > 0 && _heldBytes + ((_inFlight + 1) * _largestAnswer) <= limits.MaxUnwrittenBytes);

    private async Task ProcessAsync(FrameSlot slot, CancellationToken cancellationToken)
    {
        await Task.Yield();
        Activity.Current = slot.Span ?? Activity.Current;
        var startedAt = time.GetTimestamp();
        try
        {
            if (slot.Settings.Rejection is { } rejection)
            {
                slot.Outcome.TrySetResult(FrameOutcome.Failed(rejection));
                return;
            }

            var postprocess = slot.Settings.Postprocess;
            if (slot.Settings.Downscales && _governor.OutputScale is var scale and < 1f)
            {
                postprocess = postprocess with { Output = Engine.Postprocessing.OutputSize.Downscaled(scale) };
            }

            var request = new SegmentationRequest
            {
                Model = slot.Settings.Model,
                ModelVersion = slot.Settings.ModelVersion,
                Image = RequestMapper.ToImageSource(slot.Image),
                Tasks = slot.Settings.Tasks,
                Postprocess = postprocess,
                Deadline = context.Deadline == DateTime.MaxValue ? null : new DateTimeOffset(context.Deadline.ToUniversalTime(), TimeSpan.Zero),

                // A busy server slows a stream down instead of failing its frames: a frame in flight waits
                // for capacity, this stream's frames behind it wait in its buffer (where DROP_OLDEST and
                // LATEST_ONLY skip them, with a reason) and, under QUEUE, reading stops.
                WaitForCapacity = true,
            };
            slot.Image = null;
            using var result = await engine.SegmentAsync(request, cancellationToken).ConfigureAwait(false);

            // Encoding and reading masks for tracking happen here, for several frames at once; the
            // ordered writer only matches runs, so a stream keeps up with as many unary callers.
            var segments = (slot.Settings.Tasks & (SegmentationTasks.Instance | SegmentationTasks.Panoptic)) != 0 ? FrameSegments.From(result, slot.Settings.Tracking.MinInstanceScore) : null;
            var response = ResponseMapper.ToResponse(result, slot.FrameId, slot.Settings.Options, null, time, slot.ReceivedAt);
            var maps = slot.Settings.Delta is null ? null : new DeltaMaps(result.Semantic?.Values.ToArray(), result.Panoptic?.SegmentIds.Values.ToArray());
            _governor.Served(slot.Settings, time.GetElapsedTime(startedAt).TotalSeconds);
            // The maps a delta stream keeps for its writer are held as well.
            var bytes = response.CalculateSize() + (((maps?.Semantic?.Length ?? 0) + (maps?.Panoptic?.Length ?? 0)) * sizeof(ushort));
            lock (_lock)
            {
                _heldBytes += bytes;
                _largestAnswer = Math.Max(_largestAnswer, bytes);
            }

            _ledger.Hold(bytes);
            buffers.Add(bytes);
            slot.Outcome.TrySetResult(new FrameOutcome(response, segments, null, SkipReason.Unspecified) { Maps = maps, Bytes = bytes });
        }
        catch (SegmentationException ex)
        {
            slot.Outcome.TrySetResult(FrameOutcome.Failed(ex));
        }
        catch (OperationCanceledException)
        {
            slot.Outcome.TrySetResult(FrameOutcome.Skipped(SkipReason.StreamEnded));
        }
        catch (Exception ex)
        {
            frames.LogFrameFailed(ex, slot.FrameId, context.Method, slot.Settings.Model);
            slot.Outcome.TrySetResult(FrameOutcome.Failed(StatusCode.Internal, $"The frame failed: {ex.Message}"));
        }
        finally
        {
            lock (_lock)
            {
                _inFlight--;
            }

            if (!cancellationToken.IsCancellationRequested)
            {
                Pump(cancellationToken);
            }
        }
    }

    // Frames the call ended before their answers were written (cancelled, the connection lost): their
    // spans end and they are counted, as skipped because the stream ended.
    private void EndUnwritten()
    {
        if (_writing is { } current)
        {
            FrameTelemetry.End(current, FrameOutcome.Skipped(SkipReason.StreamEnded));
        }

        while (_ordered.Reader.TryRead(out var left))
        {
            FrameTelemetry.End(left, FrameOutcome.Skipped(SkipReason.StreamEnded));
        }
    }

    private async Task WriteAsync(CancellationTokenSource abort)
    {
        try
        {
            await WriteAnswersAsync(abort.Token).ConfigureAwait(false);
        }
        catch (Exception ex) when (ex is not OperationCanceledException || !abort.IsCancellationRequested)
        {
            // The reader waits for answers to be written before it reads on: without this it would wait
            // until the client gives up, and the call would end without the writer's error.
            await abort.CancelAsync().ConfigureAwait(false);
            throw;
        }
    }

    private async Task WriteAnswersAsync(CancellationToken cancellationToken)
    {
        while (true)
        {
            if (!_ordered.Reader.TryRead(out var slot))
            {
                if (!await WithStatusesAsync(_ordered.Reader.WaitToReadAsync(cancellationToken).AsTask(), cancellationToken).ConfigureAwait(false))
                {
                    break;
                }

                continue;
            }

            _writing = slot;
            var outcome = await WithStatusesAsync(slot.Outcome.Task, cancellationToken).ConfigureAwait(false);
            var response = new SegmentStreamResponse { FrameId = slot.FrameId, Draining = _draining };
            if (outcome.Result is { } result)
            {
                if (outcome.Segments is { } segments)
                {
                    // Tracks expire by the frames' arrival times: StreamFrame carries no capture time.
                    ResponseMapper.SetTrackIds(result, _tracker.Track(segments, slot.Settings.Tracking, time.GetElapsedTime(0, slot.ReceivedAt)));
                }

                _delta.Encode(result, outcome.Maps, slot.Settings);

                response.Result = result;
            }
            else if (outcome.Error is { } error)
            {
                response.Error = error;
            }
            else
            {
                response.Skipped = new FrameSkipped { Reason = outcome.Skip };
            }

            var age = time.GetElapsedTime(slot.ReceivedAt);
            if (!await TryWriteAsync(response, cancellationToken).ConfigureAwait(false))
            {
                // gRPC refuses a message over MaxSendMessageSize before writing any of it: the frame is
                // answered with the reason instead and the stream goes on. The client holds no base from
                // it, so the next result is complete.
                _delta.Forget();
                var tooLarge = FrameOutcome.Failed(
                    StatusCode.ResourceExhausted,
                    $"The answer to this frame is {response.CalculateSize()} bytes, over the server's largest message (MaskFormer:Grpc:MaxSendMessageSize); " +
                    "ask for fewer tasks, a smaller output_size, rle_format RLE_FORMAT_COMPRESSED or label_map_encoding PNG.");
                outcome = tooLarge with { Bytes = outcome.Bytes };
                await responses.WriteAsync(new SegmentStreamResponse { FrameId = slot.FrameId, Draining = _draining, Error = outcome.Error }, cancellationToken).ConfigureAwait(false);
            }

            FrameTelemetry.End(slot, outcome);
            _ledger.Written(outcome, age);
            if (outcome.Bytes > 0)
            {
                lock (_lock)
                {
                    _heldBytes -= outcome.Bytes;
                }

                buffers.Add(-outcome.Bytes);
                if (!_processingToken.IsCancellationRequested)
                {
                    Pump(_processingToken);
                }
            }

            _unwritten.Release();
            if (StatusInterval() is { } interval && time.GetElapsedTime(_lastStatus) >= interval)
            {
                await WriteStatusAsync(final: false, cancellationToken).ConfigureAwait(false);
            }
        }

        if (_settings.StatusInterval is not null)
        {
            await WriteStatusAsync(final: true, cancellationToken).ConfigureAwait(false);
        }
    }

    // Waits for the next frame or the next outcome, writing a status each StatusInterval meanwhile: a
    // client watching the stream hears from it while the engine is slow or no frame comes. A config
    // wakes the wait, so the interval it sets (or turns off) applies from its arrival, not the next frame.
    private async Task<T> WithStatusesAsync<T>(Task<T> next, CancellationToken cancellationToken)
    {
        Task<Task>? wake = null;
        while (!next.IsCompleted)
        {
            // Taken before the settings are read, so a config that comes in between still wakes it; kept
            // across ticks, as a new one each tick would stay registered on next until it completes.
            if (wake is null || wake.IsCompleted)
            {
                wake = Task.WhenAny(next, Volatile.Read(ref _configArrived).Task);
            }

            var interval = StatusInterval();
            if (interval is null)
            {
                await wake.WaitAsync(cancellationToken).ConfigureAwait(false);
                continue;
            }

            var due = interval.Value - time.GetElapsedTime(_lastStatus);
            if (due <= TimeSpan.Zero)
            {
                await WriteStatusAsync(final: false, cancellationToken).ConfigureAwait(false);
                continue;
            }

            try
            {
                await wake.WaitAsync(due, time, cancellationToken).ConfigureAwait(false);
            }
            catch (TimeoutException)
            {
            }
        }

        return await next.ConfigureAwait(false);
    }

    // The interval of the latest config; statuses turned on count their first interval from then, not
    // from the last status before they were turned off (or the call's start).
    private TimeSpan? StatusInterval()
    {
        var interval = _settings.StatusInterval;
        if (interval is not null && _statusInterval is null)
        {
            _lastStatus = time.GetTimestamp();
        }

        _statusInterval = interval;
        return interval;
    }

    private async Task<bool> TryWriteAsync(SegmentStreamResponse response, CancellationToken cancellationToken)
    {
        try
        {
            await responses.WriteAsync(response, cancellationToken).ConfigureAwait(false);
            return true;
        }
        catch (RpcException ex) when (ex.StatusCode == StatusCode.ResourceExhausted && response.Result is not null)
        {
            return false;
        }
    }

    private Task WriteStatusAsync(bool final, CancellationToken cancellationToken)
    {
        var status = _ledger.Snapshot(_governor, _governor.UsableInFlight(_settings, _ledger.InputFps()), _settings.Downscales ? _governor.OutputScale : 1f, final);
        _lastStatus = time.GetTimestamp();
        return responses.WriteAsync(new SegmentStreamResponse { Status = status, Draining = _draining }, cancellationToken);
    }

    private void SkipWaiting(SkipReason reason)
    {
        lock (_lock)
        {
            SkipAllWaitingLocked(reason);
        }
    }

    private void SkipAllWaitingLocked(SkipReason reason)
    {
        foreach (var waiting in _waiting)
        {
            SkipLocked(waiting, reason);
        }

        _waiting.Clear();
    }

    private void SkipWaitingLocked(OverloadPolicy policy, SkipReason reason)
    {
        var node = _waiting.First;
        while (node is not null)
        {
            var next = node.Next;
            if (node.Value.Settings.Policy == policy)
            {
                SkipLocked(node.Value, reason);
                _waiting.Remove(node);
            }

            node = next;
        }
    }

    private static void SkipLocked(FrameSlot slot, SkipReason reason)
    {
        slot.Image = null;
        slot.Outcome.TrySetResult(FrameOutcome.Skipped(reason));
    }

}
