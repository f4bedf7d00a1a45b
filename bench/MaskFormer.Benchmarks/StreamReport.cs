using System.Diagnostics;
using Google.Protobuf;
using Grpc.Core;
using Grpc.Net.Client;
using MaskFormer.Contracts.V1;
using MaskFormer.Server.Hosting;
using Microsoft.AspNetCore.Builder;
using Microsoft.AspNetCore.Hosting.Server;
using Microsoft.AspNetCore.Hosting.Server.Features;
using Microsoft.Extensions.DependencyInjection;

namespace MaskFormer.Benchmarks;

/// <summary>
/// Over a real Kestrel socket, in one run: unary throughput at a given concurrency; one stream's
/// frames per second with the same number of frames in flight; and latency under LATEST_ONLY when
/// frames arrive twice as fast as the stream was just measured to process them.
/// </summary>
internal static class StreamReport
{
    public static async Task<int> RunAsync(string[] args)
    {
        var frames = args.Length > 0 ? int.Parse(args[0], System.Globalization.CultureInfo.InvariantCulture) : 160;
        const int Concurrency = 4;
        var app = ServerApp.Build(["--Kestrel:Endpoints:Grpc:Url=http://127.0.0.1:0", $"--MaskFormer:Models:Path={RepositoryPaths.Models}", "--Logging:LogLevel:Default=Warning"]);
        await app.StartAsync();
        try
        {
            var address = app.Services.GetRequiredService<IServer>().Features.Get<IServerAddressesFeature>()!.Addresses.First();
            using var channel = GrpcChannel.ForAddress(address);
            var client = new SegmentationService.SegmentationServiceClient(channel);
            await WaitServingAsync(channel);
            var images = Directory.GetFiles(Path.Combine(RepositoryPaths.TinyShapes, "clip"), "frame_???.png").Order(StringComparer.Ordinal)
                .Select(f => new Image { Encoded = ByteString.CopyFrom(File.ReadAllBytes(f)) }).ToArray();

            // Warm the connection and the server's paths.
            await UnaryAsync(client, images, 16, Concurrency);
            var unary = await UnaryAsync(client, images, frames, Concurrency);
            var stream = await StreamAsync(client, images, frames, Concurrency, OverloadPolicy.Queue, pacing: null);
            var overloaded = await StreamAsync(client, images, frames, Concurrency, OverloadPolicy.LatestOnly, pacing: TimeSpan.FromSeconds(1 / (2 * stream.FramesPerSecond)));

            Console.WriteLine($"{frames} frames of models/tiny-shapes/clip (160x120), semantic task, {Concurrency} in flight, {Environment.ProcessorCount} cores, 1 CPU session, max batch 4");
            Console.WriteLine();
            Console.WriteLine("| mode | frames/s | results | skipped | latency p50 ms | latency p95 ms | latency max ms |");
            Console.WriteLine("| --- | ---: | ---: | ---: | ---: | ---: | ---: |");
            Console.WriteLine($"| unary, {Concurrency} concurrent callers | {unary.FramesPerSecond:F1} | {unary.Results} | 0 | {unary.P50:F1} | {unary.P95:F1} | {unary.Max:F1} |");
            Console.WriteLine($"| one stream, QUEUE, max_in_flight {Concurrency} | {stream.FramesPerSecond:F1} | {stream.Results} | {stream.Skipped} | {stream.P50:F1} | {stream.P95:F1} | {stream.Max:F1} |");
            Console.WriteLine($"| one stream, LATEST_ONLY, sent at 2x ({2 * stream.FramesPerSecond:F0} fps) | {overloaded.FramesPerSecond:F1} | {overloaded.Results} | {overloaded.Skipped} | {overloaded.P50:F1} | {overloaded.P95:F1} | {overloaded.Max:F1} |");
            Console.WriteLine();
            Console.WriteLine($"stream / unary throughput: {stream.FramesPerSecond / unary.FramesPerSecond:F2}");
            return overloaded.Results + overloaded.Skipped == frames && stream.Results == frames ? 0 : 1;
        }
        finally
        {
            await app.StopAsync();
            await app.DisposeAsync();
        }
    }

    private sealed record Measurement(double FramesPerSecond, int Results, int Skipped, double P50, double P95, double Max);

    private static async Task<Measurement> UnaryAsync(SegmentationService.SegmentationServiceClient client, Image[] images, int count, int concurrency)
    {
        var latencies = new List<double>();
        var next = -1;
        var clock = Stopwatch.StartNew();
        await Task.WhenAll(Enumerable.Range(0, concurrency).Select(async _ =>
        {
            int i;
            while ((i = Interlocked.Increment(ref next)) < count)
            {
                var started = Stopwatch.GetTimestamp();
                await client.SegmentAsync(new SegmentRequest { Image = images[i % images.Length], FrameId = (ulong)i });
                lock (latencies)
                {
                    latencies.Add(Stopwatch.GetElapsedTime(started).TotalMilliseconds);
                }
            }
        }));
        return Summarize(count / clock.Elapsed.TotalSeconds, latencies, 0);
    }

    private static async Task<Measurement> StreamAsync(SegmentationService.SegmentationServiceClient client, Image[] images, int count, int inFlight, OverloadPolicy policy, TimeSpan? pacing)
    {
        using var call = client.SegmentStream();
        var sentAt = new long[count];
        var latencies = new List<double>();
        var skipped = 0;
        var clock = Stopwatch.StartNew();
        var reading = Task.Run(async () =>
        {
            await foreach (var response in call.ResponseStream.ReadAllAsync())
            {
                if (response.OutcomeCase == SegmentStreamResponse.OutcomeOneofCase.Result)
                {
                    latencies.Add(Stopwatch.GetElapsedTime(Volatile.Read(ref sentAt[response.FrameId])).TotalMilliseconds);
                }
                else
                {
                    skipped++;
                }
            }
        });
        await call.RequestStream.WriteAsync(new SegmentStreamRequest { Config = new StreamConfig { MaxInFlight = (uint)inFlight, OverloadPolicy = policy } });
        var start = Stopwatch.GetTimestamp();
        for (var i = 0; i < count; i++)
        {
            if (pacing is { } interval)
            {
                var due = start + (long)(interval.TotalSeconds * i * Stopwatch.Frequency);
                var wait = due - Stopwatch.GetTimestamp();
                if (wait > 0)
                {
                    await Task.Delay(TimeSpan.FromSeconds(wait / (double)Stopwatch.Frequency));
                }
            }

            Volatile.Write(ref sentAt[i], Stopwatch.GetTimestamp());
            await call.RequestStream.WriteAsync(new SegmentStreamRequest { Frame = new StreamFrame { FrameId = (ulong)i, Image = images[i % images.Length] } });
        }

        await call.RequestStream.CompleteAsync();
        await reading;
        return Summarize(latencies.Count / clock.Elapsed.TotalSeconds, latencies, skipped);
    }

    private static Measurement Summarize(double rate, List<double> latencies, int skipped)
    {
        var sorted = latencies.Order().ToArray();
        return new Measurement(rate, sorted.Length, skipped, sorted[sorted.Length / 2], sorted[(int)Math.Min(sorted.Length - 1, sorted.Length * 0.95)], sorted[^1]);
    }

    private static async Task WaitServingAsync(GrpcChannel channel)
    {
        var health = new Grpc.Health.V1.Health.HealthClient(channel);
        for (var i = 0; i < 600; i++)
        {
            if ((await health.CheckAsync(new Grpc.Health.V1.HealthCheckRequest())).Status == Grpc.Health.V1.HealthCheckResponse.Types.ServingStatus.Serving)
            {
                return;
            }

            await Task.Delay(100);
        }

        throw new TimeoutException("server not SERVING");
    }
}
