namespace MaskFormer.Engine.Admission;

/// <summary>
/// One request's admission: its pixels until disposed, and a concurrency slot while it decodes,
/// pre-processes, post-processes and encodes (given up while it waits for the model).
/// </summary>
internal sealed class AdmissionTicket(AdmissionGate gate, long pixels) : IDisposable
{
    private bool _holdsSlot = true;
    private bool _disposed;

    public long Pixels { get; } = pixels;

    /// <summary>Gives the concurrency slot up while the request waits for the model.</summary>
    public void LeaveSlot()
    {
        if (_holdsSlot && !_disposed)
        {
            _holdsSlot = false;
            gate.ReleaseSlot();
        }
    }

    /// <summary>Takes a slot again to post-process, ahead of requests not yet admitted.</summary>
    public async Task ResumeAsync(CancellationToken cancellationToken)
    {
        if (!_holdsSlot && !_disposed)
        {
            await gate.ResumeAsync(this, cancellationToken).ConfigureAwait(false);
            _holdsSlot = true;
        }
    }

    public void Dispose()
    {
        if (!_disposed)
        {
            _disposed = true;
            gate.Release(Pixels, _holdsSlot);
        }
    }
}
