using System.Diagnostics;
using System.Globalization;
using System.Net;
using System.Net.Sockets;
using Google.Protobuf;
using Grpc.Core;
using Grpc.Net.Client;
using MaskFormer.Benchmarks.Report;
using MaskFormer.Cli.Commands;
using MaskFormer.Contracts.V1;

namespace MaskFormer.Benchmarks.Soak;

/// <summary>
/// Load, soak and disconnects against the real server process (models/tiny-shapes, default settings,
/// loopback): every stream frame answered exactly once and in order, no status but OK and the documented
/// overload outcomes, resident memory flat under load, and nothing left (open streams, queued requests)
/// after clients vanish mid-stream. The server's resident memory is sampled twice a second.
/// </summary>
internal static class SoakRun
{
    private const int CallersPerChannel = 8;

    public static async Task<SoakResult> RunAsync(SoakSettings settings, CancellationToken cancellationToken)
    {
        var result = new SoakResult { Settings = settings };
        using var limit = CancellationTokenSource.CreateLinkedTokenSource(cancellationToken);
        limit.CancelAfter(settings.HardLimit);
        var clock = Stopwatch.StartNew();
        var metricsPort = FreePort();
        await using var server = await ServerProcess.StartAsync(
            RepositoryPaths.Models,
            [$"--MaskFormer:Telemetry:PrometheusUrl=http://127.0.0.1:{metricsPort}"],
            limit.Token,
            otherListenerPort: metricsPort);
        using var metrics = new HttpClient { BaseAddress = new Uri($"http://127.0.0.1:{metricsPort}"), Timeout = TimeSpan.FromSeconds(30) };
        var images = Directory.GetFiles(Path.Combine(RepositoryPaths.TinyShapes, "clip"), "frame_???.png").Order(StringComparer.Ordinal)
            .Select(f => new Image { Encoded = ByteString.CopyFrom(File.ReadAllBytes(f)) }).ToArray();
        // The CLI's handler: its stream window keeps Kestrel from losing responses (README, Troubleshooting).
        var channels = Enumerable.Range(0, Math.Max(1, (settings.Streams + settings.UnaryCallers + CallersPerChannel - 1) / CallersPerChannel))
            .Select(_ => GrpcChannel.ForAddress(server.Address, new GrpcChannelOptions { HttpHandler = ServerChannel.CreateHandler(), DisposeHttpClient = true }))
            .ToArray();
        try
        {
            await WaitServingAsync(channels[0], limit.Token);
            result.IdleRss = server.ResidentBytes();

            var samples = new List<(double Seconds, long Bytes)>();
            using var sampling = CancellationTokenSource.CreateLinkedTokenSource(limit.Token);
            var load = Stopwatch.StartNew();
            var sampler = SampleAsync(server, load, samples, sampling.Token);
            var client = (int caller) => new SegmentationService.SegmentationServiceClient(channels[caller % channels.Length]);
            var streams = Enumerable.Range(0, settings.Streams).Select(i => StreamAsync(client(i), i, images, settings, result, limit.Token)).ToArray();
            var unary = Enumerable.Range(0, settings.UnaryCallers).Select(i => UnaryAsync(client(settings.Streams + i), i, images, settings, result, limit.Token)).ToArray();
            await Task.WhenAll(streams);
            result.StreamsElapsed = load.Elapsed;
            await Task.WhenAll(unary);
            await sampling.CancelAsync();
            await sampler;
            SummarizeMemory(samples, settings, result);

            await DisconnectAsync(server.Address, images, settings, result, limit.Token);
            (result.ActiveStreamsAfter, result.QueueAfter) = await WaitIdleAsync(metrics, limit.Token);
            if (result.ActiveStreamsAfter != 0 || result.QueueAfter != 0)
            {
                result.Violation($"after the disconnects the server still has {result.ActiveStreamsAfter} open stream(s) and {result.QueueAfter} queued request(s)");
            }

            result.AfterDisconnectsRss = server.ResidentBytes();
        }
        catch (OperationCanceledException) when (limit.IsCancellationRequested && !cancellationToken.IsCancellationRequested)
        {
            result.Violation($"the run did not finish within its hard limit of {settings.HardLimit.TotalSeconds:F0} s");
        }
        finally
        {
            foreach (var channel in channels)
            {
                channel.Dispose();
            }
        }

        result.Elapsed = clock.Elapsed;
        return result;
    }

    private static async Task StreamAsync(SegmentationService.SegmentationServiceClient client, int index, Image[] images, SoakSettings settings, SoakResult result, CancellationToken cancellationToken)
    {
        // Three in four streams queue; the others drop their oldest or keep the latest frame only.
        var policy = (index % 8) switch { 3 => OverloadPolicy.DropOldest, 7 => OverloadPolicy.LatestOnly, _ => OverloadPolicy.Queue };
        var config = new StreamConfig { MaxInFlight = (uint)settings.MaxInFlight, OverloadPolicy = policy };
        config.Tasks.Add(index % 2 == 0 ? SegmentationTask.Semantic : SegmentationTask.Panoptic);
        var name = $"stream {index} ({policy})";
        var answers = new int[settings.FramesPerStream];
        try
        {
            using var call = client.SegmentStream(cancellationToken: cancellationToken);
            var reading = Task.Run(
                async () =>
                {
                    var last = -1L;
                    await foreach (var response in call.ResponseStream.ReadAllAsync(cancellationToken).ConfigureAwait(false))
                    {
                        var id = (long)response.FrameId;
                        if (id < 0 || id >= answers.Length)
                        {
                            result.Violation($"{name}: an answer for frame {id}, which was never sent");
                            continue;
                        }

                        if (id <= last)
                        {
                            result.Violation($"{name}: frame {id} answered after frame {last}");
                        }

                        last = id;
                        Interlocked.Increment(ref answers[id]);
                        Classify(response, policy, name, result);
                    }
                },
                cancellationToken);

            await call.RequestStream.WriteAsync(new SegmentStreamRequest { Config = config }, cancellationToken);
            var interval = settings.Duration / settings.FramesPerStream;
            var started = Stopwatch.GetTimestamp();
            for (var frame = 0; frame < settings.FramesPerStream; frame++)
            {
                var due = (interval * frame) - Stopwatch.GetElapsedTime(started);
                if (due > TimeSpan.Zero)
                {
                    await Task.Delay(due, cancellationToken);
                }

                await call.RequestStream.WriteAsync(new SegmentStreamRequest { Frame = new StreamFrame { FrameId = (ulong)frame, Image = images[(frame + index) % images.Length] } }, cancellationToken);
                Interlocked.Increment(ref result.FramesSent);
            }

            await call.RequestStream.CompleteAsync();
            await reading;
        }
        catch (RpcException ex) when (!cancellationToken.IsCancellationRequested)
        {
            result.Violation($"{name}: the call ended {ex.StatusCode}: {ex.Status.Detail}");
        }

        for (var id = 0; id < answers.Length; id++)
        {
            if (answers[id] != 1)
            {
                result.Violation($"{name}: frame {id} answered {answers[id]} time(s)");
            }
        }
    }

    private static void Classify(SegmentStreamResponse response, OverloadPolicy policy, string name, SoakResult result)
    {
        switch (response.OutcomeCase)
        {
            case SegmentStreamResponse.OutcomeOneofCase.Result:
                Interlocked.Increment(ref result.FrameResults);
                break;
            case SegmentStreamResponse.OutcomeOneofCase.Skipped when
                (policy == OverloadPolicy.DropOldest && response.Skipped.Reason == SkipReason.DroppedOldest) ||
                (policy == OverloadPolicy.LatestOnly && response.Skipped.Reason == SkipReason.Superseded):
                Interlocked.Increment(ref result.FramesSkipped);
                break;
            case SegmentStreamResponse.OutcomeOneofCase.Error when policy != OverloadPolicy.Queue && response.Error.Code == (int)StatusCode.ResourceExhausted:
                Interlocked.Increment(ref result.FrameErrorsResourceExhausted);
                break;
            default:
                result.Violation($"{name}: frame {response.FrameId} answered {response.OutcomeCase} {response.Skipped?.Reason} {response.Error?.Code} {response.Error?.Message}");
                break;
        }
    }

    private static async Task UnaryAsync(SegmentationService.SegmentationServiceClient client, int index, Image[] images, SoakSettings settings, SoakResult result, CancellationToken cancellationToken)
    {
        var stopAt = Stopwatch.GetTimestamp() + (long)(settings.Duration.TotalSeconds * Stopwatch.Frequency);
        for (var i = 0; Stopwatch.GetTimestamp() < stopAt; i++)
        {
            var request = new SegmentRequest { Image = images[(i + (index * 7)) % images.Length], FrameId = (ulong)i };
            request.Tasks.Add(index % 4 == 0 ? SegmentationTask.Panoptic : SegmentationTask.Semantic);
            try
            {
                await client.SegmentAsync(request, deadline: DateTime.UtcNow.AddSeconds(60), cancellationToken: cancellationToken);
                Interlocked.Increment(ref result.UnaryOk);
            }
            catch (RpcException ex) when (ex.StatusCode == StatusCode.ResourceExhausted && ex.GetRpcStatus()?.GetDetail<Google.Rpc.RetryInfo>() is { } retry)
            {
                Interlocked.Increment(ref result.UnaryResourceExhausted);
                await Task.Delay(retry.RetryDelay.ToTimeSpan(), cancellationToken);
            }
            catch (RpcException ex) when (!cancellationToken.IsCancellationRequested)
            {
                result.Violation($"unary caller {index}: {ex.StatusCode}: {ex.Status.Detail}");
            }
        }
    }

    // Streams on connections of their own that send frames, see the first answer (so frames are in the
    // engine) and vanish: half cancel the call (RST_STREAM), half drop the whole connection.
    private static async Task DisconnectAsync(string address, Image[] images, SoakSettings settings, SoakResult result, CancellationToken cancellationToken)
    {
        await Task.WhenAll(Enumerable.Range(0, settings.Disconnects).Select(async index =>
        {
            var channel = GrpcChannel.ForAddress(address);
            using var abandon = CancellationTokenSource.CreateLinkedTokenSource(cancellationToken);
            try
            {
                var call = new SegmentationService.SegmentationServiceClient(channel).SegmentStream(cancellationToken: abandon.Token);
                await call.RequestStream.WriteAsync(new SegmentStreamRequest { Config = new StreamConfig { MaxInFlight = 8 } }, cancellationToken);
                for (var frame = 0; frame < 16; frame++)
                {
                    await call.RequestStream.WriteAsync(new SegmentStreamRequest { Frame = new StreamFrame { FrameId = (ulong)frame, Image = images[frame % images.Length] } }, cancellationToken);
                    Interlocked.Increment(ref result.DisconnectedFramesSent);
                }

                await call.ResponseStream.MoveNext(cancellationToken);
                if (index % 2 == 0)
                {
                    await abandon.CancelAsync();
                }

                call.Dispose();
            }
            catch (RpcException ex) when (ex.StatusCode == StatusCode.Cancelled)
            {
            }
            finally
            {
                channel.Dispose();
            }
        }));
    }

    private static async Task<(double Streams, double Queue)> WaitIdleAsync(HttpClient metrics, CancellationToken cancellationToken)
    {
        (double Streams, double Queue) last = (double.NaN, double.NaN);
        for (var attempt = 0; attempt < 60; attempt++)
        {
            var text = await metrics.GetStringAsync(new Uri("/metrics", UriKind.Relative), cancellationToken);
            last = (Sum(text, "maskformer_streams_active"), Sum(text, "maskformer_queue_size"));
            if (last is (0, 0))
            {
                return last;
            }

            await Task.Delay(500, cancellationToken);
        }

        return last;
    }

    // The sum of a metric's samples over its label sets; NaN when the exposition does not have it.
    private static double Sum(string exposition, string metric)
    {
        var found = false;
        var sum = 0.0;
        foreach (var line in exposition.Split('\n'))
        {
            if (line.StartsWith(metric, StringComparison.Ordinal) && line.Length > metric.Length && line[metric.Length] is '{' or ' ')
            {
                found = true;
                var value = line[(line.LastIndexOf('}') + 1)..].Trim().Split(' ')[0];
                sum += double.Parse(value, CultureInfo.InvariantCulture);
            }
        }

        return found ? sum : double.NaN;
    }

    private static async Task SampleAsync(ServerProcess server, Stopwatch load, List<(double, long)> samples, CancellationToken cancellationToken)
    {
        try
        {
            while (true)
            {
                samples.Add((load.Elapsed.TotalSeconds, server.ResidentBytes()));
                await Task.Delay(500, cancellationToken);
            }
        }
        catch (OperationCanceledException)
        {
            samples.Add((load.Elapsed.TotalSeconds, server.ResidentBytes()));
        }
    }

    // Start: the sample a quarter of the way through the load as it ran (longer than the duration when
    // the server cannot keep up), once pools, the GC's budgets and every stream's buffers have grown.
    private static void SummarizeMemory(List<(double Seconds, long Bytes)> samples, SoakSettings settings, SoakResult result)
    {
        var warm = samples[^1].Seconds / 4;
        var start = samples.FirstOrDefault(s => s.Seconds >= warm, samples[^1]);
        result.RssTimeline = [.. samples.Where((s, i) => i == 0 || i == samples.Count - 1 || (int)(s.Seconds / 30) != (int)(samples[i - 1].Seconds / 30))];
        result.StartRss = start.Bytes;
        result.EndRss = samples[^1].Bytes;
        result.PeakRss = samples.Max(s => s.Bytes);
        var half = samples.Where(s => s.Seconds >= samples[^1].Seconds / 2).ToArray();
        if (half.Length > 2)
        {
            var (mx, my) = (half.Average(s => s.Seconds), half.Average(s => (double)s.Bytes));
            var slope = half.Sum(s => (s.Seconds - mx) * (s.Bytes - my)) / Math.Max(1e-9, half.Sum(s => (s.Seconds - mx) * (s.Seconds - mx)));
            result.SlopeMiBPerMinute = slope * 60 / 1048576;
        }

        if (result.EndRss - result.StartRss > settings.MaxGrowthMiB * 1048576L)
        {
            result.Violation($"resident memory grew {(result.EndRss - result.StartRss) / 1048576} MiB under load (from {result.StartRss / 1048576} MiB at {start.Seconds:F0} s to {result.EndRss / 1048576} MiB), more than {settings.MaxGrowthMiB} MiB");
        }
    }

    private static async Task WaitServingAsync(GrpcChannel channel, CancellationToken cancellationToken)
    {
        var health = new Grpc.Health.V1.Health.HealthClient(channel);
        while (true)
        {
            var status = await health.CheckAsync(new Grpc.Health.V1.HealthCheckRequest { Service = "maskformer.v1.SegmentationService" }, cancellationToken: cancellationToken);
            if (status.Status == Grpc.Health.V1.HealthCheckResponse.Types.ServingStatus.Serving)
            {
                return;
            }

            await Task.Delay(200, cancellationToken);
        }
    }

    private static int FreePort()
    {
        using var listener = new TcpListener(IPAddress.Loopback, 0);
        listener.Start();
        return ((IPEndPoint)listener.LocalEndpoint).Port;
    }
}
