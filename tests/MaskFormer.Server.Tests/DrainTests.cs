using System.Diagnostics;
using System.Text.RegularExpressions;
using Google.Protobuf;
using Grpc.Core;
using Grpc.Health.V1;
using Grpc.Net.Client;
using MaskFormer.Contracts.V1;
using MaskFormer.Server.Hosting;
using Xunit.Abstractions;

namespace MaskFormer.Server.Tests;

/// <summary>
/// Graceful drain on a real server process with a real SIGTERM: open streams, unary calls in flight,
/// health and new calls during the drain, and the exit code.
/// </summary>
public sealed partial class DrainTests(ITestOutputHelper output)
{
    private static readonly TimeSpan s_drainTimeout = TimeSpan.FromSeconds(10);

    // Frames a test client keeps unanswered, as a live client with a small buffer would.
    private const int ClientWindow = 12;

    [Fact]
    public async Task Sigterm_OpenStreamsAndUnaryInFlight_EveryFrameSentBeforeIsAnsweredAndTheProcessExitsZero()
    {
        // Batches of 8 fill from one stream's frames; a unary call of another shape waits the full
        // queue delay, so it is still in flight when the signal comes.
        var metrics = new Uri($"http://127.0.0.1:{LoopbackPorts.Free()}/metrics");
        using var server = ServerProcess.Start(
            $"--MaskFormer:Streaming:DrainTimeout={s_drainTimeout}",
            "--MaskFormer:Inference:MaxBatchSize=8",
            "--MaskFormer:Inference:MaxQueueDelay=00:00:04",
            $"--MaskFormer:Telemetry:PrometheusUrl=http://{metrics.Authority}");
        var address = await server.AddressAsync();
        using var channel = GrpcChannel.ForAddress(address);
        await ServerFixture.WaitUntilServingAsync(channel);

        using var smartChannel = GrpcChannel.ForAddress(address);
        using var naiveChannel = GrpcChannel.ForAddress(address);
        var signalled = new TaskCompletionSource(TaskCreationOptions.RunContinuationsAsynchronously);
        var smart = StreamUntilEndAsync(smartChannel, halfCloseOnDrain: true, signalled.Task);
        var naive = StreamUntilEndAsync(naiveChannel, halfCloseOnDrain: false, signalled.Task);
        await Task.WhenAll(smart.FirstResult, naive.FirstResult);
        var client = new SegmentationService.SegmentationServiceClient(channel);
        var unary = Enumerable.Range(0, 2).Select(_ => client.SegmentAsync(new SegmentRequest { Image = RawImage(64, 128) }).ResponseAsync).ToArray();
        // Sent is not started: beside a busy run, calls sent a second earlier had not reached the service
        // yet and were rightly refused as arriving during the drain. The server's own count of decoded
        // 64x128 images (its pixel histogram's bucket above 4096, where the streams' 64x64 frames fall) says
        // when both are in its queue.
        await WaitUntilDecodedAsync(metrics, unary.Length);

        // What this test is about: calls still unanswered when the signal comes.
        Assert.All(unary, call => Assert.False(call.IsCompleted, "a unary call was answered before SIGTERM; it must be in flight"));
        signalled.SetResult();
        var stopwatch = Stopwatch.StartNew();
        server.Signal("TERM");

        var readiness = await WaitForHealthAsync(address, string.Empty, HealthCheckResponse.Types.ServingStatus.NotServing);
        var liveness = await HealthAsync(address, SegmentationEndpointExtensions.LivenessService);
        using var lateChannel = GrpcChannel.ForAddress(address);
        var late = await Assert.ThrowsAsync<RpcException>(() => new SegmentationService.SegmentationServiceClient(lateChannel).SegmentAsync(new SegmentRequest { Image = RawImage(64, 64) }).ResponseAsync);
        var unaryResults = await Task.WhenAll(unary);
        var (smartRun, naiveRun) = (await smart.Run, await naive.Run);
        var exitCode = await server.WaitForExitAsync(s_drainTimeout + TimeSpan.FromSeconds(20));
        var exitedAfter = stopwatch.Elapsed;

        foreach (var (name, run) in new[] { ("half-closes on drain", smartRun), ("keeps sending", naiveRun) })
        {
            output.WriteLine($"stream that {name}: {run.SentBeforeSignal} frames sent before SIGTERM, {run.Answers.Length} answered " +
                $"({run.Answers.Count(a => a.Result is not null)} results, {run.Answers.Count(a => a.Draining)} marked draining, " +
                $"{run.Answers.Count(a => a.Skipped?.Reason == SkipReason.Draining)} skipped as draining), status {run.Status.StatusCode} \"{run.Status.Detail}\" {run.Status.DebugException?.GetType().Name} {run.Status.DebugException?.Message}");
        }

        output.WriteLine($"a call after SIGTERM: {late.StatusCode} \"{late.Status.Detail}\" {late.Status.DebugException?.GetType().Name} {late.Status.DebugException?.Message}");
        output.WriteLine($"exit code {exitCode} {exitedAfter.TotalSeconds:F1} s after SIGTERM (drain time {s_drainTimeout.TotalSeconds} s)");
        Assert.Equal(HealthCheckResponse.Types.ServingStatus.NotServing, readiness);
        Assert.Equal(HealthCheckResponse.Types.ServingStatus.Serving, liveness);
        Assert.Equal(StatusCode.Unavailable, late.StatusCode);
        Assert.All(unaryResults, r => Assert.NotEmpty(r.Semantic.LabelMap.Data));

        AssertAnsweredInOrder(smartRun);
        AssertAnsweredInOrder(naiveRun);
        Assert.Equal(StatusCode.OK, smartRun.Status.StatusCode);
        Assert.Contains(smartRun.Answers, a => a.Draining);
        // The server ends it UNAVAILABLE ("... reconnect"). A client still sending may lose those trailers in
        // the connection's close (it then reads that the server closed the connection, without an error; once
        // beside a busy run of the project), and must reconnect either way, as the CLI does.
        if (!MaskFormer.Cli.Commands.RetryingCall.IsConnectionClosedByTheServer(naiveRun.Status))
        {
            Assert.Equal(StatusCode.Unavailable, naiveRun.Status.StatusCode);
            Assert.Contains("reconnect", naiveRun.Status.Detail, StringComparison.Ordinal);
        }

        Assert.Equal(0, exitCode);
        Assert.True(exitedAfter < s_drainTimeout + TimeSpan.FromSeconds(10), $"exited {exitedAfter} after SIGTERM; the manifests' grace period is the drain time + 10 s");
        Assert.Contains("Drained: every stream has ended", server.Output, StringComparison.Ordinal);
    }

    [Fact]
    public async Task Sigterm_ClientsConnectedAreToldToGoElsewhere_TheirNextCallReachesAnotherServerWhileTheirStreamGoesOn()
    {
        // Two servers; the client's connections are made as a Kubernetes Service makes them: the first
        // reaches the server about to drain, every later one the other (kube-proxy sends new connections
        // to pods that are ready).
        // The stream must outlast what happens between the signal and its next frame (the other server's first,
        // cold call among them: over 10 s beside a busy test run once); it ends the drain when it completes.
        var drainTimeout = TimeSpan.FromSeconds(60);
        using var draining = ServerProcess.Start($"--MaskFormer:Streaming:DrainTimeout={drainTimeout}", "--MaskFormer:Inference:WarmUp=false");
        using var other = ServerProcess.Start("--MaskFormer:Inference:WarmUp=false");
        var (address, otherAddress) = (await draining.AddressAsync(), await other.AddressAsync());
        using (var health = GrpcChannel.ForAddress(otherAddress))
        {
            await ServerFixture.WaitUntilServingAsync(health);
        }

        var connections = 0;
        using var handler = new SocketsHttpHandler
        {
            ConnectCallback = async (context, cancellationToken) =>
            {
                var port = Interlocked.Increment(ref connections) == 1 ? address.Port : otherAddress.Port;
                return await LoopbackConnection.ConnectAsync(port, cancellationToken);
            },
        };
        using var channel = GrpcChannel.ForAddress(address, new GrpcChannelOptions { HttpHandler = handler });
        await ServerFixture.WaitUntilServingAsync(channel);
        var client = new SegmentationService.SegmentationServiceClient(channel);
        Assert.NotEmpty((await client.SegmentAsync(new SegmentRequest { Image = RawImage(64, 64) })).Semantic.LabelMap.Data);

        // A stream on the same connection, open across the signal.
        using var stream = client.SegmentStream();
        await stream.RequestStream.WriteAsync(new SegmentStreamRequest { Config = new StreamConfig() });
        await stream.RequestStream.WriteAsync(new SegmentStreamRequest { Frame = new StreamFrame { FrameId = 1, Image = RawImage(64, 64) } });
        Assert.True(await stream.ResponseStream.MoveNext(CancellationToken.None));
        Assert.Equal(1, Volatile.Read(ref connections));

        draining.Signal("TERM");
        Assert.Equal(HealthCheckResponse.Types.ServingStatus.NotServing, await WaitForHealthAsync(address, string.Empty, HealthCheckResponse.Types.ServingStatus.NotServing));

        // The next call goes on a new connection, to the other server; without the GOAWAY it would go to
        // the draining one and be refused UNAVAILABLE ("shutting down") for the whole drain. A call that
        // reaches the old connection in the instant before its GOAWAY does is refused so too: the client
        // retries UNAVAILABLE, as docs/deploy.md asks (it happened once in CI).
        SegmentResponse? after = null;
        var refusals = new List<string>();
        for (var attempt = 0; after is null; attempt++)
        {
            try
            {
                after = await client.SegmentAsync(new SegmentRequest { Image = RawImage(64, 64) });
            }
            catch (RpcException ex) when (ex.StatusCode == StatusCode.Unavailable && attempt < 3)
            {
                refusals.Add(ex.Status.Detail);
                await Task.Delay(TimeSpan.FromMilliseconds(250));
            }
        }

        output.WriteLine($"refused before the GOAWAY took effect: {refusals.Count} ({string.Join("; ", refusals)})");
        Assert.NotEmpty(after.Semantic.LabelMap.Data);
        Assert.Equal(2, Volatile.Read(ref connections));

        // The stream still runs on the first connection: its next frame is answered, marked draining.
        await stream.RequestStream.WriteAsync(new SegmentStreamRequest { Frame = new StreamFrame { FrameId = 2, Image = RawImage(64, 64) } });
        Assert.True(await stream.ResponseStream.MoveNext(CancellationToken.None));
        Assert.Equal(2ul, stream.ResponseStream.Current.FrameId);
        Assert.NotNull(stream.ResponseStream.Current.Result);
        Assert.True(stream.ResponseStream.Current.Draining);
        await stream.RequestStream.CompleteAsync();
        Assert.False(await stream.ResponseStream.MoveNext(CancellationToken.None));
        Assert.Equal(StatusCode.OK, stream.GetStatus().StatusCode);

        Assert.Equal(0, await draining.WaitForExitAsync(drainTimeout + TimeSpan.FromSeconds(20)));
        output.WriteLine(draining.Output);
        Assert.Matches(@"asked [1-9]\d* open connection\(s\) to take new calls elsewhere", draining.Output);
        Assert.Contains("Drained: every stream has ended", draining.Output, StringComparison.Ordinal);
    }

    [Fact]
    public async Task Sigterm_ConnectionsWithNoCallYetOrOpenedDuringTheDrain_TheirFirstCallIsAnsweredAndTheNextGoesOnANewConnection()
    {
        // A client that connected a moment before the signal and has not yet sent its first request (its
        // HTTP/2 preface is still on the way). A GOAWAY then would close the connection before any
        // stream: .NET's client fails that call INTERNAL ("The HTTP/2 server closed the connection"),
        // which is how a health poll in the drain test above failed in CI.
        using var server = ServerProcess.Start($"--MaskFormer:Streaming:DrainTimeout={s_drainTimeout}", "--MaskFormer:Inference:WarmUp=false");
        var address = await server.AddressAsync();
        using var holder = GrpcChannel.ForAddress(address);
        await ServerFixture.WaitUntilServingAsync(holder);

        // A stream open across the signal, so the drain lasts.
        using var stream = new SegmentationService.SegmentationServiceClient(holder).SegmentStream();
        await stream.RequestStream.WriteAsync(new SegmentStreamRequest { Config = new StreamConfig() });
        await stream.RequestStream.WriteAsync(new SegmentStreamRequest { Frame = new StreamFrame { FrameId = 1, Image = RawImage(64, 64) } });
        Assert.True(await stream.ResponseStream.MoveNext(CancellationToken.None));

        var connections = 0;
        var connected = new TaskCompletionSource(TaskCreationOptions.RunContinuationsAsynchronously);
        var release = new TaskCompletionSource(TaskCreationOptions.RunContinuationsAsynchronously);
        using var handler = new SocketsHttpHandler
        {
            ConnectCallback = async (context, cancellationToken) =>
            {
                var first = Interlocked.Increment(ref connections) == 1;
                var stream = await LoopbackConnection.ConnectAsync(address.Port, cancellationToken);
                if (first)
                {
                    // Connected, but nothing sent until the drain has begun.
                    connected.SetResult();
                    await release.Task.WaitAsync(cancellationToken);
                }

                return stream;
            },
        };
        using var channel = GrpcChannel.ForAddress(address, new GrpcChannelOptions { HttpHandler = handler });
        var health = new Grpc.Health.V1.Health.HealthClient(channel);
        var firstCall = health.CheckAsync(new HealthCheckRequest { Service = SegmentationEndpointExtensions.LivenessService }, deadline: DateTime.UtcNow.AddSeconds(20)).ResponseAsync;
        await connected.Task;

        // Time for the server to accept the connection before the signal.
        await Task.Delay(TimeSpan.FromMilliseconds(500));
        server.Signal("TERM");
        await WaitForOutputAsync(server, "open connection(s) to take new calls elsewhere");
        release.SetResult();

        Assert.Equal(HealthCheckResponse.Types.ServingStatus.Serving, (await firstCall).Status);
        Assert.Contains("1 connected with no call yet", server.Output, StringComparison.Ordinal);

        // Once the connection has served that call, it is told to go elsewhere too.
        Assert.Equal(HealthCheckResponse.Types.ServingStatus.NotServing, (await health.CheckAsync(new HealthCheckRequest(), deadline: DateTime.UtcNow.AddSeconds(20))).Status);
        Assert.Equal(2, Volatile.Read(ref connections));

        // A client that connects during the drain (its address still resolves here) is refused, and told
        // to go elsewhere: its retry opens a new connection instead of coming back on this one.
        var lateConnections = 0;
        using var lateHandler = new SocketsHttpHandler
        {
            ConnectCallback = async (context, cancellationToken) =>
            {
                Interlocked.Increment(ref lateConnections);
                return await LoopbackConnection.ConnectAsync(address.Port, cancellationToken);
            },
        };
        using var lateChannel = GrpcChannel.ForAddress(address, new GrpcChannelOptions { HttpHandler = lateHandler });
        var late = new SegmentationService.SegmentationServiceClient(lateChannel);
        for (var attempt = 1; attempt <= 2; attempt++)
        {
            var refused = await Assert.ThrowsAsync<RpcException>(() => late.SegmentAsync(new SegmentRequest { Image = RawImage(64, 64) }).ResponseAsync);
            Assert.Equal(StatusCode.Unavailable, refused.StatusCode);
            Assert.Contains("shutting down", refused.Status.Detail, StringComparison.Ordinal);
        }

        Assert.Equal(2, Volatile.Read(ref lateConnections));

        await stream.RequestStream.CompleteAsync();
        while (await stream.ResponseStream.MoveNext(CancellationToken.None))
        {
        }

        Assert.Equal(StatusCode.OK, stream.GetStatus().StatusCode);
        Assert.Equal(0, await server.WaitForExitAsync(s_drainTimeout + TimeSpan.FromSeconds(20)));
        output.WriteLine(server.Output);
    }

    private static async Task WaitForOutputAsync(ServerProcess server, string text)
    {
        for (var waited = 0; !server.Output.Contains(text, StringComparison.Ordinal); waited += 25)
        {
            Assert.True(waited < 20_000, $"the server did not log \"{text}\" within 20 s:\n{server.Output}");
            await Task.Delay(25);
        }
    }

    // Every frame written before the signal has exactly one answer, in order, and it is a result: none
    // is cut, failed or skipped. Frames sent later are answered in order too (results until the drain
    // time runs out, then skipped as draining) or, once the call has ended, not at all.
    private static void AssertAnsweredInOrder(StreamRun run)
    {
        var answeredIds = run.Answers.Select(a => a.FrameId).ToArray();
        Assert.Equal(Enumerable.Range(0, answeredIds.Length).Select(i => (ulong)i), answeredIds);
        Assert.True(run.SentBeforeSignal > 0);
        Assert.True(answeredIds.Length >= run.SentBeforeSignal, $"{run.SentBeforeSignal} frames sent before SIGTERM, {answeredIds.Length} answered");
        Assert.All(run.Answers.Take(run.SentBeforeSignal), a => Assert.True(
            a.OutcomeCase == SegmentStreamResponse.OutcomeOneofCase.Result,
            $"frame {a.FrameId}: {a.OutcomeCase} {a.Skipped?.Reason} {a.Error?.Message}"));
        Assert.All(run.Answers.Skip(run.SentBeforeSignal), a => Assert.True(
            a.OutcomeCase == SegmentStreamResponse.OutcomeOneofCase.Result || a.Skipped?.Reason == SkipReason.Draining,
            $"frame {a.FrameId}: {a.OutcomeCase} {a.Skipped?.Reason} {a.Error?.Message}"));
    }

    private static StreamHandle StreamUntilEndAsync(GrpcChannel channel, bool halfCloseOnDrain, Task signalled)
    {
        var firstResult = new TaskCompletionSource(TaskCreationOptions.RunContinuationsAsynchronously);
        var drainSeen = new TaskCompletionSource(TaskCreationOptions.RunContinuationsAsynchronously);
        var call = new SegmentationService.SegmentationServiceClient(channel).SegmentStream();
        var answers = new List<SegmentStreamResponse>();
        var window = new SemaphoreSlim(ClientWindow, int.MaxValue);

        async Task<Status> ReadAsync()
        {
            try
            {
                await foreach (var answer in call.ResponseStream.ReadAllAsync())
                {
                    answers.Add(answer);
                    window.Release();
                    if (answer.OutcomeCase == SegmentStreamResponse.OutcomeOneofCase.Result)
                    {
                        firstResult.TrySetResult();
                    }

                    if (answer.Draining)
                    {
                        drainSeen.TrySetResult();
                    }
                }

                return call.GetStatus();
            }
            catch (RpcException ex)
            {
                return ex.Status;
            }
            finally
            {
                firstResult.TrySetResult();
                drainSeen.TrySetResult();
                window.Release(ClientWindow);
            }
        }

        async Task<StreamRun> RunAsync()
        {
            var reading = ReadAsync();
            var sentBeforeSignal = 0;
            try
            {
                await call.RequestStream.WriteAsync(new SegmentStreamRequest { Config = new StreamConfig { MaxInFlight = 8, OverloadPolicy = OverloadPolicy.Queue } });
                for (ulong id = 0; !(halfCloseOnDrain && drainSeen.Task.IsCompleted) && !reading.IsCompleted; id++)
                {
                    await window.WaitAsync(CancellationToken.None);
                    await call.RequestStream.WriteAsync(new SegmentStreamRequest { Frame = new StreamFrame { FrameId = id, Image = RawImage(64, 64) } });
                    if (!signalled.IsCompleted)
                    {
                        // Handed to the transport before the signal was sent.
                        sentBeforeSignal = (int)id + 1;
                    }

                    await Task.Delay(5, CancellationToken.None);
                }

                await call.RequestStream.CompleteAsync();
            }
            catch (Exception ex) when (ex is RpcException or InvalidOperationException or IOException)
            {
                // The server ended the call; frames written after that are not the server's to answer.
            }

            var status = await reading;
            call.Dispose();
            window.Dispose();
            return new StreamRun([.. answers], sentBeforeSignal, status);
        }

        return new StreamHandle(firstResult.Task, RunAsync());
    }

    /// <summary>Waits until the server has decoded <paramref name="count"/> images of 4097 to 16384 pixels.</summary>
    private static async Task WaitUntilDecodedAsync(Uri metrics, int count)
    {
        using var http = new HttpClient { Timeout = TimeSpan.FromSeconds(10) };
        var text = string.Empty;
        for (var started = Stopwatch.StartNew(); started.Elapsed < TimeSpan.FromSeconds(60); await Task.Delay(20))
        {
            text = await http.GetStringAsync(metrics);
            if (PixelsBucket(text, "16384") - PixelsBucket(text, "4096") >= count)
            {
                return;
            }
        }

        Assert.Fail($"the server did not decode {count} images of 64x128 within 60 s; its metrics:\n{text}");
    }

    private static long PixelsBucket(string metricsText, string upperBound) =>
        metricsText.Split('\n')
            .Where(line => line.StartsWith("maskformer_image_pixels_bucket{", StringComparison.Ordinal) && line.Contains($"le=\"{upperBound}\"", StringComparison.Ordinal))
            .Sum(line => long.Parse(line[(line.LastIndexOf(' ') + 1)..], System.Globalization.CultureInfo.InvariantCulture));

    private static async Task<HealthCheckResponse.Types.ServingStatus> WaitForHealthAsync(Uri address, string service, HealthCheckResponse.Types.ServingStatus wanted)
    {
        for (var attempt = 0; ; attempt++)
        {
            var status = await HealthAsync(address, service);
            if (status == wanted || attempt == 200)
            {
                return status;
            }

            await Task.Delay(25);
        }
    }

    private static async Task<HealthCheckResponse.Types.ServingStatus> HealthAsync(Uri address, string service)
    {
        using var channel = GrpcChannel.ForAddress(address);
        var response = await new Grpc.Health.V1.Health.HealthClient(channel).CheckAsync(new HealthCheckRequest { Service = service }, deadline: DateTime.UtcNow.AddSeconds(10));
        return response.Status;
    }

    private static Contracts.V1.Image RawImage(int width, int height)
    {
        var pixels = new byte[width * height];
        for (var i = 0; i < pixels.Length; i++)
        {
            pixels[i] = (byte)((i % width) * 255 / width);
        }

        return new Contracts.V1.Image { Raw = new RawFrame { Width = (uint)width, Height = (uint)height, PixelFormat = PixelFormat.Gray8, Data = ByteString.CopyFrom(pixels) } };
    }

    private sealed record StreamHandle(Task FirstResult, Task<StreamRun> Run);

    private sealed record StreamRun(SegmentStreamResponse[] Answers, int SentBeforeSignal, Status Status);
}
