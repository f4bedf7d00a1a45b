using System.Collections.Concurrent;
using System.Diagnostics;
using System.Net;
using Google.Protobuf.WellKnownTypes;
using Google.Rpc;
using Grpc.Core;
using Grpc.Net.Client;
using MaskFormer.Cli.Commands;
using MaskFormer.Contracts.V1;
using Microsoft.AspNetCore.Builder;
using Microsoft.AspNetCore.Connections;
using Microsoft.AspNetCore.Hosting;
using Microsoft.AspNetCore.Server.Kestrel.Core;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.Logging;

namespace MaskFormer.Server.Tests;

/// <summary>
/// The CLI's <see cref="ResumingStream"/> against servers that misbehave on cue, over real gRPC: cases a
/// real server cannot be made to produce when a test wants them (a connection lost after the last answer,
/// a RetryInfo of 0, a drain that only ever skips frames, a restart after the camera paused). The real
/// drains and kills are in <see cref="CliReconnectTests"/>.
/// </summary>
public sealed class ResumingStreamTests
{
    private static readonly TimeSpan s_patience = TimeSpan.FromSeconds(30);

    [Fact]
    public async Task EveryFrameAnsweredThenTheConnectionIsLost_TheStreamSucceedsWithoutAnotherCall()
    {
        await using var server = await ScriptedServer.StartAsync(async (call, requests, responses, context) =>
        {
            await AnswerUntilHalfCloseAsync(requests, responses);

            // Every answer is out; the connection goes before the call's trailers.
            await Task.Delay(200);
            ScriptedServer.ConnectionOf(context).Abort();
            await Task.Delay(Timeout.Infinite, context.CancellationToken);
        });

        var (answers, run) = await StreamAsync(server, frames: 3, TimeSpan.FromSeconds(3));
        await run;
        Assert.Equal([1ul, 2ul, 3ul], answers.Select(a => a.FrameId));
        Assert.Equal(1, server.Calls);
    }

    [Fact]
    public async Task RetryInfoOfZero_TheNextCallWaitsTheBackoff()
    {
        var started = new ConcurrentQueue<long>();
        await using var server = await ScriptedServer.StartAsync((call, requests, responses, context) =>
        {
            started.Enqueue(Stopwatch.GetTimestamp());
            throw Unavailable("warming up", TimeSpan.Zero);
        });

        var (_, run) = await StreamAsync(server, frames: 1, TimeSpan.FromSeconds(3));
        var refused = await Assert.ThrowsAsync<RpcException>(() => run.WaitAsync(s_patience));

        // Backoff 0.25 s, 0.5 s, 1 s...: without it, a call every few milliseconds until the stream gives up.
        // (The first call's start, a cold connection on a busy machine, may take a good part of the time.)
        Assert.Equal(StatusCode.Unavailable, refused.StatusCode);
        Assert.Contains("gave up", refused.Status.Detail, StringComparison.Ordinal);
        var gaps = started.Zip(started.Skip(1), (a, b) => Stopwatch.GetElapsedTime(a, b)).ToArray();
        Assert.NotEmpty(gaps);
        Assert.True(gaps.All(gap => gap >= TimeSpan.FromSeconds(0.2)), $"{gaps.Length + 1} calls, the first {string.Join(", ", gaps.Take(8).Select(g => $"{g.TotalMilliseconds:0} ms"))} apart");
    }

    [Fact]
    public async Task AServerThatOnlySkipsFramesAsDraining_IsGivenUpOn()
    {
        // A drain that ran out: every frame skipped as draining, the call ended UNAVAILABLE, again and again.
        await using var server = await ScriptedServer.StartAsync(async (call, requests, responses, context) =>
        {
            await foreach (var request in requests.ReadAllAsync(context.CancellationToken))
            {
                if (request.Frame is { } frame)
                {
                    await responses.WriteAsync(new SegmentStreamResponse { FrameId = frame.FrameId, Draining = true, Skipped = new FrameSkipped { Reason = SkipReason.Draining } });
                    throw Unavailable("The server is shutting down", TimeSpan.FromMilliseconds(100));
                }
            }
        });

        var (answers, run) = await StreamAsync(server, frames: 2, TimeSpan.FromSeconds(2));
        var refused = await Assert.ThrowsAsync<RpcException>(() => run.WaitAsync(s_patience));
        Assert.Equal(StatusCode.Unavailable, refused.StatusCode);
        Assert.Contains("gave up", refused.Status.Detail, StringComparison.Ordinal);
        Assert.Empty(answers);
        Assert.True(server.Calls >= 2, $"{server.Calls} calls");
    }

    [Fact]
    public async Task ServerRestartsAfterTheCameraPausedLongerThanReconnectFor_TheStreamReconnects()
    {
        // The server restarts twice: once just after frame 1 was answered (the stream reconnects at once),
        // and again after the camera has sent nothing for longer than --reconnect-for. No frame waited in
        // that pause, so it is no time without answers: the stream reconnects again.
        var restart = new TaskCompletionSource(TaskCreationOptions.RunContinuationsAsynchronously);
        await using var server = await ScriptedServer.StartAsync(async (call, requests, responses, context) =>
        {
            switch (call)
            {
                case 0:
                    Assert.True(await requests.MoveNext() && requests.Current.Config is not null);
                    Assert.True(await requests.MoveNext());
                    await responses.WriteAsync(Result(requests.Current.Frame.FrameId));
                    throw Unavailable("restarting", retryDelay: null);
                case 1:
                    await restart.Task;
                    throw Unavailable("restarting again", retryDelay: null);
                default:
                    await AnswerUntilHalfCloseAsync(requests, responses);
                    return;
            }
        });

        using var channel = GrpcChannel.ForAddress(server.Address, ServerChannel.CreateOptions());
        var stream = new ResumingStream(new SegmentationService.SegmentationServiceClient(channel), new StreamConfig(), TimeSpan.FromSeconds(1));
        var run = stream.RunAsync(CancellationToken.None);
        var answers = stream.ReadAllAsync(CancellationToken.None).GetAsyncEnumerator();
        await stream.SendAsync(Frame(1), CancellationToken.None);
        Assert.True(await answers.MoveNextAsync());
        Assert.Equal(1ul, answers.Current.FrameId);
        for (var waited = 0; server.Calls < 2; waited += 10)
        {
            Assert.True(waited < 10_000, "the stream did not reconnect after the first restart");
            await Task.Delay(10);
        }

        await Task.Delay(TimeSpan.FromSeconds(1.5));
        restart.SetResult();
        await stream.SendAsync(Frame(2), CancellationToken.None);
        stream.Complete();
        Assert.True(await answers.MoveNextAsync().AsTask().WaitAsync(s_patience));
        Assert.Equal(2ul, answers.Current.FrameId);
        Assert.NotNull(answers.Current.Result);
        Assert.False(await answers.MoveNextAsync());
        await run.WaitAsync(s_patience);
        Assert.Equal(2, stream.Reconnects);
    }

    [Fact]
    public async Task AFrameWaitsLongerThanReconnectFor_TheStreamGivesUp()
    {
        // The other side of the pause rule: once a frame waits, time without answers counts.
        await using var server = await ScriptedServer.StartAsync((call, requests, responses, context) =>
            throw Unavailable("down", TimeSpan.FromMilliseconds(100)));

        var stopwatch = Stopwatch.StartNew();
        var (answers, run) = await StreamAsync(server, frames: 1, TimeSpan.FromSeconds(1));
        var refused = await Assert.ThrowsAsync<RpcException>(() => run.WaitAsync(s_patience));
        Assert.Contains("gave up", refused.Status.Detail, StringComparison.Ordinal);
        Assert.Empty(answers);
        Assert.InRange(stopwatch.Elapsed, TimeSpan.FromSeconds(0.8), TimeSpan.FromSeconds(10));
    }

    [Fact]
    public async Task AConnectionClosedBeforeItsFirstCall_TheStreamGoesOnOnANewOne()
    {
        // .NET's client fails a call whose new connection is closed under it before the call could start
        // INTERNAL ("The HTTP/2 server closed the connection"), its own status, not the server's: a server
        // shutting down does that (CI saw it in CliReconnectTests' drain that runs out).
        await using var server = await ScriptedServer.StartAsync((call, requests, responses, context) => AnswerUntilHalfCloseAsync(requests, responses), closeFirstConnections: 1);

        var (answers, run) = await StreamAsync(server, frames: 2, TimeSpan.FromSeconds(10));
        await run.WaitAsync(s_patience);
        Assert.Equal([1ul, 2ul], answers.Select(a => a.FrameId));
        Assert.Equal(1, server.Calls);
    }

    [Fact]
    public void ConnectionClosedByTheServerWithoutAnError_IsToldApartFromOtherFailures()
    {
        // What a stream still sending saw when its server's drain ran out and the close cost it the trailers
        // (CliReconnectTests and DrainTests, beside a busy run of the project): ResumingStream sends its
        // unanswered frames again on a new call, as for UNAVAILABLE. Not an HTTP/2 error, nor the server's word.
        static Grpc.Core.Status Closed(long errorCode) => new(StatusCode.Internal, "Error reading next message.", new HttpProtocolException(errorCode, "The HTTP/2 server closed the connection. HTTP/2 error code 'NO_ERROR' (0x0).", null));

        Assert.True(RetryingCall.IsConnectionClosedByTheServer(Closed(0)));
        Assert.False(RetryingCall.IsConnectionClosedByTheServer(Closed(2)));
        Assert.False(RetryingCall.IsConnectionClosedByTheServer(new Grpc.Core.Status(StatusCode.Internal, "the server's own")));
        Assert.False(RetryingCall.IsConnectionClosedByTheServer(new Grpc.Core.Status(StatusCode.Cancelled, "cancelled", new HttpProtocolException(0, "closed", null))));
    }

    [Fact]
    public void ConnectionClosedBeforeTheCall_ByAWriteThatMetTheClose_IsToldApartFromNothingListening()
    {
        // The request written as the server closed the connection: .NET's client reports the broken pipe
        // (or a reset) under its I/O errors, where nothing listening is a refused connection.
        static Grpc.Core.Status Failed(System.Net.Sockets.SocketError error) => new(StatusCode.Unavailable, "Error starting gRPC call.",
            new HttpRequestException("An error occurred while sending the request.", new IOException("The request was aborted.",
                new IOException("Unable to write data to the transport connection.", new System.Net.Sockets.SocketException((int)error)))));

        Assert.True(RetryingCall.IsConnectionClosedBeforeTheCall(Failed(System.Net.Sockets.SocketError.Shutdown)));
        Assert.True(RetryingCall.IsConnectionClosedBeforeTheCall(Failed(System.Net.Sockets.SocketError.ConnectionReset)));
        Assert.False(RetryingCall.IsConnectionClosedBeforeTheCall(Failed(System.Net.Sockets.SocketError.ConnectionRefused)));
        Assert.False(RetryingCall.IsConnectionClosedBeforeTheCall(new Grpc.Core.Status(StatusCode.Unavailable, "Error connecting to subchannel.",
            new HttpRequestException("Connection refused", new System.Net.Sockets.SocketException((int)System.Net.Sockets.SocketError.ConnectionRefused)))));
        Assert.False(RetryingCall.IsConnectionClosedBeforeTheCall(new Grpc.Core.Status(StatusCode.Unavailable, "the server's own")));
    }

    [Fact]
    public async Task UnaryCallWhoseConnectionIsClosedBeforeItStarts_IsMadeAgain()
    {
        // The CLI's unary calls (segment, models) under the same close: RetryingCall makes the call again.
        await using var server = await ScriptedServer.StartAsync((call, requests, responses, context) => Task.CompletedTask, closeFirstConnections: 1);
        using var channel = GrpcChannel.ForAddress(server.Address, server.ChannelOptions());
        var client = new SegmentationService.SegmentationServiceClient(channel);

        var response = await RetryingCall.CallAsync(deadline => client.SegmentAsync(new SegmentRequest(), deadline: deadline), TimeSpan.FromSeconds(20), CancellationToken.None);
        Assert.NotNull(response);
    }

    [Fact]
    public async Task UnaryCallWhoseEveryConnectionIsClosedBeforeItStarts_FailsAfterOneMoreTry()
    {
        // A server that closes every new connection before the first call refuses this client (a TLS server
        // that wants a client certificate does it so); waiting does not change that, so the call is not made
        // again until the deadline: after one more connection its own error is seen.
        await using var server = await ScriptedServer.StartAsync((call, requests, responses, context) => Task.CompletedTask, closeFirstConnections: int.MaxValue);
        using var channel = GrpcChannel.ForAddress(server.Address, server.ChannelOptions());
        var client = new SegmentationService.SegmentationServiceClient(channel);

        var failure = await Assert.ThrowsAsync<RpcException>(() => RetryingCall.CallAsync(deadline => client.SegmentAsync(new SegmentRequest(), deadline: deadline), TimeSpan.FromSeconds(20), CancellationToken.None));
        Assert.True(RetryingCall.IsConnectionClosedBeforeTheCall(failure.Status), failure.ToString());
        Assert.Equal(2, server.ClientConnections);
    }

    // Sends frames 1..n, completes, and collects the answers as they are passed on.
    private static async Task<(List<SegmentStreamResponse> Answers, Task Run)> StreamAsync(ScriptedServer server, int frames, TimeSpan reconnectFor)
    {
        var channel = GrpcChannel.ForAddress(server.Address, server.ChannelOptions());
        var stream = new ResumingStream(new SegmentationService.SegmentationServiceClient(channel), new StreamConfig(), reconnectFor);
        var answers = new List<SegmentStreamResponse>();
        var running = stream.RunAsync(CancellationToken.None);
        var reading = Task.Run(async () =>
        {
            await foreach (var answer in stream.ReadAllAsync(CancellationToken.None))
            {
                answers.Add(answer);
            }
        });
        // Sent beside the run: a stream that failed takes no more frames.
        _ = Task.Run(async () =>
        {
            for (var id = 1; id <= frames; id++)
            {
                await stream.SendAsync(Frame((ulong)id), CancellationToken.None);
            }

            stream.Complete();
        });
        await Task.Yield();
        return (answers, RunAsync());

        async Task RunAsync()
        {
            try
            {
                await running;
                await reading;
            }
            finally
            {
                channel.Dispose();
            }
        }
    }

    private static async Task AnswerUntilHalfCloseAsync(IAsyncStreamReader<SegmentStreamRequest> requests, IServerStreamWriter<SegmentStreamResponse> responses)
    {
        while (await requests.MoveNext())
        {
            if (requests.Current.Frame is { } frame)
            {
                await responses.WriteAsync(Result(frame.FrameId));
            }
        }
    }

    private static StreamFrame Frame(ulong id) => new() { FrameId = id, Image = new Contracts.V1.Image { Encoded = Google.Protobuf.ByteString.CopyFromUtf8("not read by the fake") } };

    private static SegmentStreamResponse Result(ulong id) => new() { FrameId = id, Result = new SegmentResponse() };

    private static RpcException Unavailable(string message, TimeSpan? retryDelay)
    {
        var status = new Google.Rpc.Status { Code = (int)Code.Unavailable, Message = message };
        if (retryDelay is { } delay)
        {
            status.Details.Add(Any.Pack(new RetryInfo { RetryDelay = Duration.FromTimeSpan(delay) }));
        }

        return status.ToRpcException();
    }

    /// <summary>A SegmentationService on loopback whose streams follow a script, given each call's number (from 0).</summary>
    private sealed class ScriptedServer : IAsyncDisposable
    {
        private static readonly ConcurrentDictionary<string, ConnectionContext> s_connections = new(StringComparer.Ordinal);
        private readonly Script _script;
        private WebApplication _app = null!;
        private int _calls;

        private readonly SemaphoreSlim _closed = new(0);
        private int _closeFirstConnections;
        private int _clientConnections;

        private ScriptedServer(Script script) => _script = script;

        /// <summary>
        /// The CLI's channel options; the connections the server closes at once send nothing until it has
        /// (then the close finds Kestrel waiting for their preface, whatever the machine's load).
        /// </summary>
        public GrpcChannelOptions ChannelOptions() => ServerChannel.CreateOptions(handler => handler.ConnectCallback = async (context, cancellationToken) =>
        {
            var connection = await LoopbackConnection.ConnectAsync(context.DnsEndPoint.Port, cancellationToken);
            try
            {
                if (Interlocked.Increment(ref _clientConnections) <= _closeFirstConnections)
                {
                    await _closed.WaitAsync(cancellationToken);
                }

                return connection;
            }
            catch
            {
                await connection.DisposeAsync();
                throw;
            }
        });

        public delegate Task Script(int call, IAsyncStreamReader<SegmentStreamRequest> requests, IServerStreamWriter<SegmentStreamResponse> responses, ServerCallContext context);

        public Uri Address { get; private set; } = null!;

        public int Calls => Volatile.Read(ref _calls);

        /// <summary>Connections the channel of <see cref="ChannelOptions"/> opened.</summary>
        public int ClientConnections => Volatile.Read(ref _clientConnections);

        public static async Task<ScriptedServer> StartAsync(Script script, int closeFirstConnections = 0)
        {
            var connections = 0;
            var server = new ScriptedServer(script) { _closeFirstConnections = closeFirstConnections };
            var builder = LoopbackApp.CreateBuilder();
            builder.Logging.ClearProviders();
            builder.WebHost.ConfigureKestrel(kestrel => kestrel.Listen(IPAddress.Loopback, 0, listen =>
            {
                listen.Protocols = HttpProtocols.Http2;

                // Kept so that a script can drop its call's connection.
                listen.Use(next => async connection =>
                {
                    s_connections[connection.ConnectionId] = connection;
                    try
                    {
                        var serving = next(connection);
                        if (Interlocked.Increment(ref connections) <= server._closeFirstConnections)
                        {
                            // Closed gracefully (a GOAWAY) while Kestrel waits for the client's preface, which
                            // the client holds back until then (ChannelOptions): as a server shutting down
                            // closes a connection it has just accepted.
                            connection.Features.Get<Microsoft.AspNetCore.Connections.Features.IConnectionLifetimeNotificationFeature>()!.RequestClose();
                            server._closed.Release();
                        }

                        await serving;
                    }
                    finally
                    {
                        s_connections.TryRemove(connection.ConnectionId, out _);
                    }
                });
            }));
            builder.Services.AddGrpc();
            builder.Services.AddSingleton(server);
            server._app = builder.Build();
            server._app.MapGrpcService<Service>();
            await server._app.StartAsync();
            server.Address = new Uri(server._app.Urls.First());
            return server;
        }

        public static ConnectionContext ConnectionOf(ServerCallContext context) => s_connections[context.GetHttpContext().Connection.Id];

        public async ValueTask DisposeAsync()
        {
            await _app.StopAsync();
            await _app.DisposeAsync();
        }

        private sealed class Service(IServiceProvider services) : SegmentationService.SegmentationServiceBase
        {
            public override Task<SegmentResponse> Segment(SegmentRequest request, ServerCallContext context) => Task.FromResult(new SegmentResponse());

            public override Task SegmentStream(IAsyncStreamReader<SegmentStreamRequest> requestStream, IServerStreamWriter<SegmentStreamResponse> responseStream, ServerCallContext context)
            {
                var server = services.GetRequiredService<ScriptedServer>();
                return server._script(Interlocked.Increment(ref server._calls) - 1, requestStream, responseStream, context);
            }
        }
    }
}
