using Grpc.Net.Client;

namespace MaskFormer.Cli.Commands;

/// <summary>
/// The channel every command opens to the server, with an HTTP/2 stream window far larger than an answer usually is.
/// </summary>
/// <remarks>
/// Kestrel can lose a response for good when the client's flow control resumes it after its last write
/// (dotnet/aspnetcore#53736: the pooled stream stays marked as scheduled and the next request on it is
/// never answered). That needs the client's windows to run out mid-answer, and answers with masks pass
/// the default 64 KiB stream window. With a window larger than the answer they do not: one caller, 512x512
/// answers of 76 KB, the tiny model, lost 5 answers in 27,751 calls with the default window and none in
/// 39,681 with this one (2026-12-05).
/// </remarks>
internal static partial class ServerChannel
{
    /// <summary>The largest stream window <see cref="SocketsHttpHandler"/> allows by default (16 MiB).</summary>
    public const int StreamWindowBytes = 16 << 20;

    /// <summary>The variable holding a bearer token every call carries (a server with MaskFormer:Security:TokensFile needs one).</summary>
    public const string TokenVariable = "MASKFORMER_TOKEN";


    /// <summary>
    /// The channel's options. No receive limit (the client's default is 4 MB): a result's size is the
    /// server's to bound (MaskFormer:Grpc:MaxSendMessageSize); a 4K image's instance masks on a model of
    /// 100 queries came to 13 MB. With $MASKFORMER_TOKEN set, every request carries it as
    /// "authorization: Bearer" (from the environment, not the command line, where other users could read it).
    /// </summary>
    internal static GrpcChannelOptions CreateOptions(Action<SocketsHttpHandler>? configureHandler = null)
    {
        var handler = CreateHandler();
        try
        {
            configureHandler?.Invoke(handler);
        }
        catch
        {
            handler.Dispose();
            throw;
        }

        return new()
        {
            HttpHandler = Environment.GetEnvironmentVariable(TokenVariable) is { Length: > 0 } token
                ? new BearerToken(token) { InnerHandler = handler }
                : handler,
            DisposeHttpClient = true,
            MaxReceiveMessageSize = null,

            // A lost server is tried again at least every 4 s (the default waits up to 2 minutes), so a
            // stream reconnecting within --reconnect-for finds a replacement soon after it is up.
            InitialReconnectBackoff = TimeSpan.FromMilliseconds(250),
            MaxReconnectBackoff = TimeSpan.FromSeconds(4),
        };
    }

    /// <summary>What GrpcChannel would create (several HTTP/2 connections when streams run out), with the large window.</summary>
    public static SocketsHttpHandler CreateHandler() =>
        new() { EnableMultipleHttp2Connections = true, InitialHttp2StreamWindowSize = StreamWindowBytes };
}

/// <summary>Adds "authorization: Bearer &lt;token&gt;" to every request of the channel.</summary>
internal sealed class BearerToken(string token) : DelegatingHandler
{
    protected override Task<HttpResponseMessage> SendAsync(HttpRequestMessage request, CancellationToken cancellationToken)
    {
        request.Headers.Authorization = new System.Net.Http.Headers.AuthenticationHeaderValue("Bearer", token);
        return base.SendAsync(request, cancellationToken);
    }
}
