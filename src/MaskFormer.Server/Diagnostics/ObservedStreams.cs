using Grpc.Core;

namespace MaskFormer.Server.Diagnostics;

/// <summary>Shows each request message of a streaming call to its <see cref="CallScope"/>.</summary>
internal sealed class ObservedStreamReader<T>(IAsyncStreamReader<T> inner, CallScope call) : IAsyncStreamReader<T>
{
    public T Current => inner.Current;

    public async Task<bool> MoveNext(CancellationToken cancellationToken)
    {
        if (!await inner.MoveNext(cancellationToken).ConfigureAwait(false))
        {
            return false;
        }

        call.OnRequest(inner.Current!);
        return true;
    }
}

/// <summary>Shows each response message of a streaming call to its <see cref="CallScope"/>.</summary>
internal sealed class ObservedStreamWriter<T>(IServerStreamWriter<T> inner, CallScope call) : IServerStreamWriter<T>
{
    public WriteOptions? WriteOptions
    {
        get => inner.WriteOptions;
        set => inner.WriteOptions = value;
    }

    public Task WriteAsync(T message) => WriteAsync(message, CancellationToken.None);

    public async Task WriteAsync(T message, CancellationToken cancellationToken)
    {
        await inner.WriteAsync(message, cancellationToken).ConfigureAwait(false);
        call.OnResponse(message!);
    }
}
