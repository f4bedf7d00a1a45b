using System.Diagnostics;
using Grpc.Core;
using Grpc.Net.Client;
using MaskFormer.Contracts.V1;

namespace MaskFormer.Benchmarks.Report;

/// <summary>A light gRPC client: pre-encoded images, one channel, callers or one stream kept busy for a set time.</summary>
internal sealed class GrpcLoad(GrpcChannel channel, ServerProcess server)
{
    private readonly SegmentationService.SegmentationServiceClient _client = new(channel);

    public static SegmentationTask[] AllTasks { get; } = [SegmentationTask.Semantic, SegmentationTask.Instance, SegmentationTask.Panoptic];

    public static SegmentationTask[] SemanticOnly { get; } = [SegmentationTask.Semantic];

    public async Task WaitServingAsync(CancellationToken cancellationToken)
    {
        var health = new Grpc.Health.V1.Health.HealthClient(channel);
        for (var i = 0; i < 1800; i++)
        {
            try
            {
                var reply = await health.CheckAsync(new Grpc.Health.V1.HealthCheckRequest(), cancellationToken: cancellationToken);
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

    /// <summary><paramref name="concurrency"/> callers, each sending the next request when its answer arrives.</summary>
    public async Task<CellResult> UnaryAsync(CellKey key, byte[] image, SegmentationTask[] tasks, TimeSpan duration, CancellationToken cancellationToken)
    {
        var request = new SegmentRequest { Image = new Image { Encoded = Google.Protobuf.ByteString.CopyFrom(image) } };
        request.Tasks.AddRange(tasks);

        // Warm this path (and let a batch size settle) before the clock starts.
        await Task.WhenAll(Enumerable.Range(0, Math.Min(key.Concurrency, 4)).Select(_ => _client.SegmentAsync(request, cancellationToken: cancellationToken).ResponseAsync));

        var samples = new List<Sample>();
        var errors = 0;
        var cpuBefore = server.CpuTime();
        var clock = Stopwatch.StartNew();
        await Task.WhenAll(Enumerable.Range(0, key.Concurrency).Select(async _ =>
        {
            while (clock.Elapsed < duration)
            {
                var started = Stopwatch.GetTimestamp();
                try
                {
                    var response = await _client.SegmentAsync(request, cancellationToken: cancellationToken);
                    lock (samples)
                    {
                        samples.Add(new Sample(Stopwatch.GetElapsedTime(started).TotalMilliseconds, response.Timings));
                    }
                }
                catch (RpcException)
                {
                    Interlocked.Increment(ref errors);
                }
            }
        }));
        var seconds = clock.Elapsed.TotalSeconds;
        return Summarize(key, samples, errors, seconds, server.CpuTime() - cpuBefore);
    }

    /// <summary>Sends <paramref name="count"/> requests from <paramref name="concurrency"/> callers; returns how many succeeded.</summary>
    public async Task<int> UnaryCountAsync(byte[] image, SegmentationTask[] tasks, int count, int concurrency, CancellationToken cancellationToken)
    {
        var request = new SegmentRequest { Image = new Image { Encoded = Google.Protobuf.ByteString.CopyFrom(image) } };
        request.Tasks.AddRange(tasks);
        var next = 0;
        var succeeded = 0;
        await Task.WhenAll(Enumerable.Range(0, concurrency).Select(async _ =>
        {
            while (Interlocked.Increment(ref next) <= count)
            {
                await _client.SegmentAsync(request, cancellationToken: cancellationToken);
                Interlocked.Increment(ref succeeded);
            }
        }));
        return succeeded;
    }

    /// <summary>One stream (QUEUE policy, <paramref name="key"/>.Concurrency frames in flight), fed as fast as it reads.</summary>
    public async Task<CellResult> StreamAsync(CellKey key, byte[] image, SegmentationTask[] tasks, TimeSpan duration, CancellationToken cancellationToken)
    {
        var frame = new Image { Encoded = Google.Protobuf.ByteString.CopyFrom(image) };
        var config = new StreamConfig { MaxInFlight = (uint)key.Concurrency, OverloadPolicy = OverloadPolicy.Queue };
        config.Tasks.AddRange(tasks);
        await RunStreamAsync(config, frame, TimeSpan.Zero, key.Concurrency, cancellationToken);
        var cpuBefore = server.CpuTime();
        var clock = Stopwatch.StartNew();
        var (samples, errors) = await RunStreamAsync(config, frame, duration, 0, cancellationToken);
        var seconds = clock.Elapsed.TotalSeconds;
        return Summarize(key, samples, errors, seconds, server.CpuTime() - cpuBefore);
    }

    private async Task<(List<Sample> Samples, int Errors)> RunStreamAsync(StreamConfig config, Image frame, TimeSpan duration, int minimumFrames, CancellationToken cancellationToken)
    {
        using var call = _client.SegmentStream(cancellationToken: cancellationToken);
        var sentAt = new System.Collections.Concurrent.ConcurrentDictionary<ulong, long>();
        var samples = new List<Sample>();
        var errors = 0;
        var reading = Task.Run(
            async () =>
            {
                await foreach (var response in call.ResponseStream.ReadAllAsync(cancellationToken))
                {
                    sentAt.TryRemove(response.FrameId, out var sent);
                    if (response.OutcomeCase == SegmentStreamResponse.OutcomeOneofCase.Result)
                    {
                        samples.Add(new Sample(Stopwatch.GetElapsedTime(sent).TotalMilliseconds, response.Result.Timings));
                    }
                    else
                    {
                        errors++;
                    }
                }
            },
            cancellationToken);

        await call.RequestStream.WriteAsync(new SegmentStreamRequest { Config = config }, cancellationToken);
        var clock = Stopwatch.StartNew();
        ulong id = 0;
        while (clock.Elapsed < duration || (int)id < minimumFrames)
        {
            sentAt[id] = Stopwatch.GetTimestamp();
            await call.RequestStream.WriteAsync(new SegmentStreamRequest { Frame = new StreamFrame { FrameId = id, Image = frame } }, cancellationToken);
            id++;
        }

        await call.RequestStream.CompleteAsync();
        await reading;
        return (samples, errors);
    }

    private static CellResult Summarize(CellKey key, List<Sample> samples, int errors, double seconds, TimeSpan serverCpu) => new()
    {
        Model = key.Model,
        Scenario = key.Scenario,
        Tasks = key.Tasks,
        Concurrency = key.Concurrency,
        Round = key.Round,
        Images = samples.Count,
        Seconds = seconds,
        CpuMsPerImage = samples.Count > 0 ? serverCpu.TotalMilliseconds / samples.Count : double.NaN,
        LatencyP50Ms = Stats.Median(samples.Select(s => s.LatencyMs)),
        LatencyP95Ms = Stats.Quantile(samples.Select(s => s.LatencyMs), 0.95),
        InferenceMsPerImage = Stats.Median(samples.Select(s => s.Timings.InferenceMs / Math.Max(1, s.Timings.BatchSize))),
        PostprocessMs = Stats.Median(samples.Select(s => s.Timings.PostprocessMs)),
        EncodeMs = Stats.Median(samples.Select(s => s.Timings.EncodeMs)),
        MeanBatch = samples.Count > 0 ? samples.Average(s => (double)s.Timings.BatchSize) : 0,
        Errors = errors,
    };

    private sealed record Sample(double LatencyMs, StageTimings Timings);
}

/// <summary>Which cell a measurement belongs to.</summary>
internal sealed record CellKey(string Model, string Scenario, string Tasks, int Concurrency, int Round);
