using System.Buffers;
using System.Buffers.Binary;
using System.IO.Pipelines;
using Grpc.Core;
using MaskFormer.Engine;
using MaskFormer.Server.Diagnostics;
using MaskFormer.Server.Hosting;
using MaskFormer.Server.Services;

namespace MaskFormer.Server.Limits;

/// <summary>
/// A call's request body as gRPC reads it, one message at a time, each message's bytes reserved from the
/// <see cref="RequestBytesBudget"/> once gRPC asks for it and its 5-byte header is in, before gRPC
/// buffers it. Nothing past the message gRPC reads is shown to it, so a message it has not asked for
/// holds no budget and its sender stays held back by HTTP/2 flow control.
/// <list type="bullet">
/// <item>A unary call that finds no room fails RESOURCE_EXHAUSTED with RetryInfo at once, and holds its
/// bytes until the call ends; a stream waits for room, and gives each message's bytes back once gRPC has
/// taken it.</item>
/// <item>A compressed message counts as the largest message, what it may decompress to.</item>
/// <item>A message holding bytes must keep arriving at <c>MinRequestBytesPerSecond</c> after a grace
/// period, else the call fails: a header that claims 64 MiB and stops would hold them for ever.</item>
/// </list>
/// </summary>
internal sealed class BudgetedRequestReader(PipeReader inner, RequestBytesBudget budget, RequestBytesLimits limits, bool unary, TimeProvider time) : PipeReader
{
    private ReadOnlySequence<byte> _returned;
    private CancellationTokenSource? _waitCancel;
    private CancellationTokenSource? _arrivalDeadline;

    // Offsets in the request body: where the buffer gRPC sees starts, where the body seen so far ends,
    // and where the next message's header starts.
    private long _consumed;
    private long _visible;
    private long _nextHeader;

    // The message gRPC reads now: where its header starts, the bytes it holds, and since when.
    private long _heldStart;
    private long _held;
    private long _heldSince;

    public override async ValueTask<ReadResult> ReadAsync(CancellationToken cancellationToken = default)
    {
        while (true)
        {
            var result = await ReadInnerAsync(cancellationToken).ConfigureAwait(false);
            if (Admit(result.Buffer) is not { } wait)
            {
                return Show(result);
            }

            if (result.IsCanceled)
            {
                inner.AdvanceTo(result.Buffer.Start);
                return await CanceledAsync(cancellationToken).ConfigureAwait(false);
            }

            // No room for the message gRPC needs: nothing more is taken from the body until there is.
            inner.AdvanceTo(result.Buffer.Start);
            using var waitCancel = CancellationTokenSource.CreateLinkedTokenSource(cancellationToken);
            _waitCancel = waitCancel;
            try
            {
                await budget.ReserveAsync(wait.Bytes, waitCancel.Token).ConfigureAwait(false);
            }
            catch (OperationCanceledException) when (!cancellationToken.IsCancellationRequested)
            {
                return await CanceledAsync(cancellationToken).ConfigureAwait(false);
            }
            finally
            {
                _waitCancel = null;
            }

            Hold(wait.Bytes, wait.Length);
        }
    }

    public override bool TryRead(out ReadResult result)
    {
        if (!inner.TryRead(out var read))
        {
            result = default;
            return false;
        }

        _visible = _consumed + read.Buffer.Length;
        if (Admit(read.Buffer) is not null)
        {
            inner.AdvanceTo(read.Buffer.Start);
            result = default;
            return false;
        }

        result = Show(read);
        return true;
    }

    public override void AdvanceTo(SequencePosition consumed) => AdvanceTo(consumed, consumed);

    public override void AdvanceTo(SequencePosition consumed, SequencePosition examined)
    {
        _consumed += _returned.Slice(_returned.Start, consumed).Length;
        inner.AdvanceTo(consumed, examined);

        // A stream's message is given back once gRPC has taken it; a unary call's lives on in the request.
        if (!unary && _held > 0 && _consumed >= _nextHeader)
        {
            budget.Release(_held);
            _held = 0;
        }
    }

    public override void CancelPendingRead()
    {
        _waitCancel?.Cancel();
        inner.CancelPendingRead();
    }

    public override void Complete(Exception? exception = null) => inner.Complete(exception);

    /// <summary>Gives back what is still held; the call has ended.</summary>
    public void ReleaseAll()
    {
        budget.Release(_held);
        _held = 0;
        _arrivalDeadline?.Dispose();
    }

    // The inner read, while a message holding bytes is still arriving bounded by the time by which the
    // bytes in so far must have been joined by more.
    private async ValueTask<ReadResult> ReadInnerAsync(CancellationToken cancellationToken)
    {
        if (_held == 0 || limits.MinBytesPerSecond <= 0 || _visible >= _nextHeader)
        {
            var read = await inner.ReadAsync(cancellationToken).ConfigureAwait(false);
            _visible = _consumed + read.Buffer.Length;
            return read;
        }

        var arrived = _visible - _heldStart;
        var due = RequestBytesLimits.GracePeriod + TimeSpan.FromSeconds((double)arrived / limits.MinBytesPerSecond);
        var left = due - time.GetElapsedTime(_heldSince);
        if (left <= TimeSpan.Zero)
        {
            throw TooSlow();
        }

        // One timer for the call, re-armed for each read of a message still arriving (a large upload is
        // many reads); it fires only to end the call.
        var deadline = _arrivalDeadline ??= new CancellationTokenSource(Timeout.InfiniteTimeSpan, time);
        deadline.CancelAfter(left);
        using var linked = cancellationToken.CanBeCanceled ? CancellationTokenSource.CreateLinkedTokenSource(cancellationToken, deadline.Token) : null;
        try
        {
            var read = await inner.ReadAsync(linked?.Token ?? deadline.Token).ConfigureAwait(false);
            _visible = _consumed + read.Buffer.Length;
            return read;
        }
        catch (OperationCanceledException) when (deadline.IsCancellationRequested && !cancellationToken.IsCancellationRequested)
        {
            throw TooSlow();
        }
        finally
        {
            deadline.CancelAfter(Timeout.InfiniteTimeSpan);
        }
    }

    // After a cancelled wait: an empty, cancelled read, as the inner reader gives after CancelPendingRead.
    private async ValueTask<ReadResult> CanceledAsync(CancellationToken cancellationToken)
    {
        var read = await inner.ReadAsync(cancellationToken).ConfigureAwait(false);
        _returned = read.Buffer.Slice(0, 0);
        return new ReadResult(_returned, isCanceled: true, isCompleted: false);
    }

    // Shows gRPC the buffer up to the next message's header: the message it reads now, whole or in part.
    private ReadResult Show(ReadResult result)
    {
        var shown = Math.Min(result.Buffer.Length, _nextHeader - _consumed);
        var truncated = _nextHeader > _consumed && shown < result.Buffer.Length;
        _returned = truncated ? result.Buffer.Slice(0, shown) : result.Buffer;
        return new ReadResult(_returned, result.IsCanceled, result.IsCompleted && !truncated);
    }

    // When gRPC needs the next message and its header is in: reserves it, or says what to wait for
    // (a unary call fails instead).
    private (long Bytes, long Length)? Admit(ReadOnlySequence<byte> buffer)
    {
        if (_nextHeader != _consumed || buffer.Length < GrpcServerOptions.MessageFrameHeader)
        {
            return null;
        }

        Span<byte> header = stackalloc byte[GrpcServerOptions.MessageFrameHeader];
        buffer.Slice(0, GrpcServerOptions.MessageFrameHeader).CopyTo(header);
        long length = BinaryPrimitives.ReadUInt32BigEndian(header[1..]);

        // gRPC refuses a message over its limit from the header alone; a compressed one may inflate to the limit.
        var bytes = length > limits.MaxMessageSize ? 0 : header[0] != 0 ? limits.MaxMessageSize : length;
        if (bytes == 0 || budget.TryReserve(bytes))
        {
            Hold(bytes, length);
            return null;
        }

        if (unary)
        {
            inner.AdvanceTo(buffer.Start);
            RpcTelemetry.RequestBytesRefused.Add(1);
            throw RpcErrors.Overloaded(
                $"The server holds its limit of {budget.Capacity} bytes of request messages (MaskFormer:Grpc:MaxRequestBytesInFlight); retry shortly.",
                GrpcServerOptions.CallLimitRetryAfter);
        }

        return (bytes, length);
    }

    private void Hold(long bytes, long length)
    {
        // A unary body's second message (gRPC refuses it) is added to the first's.
        _held += bytes;
        _heldStart = _nextHeader;
        _heldSince = time.GetTimestamp();
        _nextHeader += GrpcServerOptions.MessageFrameHeader + length;
    }

    private RpcException TooSlow()
    {
        RpcTelemetry.RequestBytesRefused.Add(1);
        return RpcErrors.Overloaded(
            $"The request message arrived slower than MaskFormer:Grpc:MinRequestBytesPerSecond ({limits.MinBytesPerSecond} bytes a second after {RequestBytesLimits.GracePeriod.TotalSeconds:0} s) while it held part of the request-bytes budget.");
    }
}

/// <summary>What <see cref="BudgetedRequestReader"/> needs of <see cref="GrpcServerOptions"/>.</summary>
internal sealed record RequestBytesLimits(int MaxMessageSize, long MinBytesPerSecond)
{
    /// <summary>How long a message may take before its arrival rate is checked (as Kestrel's MinRequestBodyDataRate).</summary>
    public static TimeSpan GracePeriod { get; } = TimeSpan.FromSeconds(5);
}
