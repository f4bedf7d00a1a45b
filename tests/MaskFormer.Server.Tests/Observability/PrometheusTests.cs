using System.Diagnostics;
using System.Net;
using System.Net.Sockets;
using System.Text.Json;
using MaskFormer.Contracts.V1;
using Xunit.Abstractions;

namespace MaskFormer.Server.Tests.Observability;

/// <summary>
/// A real Prometheus (Debian's package, installed by tools/install-test-deps.sh) scrapes the service's
/// metrics listener; the test reads the values back through Prometheus's HTTP query API.
/// </summary>
[Collection(TelemetryTestGroup.Name)]
public sealed class PrometheusTests(ITestOutputHelper output)
{
    private const string PrometheusBinary = "/usr/bin/prometheus";

    [Fact]
    public async Task Metrics_ScrapedByRealPrometheus_RequestCounterAndBatchSizeHistogramHaveTheCalls()
    {
        Assert.True(File.Exists(PrometheusBinary), $"{PrometheusBinary} is missing: run tools/install-test-deps.sh (Debian package 'prometheus')");
        await using var server = await TelemetryServer.StartAsync("scraped", ["--MaskFormer:Telemetry:PrometheusUrl=http://127.0.0.1:0"]);
        for (var i = 0; i < 3; i++)
        {
            await server.Client.SegmentAsync(new SegmentRequest { Image = SegmentTests.EncodedImage(HeldOutSet.ImageFiles[i]) });
        }

        var metrics = ServerFixture.MetricsAddress(server.App);
        using var http = new HttpClient();
        var text = await http.GetStringAsync(metrics);
        Assert.Contains("maskformer_requests_total", text, StringComparison.Ordinal);

        var scratch = Directory.CreateTempSubdirectory("maskformer-prometheus-").FullName;
        var port = FreePort();
        var config = Path.Combine(scratch, "prometheus.yml");
        await File.WriteAllTextAsync(config, $"""
            global:
              scrape_interval: 1s
            scrape_configs:
              - job_name: maskformer
                static_configs:
                  - targets: ["127.0.0.1:{metrics.Port}"]
            """);
        var start = new ProcessStartInfo(PrometheusBinary) { RedirectStandardOutput = true, RedirectStandardError = true, UseShellExecute = false };
        foreach (var argument in new[] { $"--config.file={config}", $"--storage.tsdb.path={Path.Combine(scratch, "data")}", $"--web.listen-address=127.0.0.1:{port}" })
        {
            start.ArgumentList.Add(argument);
        }

        using var prometheus = Process.Start(start)!;
        prometheus.OutputDataReceived += (_, _) => { };
        prometheus.ErrorDataReceived += (_, _) => { };
        prometheus.BeginOutputReadLine();
        prometheus.BeginErrorReadLine();
        try
        {
            var api = new Uri($"http://127.0.0.1:{port}/api/v1/query");
            Assert.Equal(3, await QueryAsync(http, api, "sum(maskformer_requests_total{maskformer_model_name=\"scraped\"})", 3));
            Assert.Equal(3, await QueryAsync(http, api, "sum(maskformer_batch_size_count{maskformer_model_name=\"scraped\"})", 3));
            Assert.Equal(3, await QueryAsync(http, api, "sum(maskformer_batch_size_sum{maskformer_model_name=\"scraped\"})", 3));
        }
        finally
        {
            prometheus.Kill(entireProcessTree: true);
            await prometheus.WaitForExitAsync();
            Directory.Delete(scratch, recursive: true);
        }
    }

    // Polls the query until it returns the expected value (a scrape may not have happened yet).
    private async Task<double> QueryAsync(HttpClient http, Uri api, string query, double expected)
    {
        var until = DateTime.UtcNow.AddSeconds(60);
        var last = double.NaN;
        while (DateTime.UtcNow < until)
        {
            try
            {
                using var document = JsonDocument.Parse(await http.GetStringAsync(new Uri($"{api}?query={Uri.EscapeDataString(query)}")));
                var result = document.RootElement.GetProperty("data").GetProperty("result");
                if (result.GetArrayLength() > 0)
                {
                    last = double.Parse(result[0].GetProperty("value")[1].GetString()!, System.Globalization.CultureInfo.InvariantCulture);
                    if (last == expected)
                    {
                        output.WriteLine($"{query} = {last}");
                        return last;
                    }
                }
            }
            catch (HttpRequestException)
            {
            }

            await Task.Delay(250);
        }

        return last;
    }

    // A free port from this suite's range (9390-9399), so parallel suites on one machine do not collide.
    private static int FreePort()
    {
        for (var port = 9390; port <= 9399; port++)
        {
            try
            {
                using var probe = new TcpListener(IPAddress.Loopback, port);
                probe.Start();
                return port;
            }
            catch (SocketException)
            {
            }
        }

        throw new InvalidOperationException("no free port in 9390-9399 for Prometheus");
    }
}
