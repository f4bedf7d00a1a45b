using System.Diagnostics;
using Grpc.Core;
using Grpc.Net.Client;
using MaskFormer.Cli.Commands;
using MaskFormer.Contracts.V1;

namespace MaskFormer.Benchmarks.Report;

/// <summary>
/// A light gRPC client: pre-encoded images, callers or one stream kept busy for a set time, each cell on a
/// connection of its own.
/// </summary>
/// <remarks>
/// Kestrel can lose a response for good (dotnet/aspnetcore#53736; why and how often: the CLI's
/// <see cref="ServerChannel"/>, whose handler these channels take). A connection per cell kept one cell's
/// poisoned stream from the next, but a cell on its own connection stalled the same way (the size-512 cell
/// after 31 answers, 2026-12-05); the handler's 16 MiB stream window is what avoids it.
/// </remarks>
internal sealed class GrpcLoad(ServerProcess server)
{
    public static GrpcChannel Connect(ServerProcess server) =>
        GrpcChannel.ForAddress(server.Address, new GrpcChannelOptions { MaxReceiveMessageSize = 256 << 20, HttpHandler = ServerChannel.CreateHandler(), DisposeHttpClient = true });

    public static SegmentationTask[] AllTasks { get; } = [SegmentationTask.Semantic, SegmentationTask.Instance, SegmentationTask.Panoptic];

    public static SegmentationTask[] SemanticOnly { get; } = [SegmentationTask.Semantic];

    // The service's default max batch: callers answered by one batch arrive together.
    private const int MaxBatch = 4;

    // The longest one call of a counted load may take (a call measured in a cell is bounded by the cell's limit).
    private static readonly TimeSpan s_callLimit = TimeSpan.FromMinutes(2);

    // How long a unary cell's calls still out may take to finish after its limit closed it.
    private static readonly TimeSpan s_drainLimit = TimeSpan.FromSeconds(30);

    public async Task WaitServingAsync(CancellationToken cancellationToken)
    {
        using var channel = Connect(server);
        var health = new Grpc.Health.V1.Health.HealthClient(channel);
        for (var i = 0; i < 1800; i++)
        {
            try
            {
                var reply = await health.CheckAsync(new Grpc.Health.V1.HealthCheckRequest(), deadline: DateTime.UtcNow.AddSeconds(10), cancellationToken: cancellationToken);
                if (reply.Status == Grpc.Health.V1.HealthCheckResponse.Types.ServingStatus.Serving)
                {
                    return;
                }
            }
            catch (RpcException)
            {
            }

            await Task.Delay(100, cancellationToken);
        }

        throw new TimeoutException($"the server never reported SERVING; its log:\n{server.Log()}");
    }

    /// <summary>
    /// <paramref name="key"/>.Concurrency callers, each sending the next request when its answer arrives,
    /// measured in steady state (see <see cref="LoadWindow"/>): the first answers warm the path, then the
    /// window runs at least <paramref name="duration"/> and <paramref name="minImages"/> answers.
    /// </summary>
    public async Task<CellResult> UnaryAsync(CellKey key, byte[] image, SegmentationTask[] tasks, TimeSpan duration, CancellationToken cancellationToken, int minImages = 0)
    {
        var request = new SegmentRequest { Image = new Image { Encoded = Google.Protobuf.ByteString.CopyFrom(image) } };
        request.Tasks.AddRange(tasks);
        using var channel = Connect(server);
        var client = new SegmentationService.SegmentationServiceClient(channel);
        var wall = Stopwatch.StartNew();
        using var stop = CancellationTokenSource.CreateLinkedTokenSource(cancellationToken);
        stop.CancelAfter(LoadWindow.Limit(duration));
        // Calls still out when the window closes finish unanswered by the cell rather than being cancelled:
        // cancelling up to 16 at every cell's end reset as many HTTP/2 streams at once, and the next cell's
        // first call once failed "Unavailable: Error starting gRPC call. IOException: The request was
        // aborted" (CI, 2026-12-03). Only a cell past its limit cancels them, a little later.
        using var abort = CancellationTokenSource.CreateLinkedTokenSource(cancellationToken);
        abort.CancelAfter(LoadWindow.Limit(duration) + s_drainLimit);
        var group = Math.Min(key.Concurrency, MaxBatch);
        var window = new LoadWindow(server, group, group, duration, minImages, stop);
        await Task.WhenAll(Enumerable.Range(0, key.Concurrency).Select(async _ =>
        {
            while (!stop.IsCancellationRequested)
            {
                var started = Stopwatch.GetTimestamp();
                try
                {
                    var response = await client.SegmentAsync(request, cancellationToken: abort.Token);
                    window.Answered(Stopwatch.GetElapsedTime(started).TotalMilliseconds, response.Timings);
                }
                catch (RpcException ex) when (ex.StatusCode == StatusCode.Cancelled && stop.IsCancellationRequested)
                {
                    // A cell past its limit: its calls still out were cancelled.
                }
                catch (RpcException ex)
                {
                    window.Failed($"{ex.StatusCode}: {ex.Status.Detail}");
                }
            }
        }));
        cancellationToken.ThrowIfCancellationRequested();
        return Finish(window, key, wall);
    }

    // A cell that never reached its steady state (the server stopped answering, its stream ended, or its
    // calls kept failing) ends the run with what it saw: the next cells would only wait out their limits.
    private CellResult Finish(LoadWindow window, CellKey key, Stopwatch wall)
    {
        var cell = window.Summarize(key, wall.Elapsed.TotalSeconds);
        return window.Filled
            ? cell
            : throw new TimeoutException($"{key.Model} {key.Scenario} {key.Tasks} x{key.Concurrency}, round {key.Round}: {cell.Errors} failures in {wall.Elapsed.TotalSeconds:F0} s, the first: {cell.FirstError}; the server's log:\n{server.Log()}");
    }

    /// <summary>Sends <paramref name="count"/> requests from <paramref name="concurrency"/> callers; returns how many succeeded.</summary>
    public async Task<int> UnaryCountAsync(byte[] image, SegmentationTask[] tasks, int count, int concurrency, CancellationToken cancellationToken)
    {
        var request = new SegmentRequest { Image = new Image { Encoded = Google.Protobuf.ByteString.CopyFrom(image) } };
        request.Tasks.AddRange(tasks);
        using var channel = Connect(server);
        var client = new SegmentationService.SegmentationServiceClient(channel);
        var next = 0;
        var succeeded = 0;
        await Task.WhenAll(Enumerable.Range(0, concurrency).Select(async _ =>
        {
            while (Interlocked.Increment(ref next) <= count)
            {
                // A deadline, so that a server that stops answering fails the count instead of holding it.
                await client.SegmentAsync(request, deadline: DateTime.UtcNow.Add(s_callLimit), cancellationToken: cancellationToken);
                Interlocked.Increment(ref succeeded);
            }
        }));
        return succeeded;
    }

    /// <summary>
    /// One stream (QUEUE policy, <paramref name="key"/>.Concurrency frames in flight), measured in steady
    /// state like <see cref="UnaryAsync"/>. The client keeps twice the frames in flight outstanding, so the
    /// server always has the next frame waiting and an answer's latency is the server's, not a queue the
    /// client built up; the stream's own ramp (one frame until the first answer) is part of the warm-up.
    /// </summary>
    public async Task<CellResult> StreamAsync(CellKey key, byte[] image, SegmentationTask[] tasks, TimeSpan duration, CancellationToken cancellationToken, int minImages = 0)
    {
        var frame = new Image { Encoded = Google.Protobuf.ByteString.CopyFrom(image) };
        var config = new StreamConfig { MaxInFlight = (uint)key.Concurrency, OverloadPolicy = OverloadPolicy.Queue };
        config.Tasks.AddRange(tasks);
        var wall = Stopwatch.StartNew();
        using var stop = CancellationTokenSource.CreateLinkedTokenSource(cancellationToken);
        stop.CancelAfter(LoadWindow.Limit(duration));
        var window = new LoadWindow(server, key.Concurrency + 1, Math.Min(key.Concurrency, MaxBatch), duration, minImages, stop);
        using var ending = CancellationTokenSource.CreateLinkedTokenSource(cancellationToken);
        using var channel = Connect(server);
        using var call = new SegmentationService.SegmentationServiceClient(channel).SegmentStream(cancellationToken: ending.Token);
        var sentAt = new System.Collections.Concurrent.ConcurrentDictionary<ulong, long>();
        using var outstanding = new SemaphoreSlim(2 * key.Concurrency);
        var reading = Task.Run(
            async () =>
            {
                var recorded = false;
                try
                {
                    await foreach (var response in call.ResponseStream.ReadAllAsync(ending.Token))
                    {
                        if (response.OutcomeCase == SegmentStreamResponse.OutcomeOneofCase.Status)
                        {
                            continue;
                        }

                        sentAt.TryRemove(response.FrameId, out var sent);
                        outstanding.Release();
                        if (response.OutcomeCase == SegmentStreamResponse.OutcomeOneofCase.Result)
                        {
                            window.Answered(Stopwatch.GetElapsedTime(sent).TotalMilliseconds, response.Result.Timings);
                        }
                        else
                        {
                            window.Failed(response.OutcomeCase == SegmentStreamResponse.OutcomeOneofCase.Error ? $"frame {response.FrameId}: {response.Error}" : $"frame {response.FrameId}: {response.OutcomeCase} {response.Skipped}");
                        }
                    }
                }
                catch (Exception ex) when (ex is RpcException { StatusCode: StatusCode.Cancelled } or OperationCanceledException && stop.IsCancellationRequested)
                {
                }
                catch (RpcException ex)
                {
                    window.Failed($"the stream failed: {ex.StatusCode}: {ex.Status.Detail}");
                    recorded = true;
                }

                if (!stop.IsCancellationRequested)
                {
                    // The server ended the stream before the window closed: no more answers will come, so
                    // the writer (waiting for one) must stop too. One failure for the one event.
                    if (!recorded)
                    {
                        window.Failed("the server ended the stream before the cell's window closed");
                    }

                    await stop.CancelAsync();
                }
            },
            cancellationToken);

        await call.RequestStream.WriteAsync(new SegmentStreamRequest { Config = config }, cancellationToken);
        ulong id = 0;
        try
        {
            while (true)
            {
                await outstanding.WaitAsync(stop.Token);
                sentAt[id] = Stopwatch.GetTimestamp();
                await call.RequestStream.WriteAsync(new SegmentStreamRequest { Frame = new StreamFrame { FrameId = id, Image = frame } }, stop.Token);
                id++;
            }
        }
        catch (Exception ex) when (ex is OperationCanceledException or RpcException or InvalidOperationException && !cancellationToken.IsCancellationRequested)
        {
            // The window closed, or the call ended under the writer (InvalidOperationException: a write
            // after the server completed the call; the reader records why, and so does this).
            if (!stop.IsCancellationRequested)
            {
                window.Failed($"a frame could not be sent: {ex.Message}");
                await stop.CancelAsync();
            }
        }

        // The frames still out (at most twice the frames in flight) are not part of the cell: the call is
        // cancelled rather than drained, which the server's session handles as a client going away.
        await ending.CancelAsync();
        await reading;
        cancellationToken.ThrowIfCancellationRequested();
        return Finish(window, key, wall);
    }
}

/// <summary>Which cell a measurement belongs to.</summary>
internal sealed record CellKey(string Model, string Scenario, string Tasks, int Concurrency, int Round);
