using System.Diagnostics;
using System.Globalization;
using Google.Protobuf;
using Grpc.Health.V1;
using Grpc.Net.Client;
using MaskFormer.Contracts.V1;

namespace MaskFormer.Benchmarks;

/// <summary>
/// The first request after health says SERVING against the tenth, over gRPC, on a freshly started
/// server process (so nothing is warm but what the server's own warm-up warmed). Each run starts a new
/// server; the client's channel is connected by the health checks before the first request.
/// </summary>
internal static class FirstCallReport
{
    private const int Requests = 10;

    public static async Task<int> RunAsync(string[] args)
    {
        var runs = args.Length > 0 ? int.Parse(args[0], CultureInfo.InvariantCulture) : 3;
        var port = args.Length > 1 ? int.Parse(args[1], CultureInfo.InvariantCulture) : 5219;
        var image = new Image { Encoded = ByteString.CopyFrom(await File.ReadAllBytesAsync(Path.Combine(RepositoryPaths.HeldOut, "0000.png"))) };
        var request = new SegmentRequest { Image = image, Tasks = { SegmentationTask.Semantic, SegmentationTask.Instance, SegmentationTask.Panoptic } };

        Console.WriteLine($"Segment (semantic + instance + panoptic) on heldout/0000.png, a new server process per run, {Environment.ProcessorCount} cores");
        Console.WriteLine();
        Console.WriteLine("| run | 1st ms (client) | 1st ms (server total) | 10th ms (client) | 10th ms (server total) | 1st / 10th (client) |");
        Console.WriteLine("| ---: | ---: | ---: | ---: | ---: | ---: |");
        var ratios = new List<double>();
        var stageLines = new List<string>();
        for (var run = 1; run <= runs; run++)
        {
            var (client, server, first, tenth) = await MeasureAsync(request, port);
            stageLines.Add($"run {run}: 1st: {first}; 10th: {tenth}");
            ratios.Add(client[0] / client[^1]);
            Console.WriteLine(string.Create(CultureInfo.InvariantCulture, $"| {run} | {client[0]:F1} | {server[0]:F1} | {client[^1]:F1} | {server[^1]:F1} | {client[0] / client[^1]:F2} |"));
        }

        Console.WriteLine();
        Console.WriteLine("server stages, ms:");
        stageLines.ForEach(Console.WriteLine);
        Console.WriteLine(string.Create(CultureInfo.InvariantCulture, $"median 1st / 10th: {ratios.Order().ElementAt(ratios.Count / 2):F2}"));
        return 0;
    }

    private static string Stages(Contracts.V1.StageTimings t) => string.Create(
        CultureInfo.InvariantCulture,
        $"decode {t.DecodeMs:F1}, pre-process {t.PreprocessMs:F1}, queue {t.QueueMs:F1}, model {t.InferenceMs:F1}, post-process {t.PostprocessMs:F1}, encode {t.EncodeMs:F1}");

    private static async Task<(double[] Client, double[] Server, string First, string Tenth)> MeasureAsync(SegmentRequest request, int port)
    {
        var address = $"http://127.0.0.1:{port}";
        var start = new ProcessStartInfo("dotnet") { UseShellExecute = false, RedirectStandardOutput = true, RedirectStandardError = true };
        foreach (var arg in new[] { Path.Combine(AppContext.BaseDirectory, "MaskFormer.Server.dll"), $"--Kestrel:Endpoints:Grpc:Url={address}", $"--MaskFormer:Models:Path={RepositoryPaths.Models}", "--Logging:LogLevel:Default=Warning" })
        {
            start.ArgumentList.Add(arg);
        }

        using var server = Process.Start(start) ?? throw new InvalidOperationException("The server did not start.");
        _ = server.StandardOutput.ReadToEndAsync();
        _ = server.StandardError.ReadToEndAsync();
        try
        {
            using var channel = GrpcChannel.ForAddress(address);
            await WaitServingAsync(channel, server);
            var client = new SegmentationService.SegmentationServiceClient(channel);
            var clientMs = new double[Requests];
            var serverMs = new double[Requests];
            var stages = new string[Requests];
            for (var i = 0; i < Requests; i++)
            {
                var stopwatch = Stopwatch.StartNew();
                var response = await client.SegmentAsync(request);
                clientMs[i] = stopwatch.Elapsed.TotalMilliseconds;
                serverMs[i] = response.Timings.TotalMs;
                stages[i] = Stages(response.Timings);
            }

            return (clientMs, serverMs, stages[0], stages[^1]);
        }
        finally
        {
            server.Kill(entireProcessTree: true);
            await server.WaitForExitAsync();
        }
    }

    private static async Task WaitServingAsync(GrpcChannel channel, Process server)
    {
        var health = new Health.HealthClient(channel);
        var until = Stopwatch.StartNew();
        while (until.Elapsed < TimeSpan.FromSeconds(120))
        {
            if (server.HasExited)
            {
                throw new InvalidOperationException($"The server exited with code {server.ExitCode}.");
            }

            try
            {
                if ((await health.CheckAsync(new HealthCheckRequest())).Status == HealthCheckResponse.Types.ServingStatus.Serving)
                {
                    return;
                }
            }
            catch (Grpc.Core.RpcException)
            {
                // Not listening yet.
            }

            await Task.Delay(20);
        }

        throw new TimeoutException("The server did not report SERVING within 120 s.");
    }
}
