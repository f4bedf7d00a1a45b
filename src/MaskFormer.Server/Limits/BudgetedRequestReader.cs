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
/// A call's request body as gRPC reads it, with each message's bytes reserved from the
/// <see cref="RequestBytesBudget"/> as soon as its 5-byte header arrives, before gRPC buffers the
/// message. A unary call that finds the budget spent fails RESOURCE_EXHAUSTED with RetryInfo at once and
/// holds its bytes until the call ends; a stream waits for room (its sender is held back by HTTP/2 flow
/// control meanwhile) and gives each message's bytes back once gRPC has taken the message.
/// </summary>
internal sealed class BudgetedRequestReader(PipeReader inner, RequestBytesBudget budget, bool unary, int maxMessageSize) : PipeReader
{
    private readonly Queue<(long End, long Bytes)> _held = new();
    private ReadOnlySequence<byte> _returned;

    // Offsets in the request body: where the buffer gRPC sees starts, and where the next message's
    // header starts.
    private long _consumed;
    private long _nextHeader;

    public override async ValueTask<ReadResult> ReadAsync(CancellationToken cancellationToken = default)
    {
        while (true)
        {
            var result = await inner.ReadAsync(cancellationToken).ConfigureAwait(false);
            var (admitted, wait) = Admit(result.Buffer);
            if (wait is not { } message)
            {
                return Returned(result, admitted);
            }

            // The message gRPC needs next does not fit: nothing is taken from the body until it does.
            inner.AdvanceTo(result.Buffer.Start);
            await budget.ReserveAsync(message.Bytes, cancellationToken).ConfigureAwait(false);
            Hold(message.Bytes, message.Length);
        }
    }

    public override bool TryRead(out ReadResult result)
    {
        if (!inner.TryRead(out var read))
        {
            result = default;
            return false;
        }

        var (admitted, wait) = Admit(read.Buffer);
        if (wait is not null)
        {
            inner.AdvanceTo(read.Buffer.Start);
            result = default;
            return false;
        }

        result = Returned(read, admitted);
        return true;
    }

    public override void AdvanceTo(SequencePosition consumed) => AdvanceTo(consumed, consumed);

    public override void AdvanceTo(SequencePosition consumed, SequencePosition examined)
    {
        _consumed += _returned.Slice(_returned.Start, consumed).Length;
        inner.AdvanceTo(consumed, examined);
        if (unary)
        {
            return; // held until the call ends: the message lives on in the request object
        }

        while (_held.TryPeek(out var message) && message.End <= _consumed)
        {
            _held.Dequeue();
            budget.Release(message.Bytes);
        }
    }

    public override void CancelPendingRead() => inner.CancelPendingRead();

    public override void Complete(Exception? exception = null) => inner.Complete(exception);

    /// <summary>Gives back whatever is still held; the call has ended.</summary>
    public void ReleaseAll()
    {
        while (_held.TryDequeue(out var message))
        {
            budget.Release(message.Bytes);
        }
    }

    private ReadResult Returned(ReadResult result, long admitted)
    {
        // A header that did not fit yet is not shown: gRPC reads up to it, and asks again when it needs it.
        var truncated = admitted < result.Buffer.Length;
        _returned = truncated ? result.Buffer.Slice(0, admitted) : result.Buffer;
        return new ReadResult(_returned, result.IsCanceled, result.IsCompleted && !truncated);
    }

    // Reserves the messages whose headers are in the buffer: returns how much of the buffer may be
    // shown, and the message to wait for when the one gRPC needs next does not fit.
    private (long Admitted, (long Bytes, long Length)? Wait) Admit(ReadOnlySequence<byte> buffer)
    {
        var end = _consumed + buffer.Length;
        while (_nextHeader + GrpcServerOptions.MessageFrameHeader <= end)
        {
            Span<byte> header = stackalloc byte[GrpcServerOptions.MessageFrameHeader];
            buffer.Slice(_nextHeader - _consumed, GrpcServerOptions.MessageFrameHeader).CopyTo(header);
            long length = BinaryPrimitives.ReadUInt32BigEndian(header[1..]);

            // gRPC refuses a message over its limit from the header alone: nothing to hold for it.
            var bytes = length <= maxMessageSize ? length : 0;
            if (bytes == 0 || budget.TryReserve(bytes))
            {
                Hold(bytes, length);
                continue;
            }

            if (unary)
            {
                inner.AdvanceTo(buffer.Start);
                RpcTelemetry.RequestBytesRefused.Add(1);
                throw RpcErrors.ToRpcException(new SegmentationException(
                    SegmentationErrorKind.QueueFull,
                    $"The server holds its limit of {budget.Capacity} bytes of request messages (MaskFormer:Grpc:MaxRequestBytesInFlight); retry shortly.")
                {
                    RetryAfter = GrpcServerOptions.CallLimitRetryAfter,
                });
            }

            return _nextHeader > _consumed ? (_nextHeader - _consumed, null) : (0, (bytes, length));
        }

        return (buffer.Length, null);
    }

    private void Hold(long bytes, long length)
    {
        _nextHeader += GrpcServerOptions.MessageFrameHeader + length;
        _held.Enqueue((_nextHeader, bytes));
    }
}
