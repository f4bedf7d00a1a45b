using MaskFormer.Server.Diagnostics;

namespace MaskFormer.Server.Limits;

/// <summary>
/// The bytes of request messages the server holds at once, over all calls
/// (<see cref="Hosting.GrpcServerOptions.MaxRequestBytesInFlight"/>). gRPC reads a message whole before
/// any handler sees it, so admission control, which weighs decoded pixels, cannot bound what many large
/// uploads at once take; this counts each message from its 5-byte gRPC header on. Waiters are served
/// first come, first served, and a free reservation never overtakes one that waits.
/// </summary>
internal sealed class RequestBytesBudget
{
    private readonly Lock _lock = new();
    private readonly LinkedList<Waiter> _waiters = new();
    private long _used;

    public RequestBytesBudget(long capacity)
    {
        ArgumentOutOfRangeException.ThrowIfNegativeOrZero(capacity);
        Capacity = capacity;
    }

    public long Capacity { get; }

    /// <summary>Bytes reserved now.</summary>
    public long InUse
    {
        get
        {
            lock (_lock)
            {
                return _used;
            }
        }
    }

    /// <summary>Reservations waiting for room now.</summary>
    public int Waiting
    {
        get
        {
            lock (_lock)
            {
                return _waiters.Count;
            }
        }
    }

    /// <summary>Reserves <paramref name="bytes"/> if they fit now and nobody waits before them.</summary>
    public bool TryReserve(long bytes)
    {
        lock (_lock)
        {
            return TryReserveLocked(bytes);
        }
    }

    /// <summary>Reserves <paramref name="bytes"/>, waiting behind earlier waiters until they fit.</summary>
    public Task ReserveAsync(long bytes, CancellationToken cancellationToken)
    {
        Waiter waiter;
        lock (_lock)
        {
            // Under the same lock as the enqueue below, so no release can fall between the two.
            if (TryReserveLocked(bytes))
            {
                return Task.CompletedTask;
            }

            cancellationToken.ThrowIfCancellationRequested();
            waiter = new Waiter(bytes);
            waiter.Node = _waiters.AddLast(waiter);
        }

        // Kept only while the waiter waits: one granted meanwhile has had its (empty) registration disposed.
        var registration = cancellationToken.Register(() => Cancel(waiter, cancellationToken));
        lock (_lock)
        {
            if (waiter.Node is not null)
            {
                (waiter.Registration, registration) = (registration, default);
            }
        }

        registration.Dispose();
        return waiter.Completion.Task;
    }

    public void Release(long bytes)
    {
        if (bytes == 0)
        {
            return;
        }

        List<Waiter>? granted;
        lock (_lock)
        {
            _used -= bytes;
            granted = GrantWaiters();
        }

        RpcTelemetry.RequestBytes.Add(-bytes);
        Complete(granted);
    }

    private bool TryReserveLocked(long bytes)
    {
        if (_waiters.Count > 0 || !Fits(bytes))
        {
            return false;
        }

        _used += bytes;
        RpcTelemetry.RequestBytes.Add(bytes);
        return true;
    }

    // A message larger than the whole budget could never fit: it is let through alone, once nothing
    // else is held (start-up validation keeps the budget above the message limit, so only a message
    // gRPC itself refuses gets here).
    private bool Fits(long bytes) => _used + bytes <= Capacity || _used == 0;

    private void Cancel(Waiter waiter, CancellationToken cancellationToken)
    {
        List<Waiter>? granted;
        lock (_lock)
        {
            if (waiter.Node is null)
            {
                return; // granted first: the caller holds the bytes and releases them as usual
            }

            _waiters.Remove(waiter.Node);
            waiter.Node = null;

            // The waiter at the head may have held back others that fit now.
            granted = GrantWaiters();
        }

        waiter.Completion.TrySetCanceled(cancellationToken);
        Complete(granted);
    }

    // Under the lock: the waiters at the head that fit now, in order, with their bytes reserved.
    private List<Waiter>? GrantWaiters()
    {
        List<Waiter>? granted = null;
        while (_waiters.First is { } first && Fits(first.Value.Bytes))
        {
            _waiters.RemoveFirst();
            first.Value.Node = null;
            _used += first.Value.Bytes;
            (granted ??= []).Add(first.Value);
        }

        return granted;
    }

    // Outside the lock, so continuations never run under it.
    private static void Complete(List<Waiter>? granted)
    {
        foreach (var waiter in granted ?? [])
        {
            RpcTelemetry.RequestBytes.Add(waiter.Bytes);
            waiter.Registration.Dispose();
            waiter.Completion.TrySetResult();
        }
    }

    private sealed class Waiter(long bytes)
    {
        public long Bytes { get; } = bytes;

        public TaskCompletionSource Completion { get; } = new(TaskCreationOptions.RunContinuationsAsynchronously);

        public LinkedListNode<Waiter>? Node { get; set; }

        public CancellationTokenRegistration Registration { get; set; }
    }
}
