using System.Buffers.Binary;
using System.Net;
using Google.Protobuf;
using MaskFormer.Contracts.V1;

namespace MaskFormer.Server.Tests;

/// <summary>
/// A real gRPC call over HTTP/2 whose request body stops after its first bytes (a gRPC header and a
/// few more, or a whole message), until <see cref="FinishAsync"/> sends the rest: an upload on a slow
/// link, or a stream that has sent a frame and stays open. <see cref="SentBytes"/> says how much of the
/// body has gone out; cancelling the token given to <see cref="Start"/> resets the call.
/// </summary>
internal sealed class SlowUpload : IAsyncDisposable
{
    private readonly TaskCompletionSource _rest = new(TaskCreationOptions.RunContinuationsAsynchronously);
    private Task<HttpResponseMessage> _response = null!;
    private long _sent;

    /// <summary>The body's length, its gRPC header included.</summary>
    public int BodyBytes { get; private set; }

    /// <summary>Bytes of the body handed to the connection so far.</summary>
    public long SentBytes => Interlocked.Read(ref _sent);

    public static SlowUpload Start(HttpClient http, Uri address, string method, IMessage message, int sentFirst, bool compress = false, CancellationToken cancellationToken = default)
    {
        var upload = new SlowUpload();
        var payload = message.ToByteArray();
        if (compress)
        {
            using var compressed = new MemoryStream();
            using (var gzip = new System.IO.Compression.GZipStream(compressed, System.IO.Compression.CompressionLevel.Fastest, leaveOpen: true))
            {
                gzip.Write(payload);
            }

            payload = compressed.ToArray();
        }

        var body = new byte[5 + payload.Length];
        body[0] = compress ? (byte)1 : (byte)0;
        BinaryPrimitives.WriteUInt32BigEndian(body.AsSpan(1), (uint)payload.Length);
        payload.CopyTo(body, 5);
        upload.BodyBytes = body.Length;
        var request = new HttpRequestMessage(HttpMethod.Post, new Uri(address, $"/maskformer.v1.SegmentationService/{method}"))
        {
            Version = HttpVersion.Version20,
            VersionPolicy = HttpVersionPolicy.RequestVersionExact,
            Content = new HeldContent(upload, body, Math.Min(sentFirst, body.Length)),
        };
        request.Content.Headers.ContentType = new System.Net.Http.Headers.MediaTypeHeaderValue("application/grpc");
        request.Headers.TryAddWithoutValidation("te", "trailers");
        if (compress)
        {
            request.Headers.TryAddWithoutValidation("grpc-encoding", "gzip");
        }

        upload._response = http.SendAsync(request, HttpCompletionOption.ResponseHeadersRead, cancellationToken);
        return upload;
    }

    public async Task<SegmentResponse> FinishAsync()
    {
        _rest.TrySetResult();
        var answer = await AnswerAsync();
        Assert.True(answer.Status == "0", $"grpc-status {answer.Status}: {answer.Message}");
        return SegmentResponse.Parser.ParseFrom(answer.Body.AsSpan(5).ToArray());
    }

    /// <summary>The call's grpc-status and grpc-message, without sending the rest.</summary>
    public async Task<(string Status, string Message)> StatusAsync()
    {
        var answer = await AnswerAsync();
        return (answer.Status, answer.Message);
    }

    /// <summary>The call's answer, without sending the rest: its status, message, google.rpc.Status details (if any) and body.</summary>
    public async Task<Answer> AnswerAsync()
    {
        using var response = await _response;
        var bytes = await response.Content.ReadAsByteArrayAsync();

        // A call failed before its message was read answers in one HEADERS frame (trailers-only).
        string Header(string name) =>
            response.TrailingHeaders.TryGetValues(name, out var trailer) ? trailer.Single()
            : response.Headers.TryGetValues(name, out var header) ? header.Single()
            : "missing";
        var details = Header("grpc-status-details-bin");
        return new Answer(
            Header("grpc-status"),
            Uri.UnescapeDataString(Header("grpc-message")),
            details == "missing" ? null : Google.Rpc.Status.Parser.ParseFrom(Convert.FromBase64String(details.PadRight((details.Length + 3) / 4 * 4, '='))),
            bytes);
    }

    public async ValueTask DisposeAsync()
    {
        _rest.TrySetResult();
        try
        {
            (await _response).Dispose();
        }
        catch (Exception ex) when (ex is HttpRequestException or OperationCanceledException)
        {
        }
    }

    internal sealed record Answer(string Status, string Message, Google.Rpc.Status? Details, byte[] Body);

    private sealed class HeldContent(SlowUpload upload, byte[] body, int sentFirst) : HttpContent
    {
        protected override async Task SerializeToStreamAsync(Stream stream, TransportContext? context)
        {
            await stream.WriteAsync(body.AsMemory(0, sentFirst));
            await stream.FlushAsync();
            Interlocked.Add(ref upload._sent, sentFirst);
            await upload._rest.Task;
            await stream.WriteAsync(body.AsMemory(sentFirst));
            Interlocked.Add(ref upload._sent, body.Length - sentFirst);
        }

        protected override bool TryComputeLength(out long length)
        {
            length = 0;
            return false;
        }
    }
}
