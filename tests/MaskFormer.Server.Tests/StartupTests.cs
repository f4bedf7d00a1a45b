using System.Diagnostics;
using Grpc.Health.V1;
using Grpc.Net.Client;
using MaskFormer.Engine.Models;
using MaskFormer.Engine.Sessions;
using MaskFormer.Server.Hosting;
using Microsoft.AspNetCore.Hosting.Server;
using Microsoft.AspNetCore.Hosting.Server.Features;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.Diagnostics.HealthChecks;
using Microsoft.Extensions.Options;

namespace MaskFormer.Server.Tests;

public sealed class StartupTests : IDisposable
{
    private readonly string _scratch = Directory.CreateTempSubdirectory("maskformer-startup-").FullName;

    [Fact]
    public async Task Start_ModelFileMissing_FailsNamingTheFile()
    {
        var folder = CopyModel();
        File.Delete(Path.Combine(folder, "model.onnx"));

        var error = await Assert.ThrowsAsync<ModelLoadException>(() => StartAsync(_scratch));

        Assert.Equal(Path.Combine(folder, "model.onnx"), error.FilePath);
        Assert.Contains("model.onnx", error.Message, StringComparison.Ordinal);
    }

    [Fact]
    public async Task Start_ConfigNotJson_FailsNamingTheFile()
    {
        var folder = CopyModel();
        await File.WriteAllTextAsync(Path.Combine(folder, "config.json"), "{ not json");

        var error = await Assert.ThrowsAsync<ModelLoadException>(() => StartAsync(_scratch));

        Assert.EndsWith("config.json", error.FilePath, StringComparison.Ordinal);
    }

    [Fact]
    public async Task Start_InvalidBatchSize_FailsNamingTheSetting()
    {
        var error = await Assert.ThrowsAsync<OptionsValidationException>(() => StartAsync(RepositoryPaths.Models, "--MaskFormer:Inference:MaxBatchSize=0"));

        Assert.Contains("MaskFormer:Inference:MaxBatchSize", error.Message, StringComparison.Ordinal);
    }

    [Theory]
    [InlineData("0", 4, "must be a comma-separated list of batch sizes, each between 1 and MaxBatchSize (4) (was '0')")]
    [InlineData("1,5", 4, "must be a comma-separated list of batch sizes, each between 1 and MaxBatchSize (4) (was '1,5')")]
    [InlineData("1;4", 4, "must be a comma-separated list of batch sizes, each between 1 and MaxBatchSize (4) (was '1;4')")]
    [InlineData("four", 4, "must be a comma-separated list of batch sizes, each between 1 and MaxBatchSize (4) (was 'four')")]
    [InlineData("1,2,3,4", 8, "may give at most 4 sizes with MaxBatchSize (8)")]
    public async Task Start_CudaBatchSizesNotSizesUpToMaxBatchSize_FailsNamingTheSetting(string sizes, int maxBatchSize, string expected)
    {
        var error = await Assert.ThrowsAsync<OptionsValidationException>(() => StartAsync(RepositoryPaths.Models, $"--MaskFormer:Inference:MaxBatchSize={maxBatchSize}", $"--MaskFormer:Inference:CudaBatchSizes={sizes}"));

        Assert.Contains($"MaskFormer:Inference:CudaBatchSizes {expected}", error.Message, StringComparison.Ordinal);
    }

    [Theory]
    [InlineData("CudaHostWait", "7", "must be Auto, Spin, Yield or BlockingSync (was 7)")]
    [InlineData("CpuMemoryArena", "5", "must be Keep, Shrink or Off (was 5)")]
    public async Task Start_EnumSettingOutOfRange_FailsNamingTheSetting(string setting, string value, string expected)
    {
        var error = await Assert.ThrowsAsync<OptionsValidationException>(() => StartAsync(RepositoryPaths.Models, $"--MaskFormer:Inference:{setting}={value}"));

        Assert.Contains($"MaskFormer:Inference:{setting} {expected}", error.Message, StringComparison.Ordinal);
    }

    [Theory]
    [InlineData("-1")]
    [InlineData("1025")]
    public async Task Start_InvalidPostprocessThreads_FailsNamingTheSetting(string threads)
    {
        var error = await Assert.ThrowsAsync<OptionsValidationException>(() => StartAsync(RepositoryPaths.Models, $"--MaskFormer:Inference:PostprocessThreads={threads}"));

        Assert.Contains($"MaskFormer:Inference:PostprocessThreads must be between 0 (the cores, shared among the images) and 1024 (was {threads})", error.Message, StringComparison.Ordinal);
    }

    [Fact]
    public async Task Start_CudaBatchSizesWithPaddingOff_FailsNamingBothSettings()
    {
        var error = await Assert.ThrowsAsync<OptionsValidationException>(() => StartAsync(RepositoryPaths.Models, "--MaskFormer:Inference:PadCudaBatches=false", "--MaskFormer:Inference:CudaBatchSizes=1,2"));

        Assert.Contains("MaskFormer:Inference:CudaBatchSizes is set ('1,2') but PadCudaBatches is false", error.Message, StringComparison.Ordinal);
    }

    [Theory]
    [InlineData("ClassVoteFrames", "0")]
    [InlineData("MaxMissedTime", "-00:00:01")]
    [InlineData("MinInstanceScore", "1.5")]
    public async Task Start_InvalidTrackingDefault_FailsNamingTheSetting(string setting, string value)
    {
        var error = await Assert.ThrowsAsync<OptionsValidationException>(() => StartAsync(RepositoryPaths.Models, $"--MaskFormer:Streaming:Tracking:{setting}={value}"));

        Assert.Contains($"MaskFormer:Streaming:Tracking:{setting}", error.Message, StringComparison.Ordinal);
    }

    [Theory]
    [InlineData("-1")]
    [InlineData("20")]
    public async Task Start_InvalidRequestThreadNice_FailsNamingTheSetting(string nice)
    {
        var error = await Assert.ThrowsAsync<OptionsValidationException>(() => StartAsync(RepositoryPaths.Models, $"--MaskFormer:Inference:RequestThreadNice={nice}"));

        Assert.Contains("MaskFormer:Inference:RequestThreadNice must be 0 to 19", error.Message, StringComparison.Ordinal);
    }

    [Theory]
    [InlineData("00:00:00.050")]
    [InlineData("02:00:00")]
    [InlineData("-00:00:01")]
    public async Task Start_InvalidSessionRunTimeout_FailsNamingTheSetting(string timeout)
    {
        var error = await Assert.ThrowsAsync<OptionsValidationException>(() => StartAsync(RepositoryPaths.Models, $"--MaskFormer:Inference:SessionRunTimeout={timeout}"));

        Assert.Contains("MaskFormer:Inference:SessionRunTimeout", error.Message, StringComparison.Ordinal);
    }

    // One setting of each group: some are validated while the host is built (Kestrel's limits, TLS and
    // tokens, the streams' drain time), the rest when it starts; all end in the same one line.
    [Theory]
    [InlineData("MaskFormer__Inference__MaxBatchSize", "0", "MaskFormer:Inference:MaxBatchSize")]
    [InlineData("MaskFormer__Streaming__DrainTimeout", "0", "MaskFormer:Streaming:DrainTimeout")]
    [InlineData("MaskFormer__Streaming__Tracking__IouThreshold", "0", "MaskFormer:Streaming:Tracking:IouThreshold")]
    [InlineData("MaskFormer__Grpc__MaxConnections", "0", "MaskFormer:Grpc:MaxConnections")]
    [InlineData("MaskFormer__Grpc__MaxRequestBytesInFlight", "1024", "MaskFormer:Grpc:MaxRequestBytesInFlight")]
    [InlineData("MaskFormer__Security__Health", "Off", "MaskFormer:Security:Health")]
    [InlineData("MaskFormer__Security__TokensFile", "/nonexistent/tokens.txt", "MaskFormer:Security:TokensFile")]
    [InlineData("MaskFormer__Security__CertificateCheckInterval", "00:00:00", "MaskFormer:Security:CertificateCheckInterval")]
    public async Task ServerProcess_BadSettingFromEnvironment_ExitsNonZeroNamingTheSetting(string variable, string value, string setting)
    {
        var (exitCode, output) = await RunServerProcessAsync(
            new Dictionary<string, string> { [variable] = value },
            $"--MaskFormer:Models:Path={RepositoryPaths.Models}",
            "--Kestrel:Endpoints:Grpc:Url=http://127.0.0.1:0");

        Assert.Equal(1, exitCode);
        Assert.Contains(setting, AssertOneLineWithoutStackTrace(output), StringComparison.Ordinal);
    }

    // Settings the host used to take without a check: each ended the process with a stack trace (exit 134),
    // was dropped without a word (a list element the binder cannot convert), left the server NOT_SERVING for
    // good (image limits under the warm-up's image), or was handed to callers (a negative retry delay).
    [Theory]
    [InlineData("--Kestrel:Endpoints:Grpc:Url=garbage", "Kestrel:Endpoints:Grpc:Url 'garbage' is not a URL")]
    [InlineData("--Kestrel:Endpoints:Grpc:Url=http://127.0.0.1:99999", "has port 99999")]
    [InlineData("--Kestrel:Endpoints:Grpc:Url=https://127.0.0.1:0", "is https:// but no certificate is set: set MaskFormer:Security:CertificatePath")]
    [InlineData("--Kestrel:Endpoints:Grpc:Protocols=Bogus", "Kestrel:Endpoints:Grpc:Protocols 'Bogus' must be")]
    [InlineData("--MaskFormer:Inference:Devices:0:Required=yes", "MaskFormer:Inference:Devices:0:Required")]
    [InlineData("--MaskFormer:Inference:Devices:0:Sessions=two", "MaskFormer:Inference:Devices:0:Sessions")]
    [InlineData("--MaskFormer:Models:Overrides:tiny-shapes:ThingIds:0=abc", "MaskFormer:Models:Overrides:tiny-shapes:ThingIds:0")]
    [InlineData("--MaskFormer:Inference:QueueFullRetryAfter=-00:00:05", "MaskFormer:Inference:QueueFullRetryAfter must be positive")]
    [InlineData("--MaskFormer:Images:MaxDimension=300", "MaskFormer:Images:MaxDimension must be at least 320")]
    [InlineData("--MaskFormer:Images:MaxPixels=70000", "MaxPixels at least 76800")]
    [InlineData("--MaskFormer:Models:Variant=fp16", "Change it with MaskFormer:Models:Variant")]
    [InlineData("--MaskFormer:Models:Overrides:tiny-shapes:ResizeMethod=bicubic", "Change it with MaskFormer:Models:Overrides:tiny-shapes:ResizeMethod")]
    public async Task ServerProcess_BadHostSetting_ExitsNonZeroWithOneLineNamingIt(string setting, string expected)
    {
        var (exitCode, output) = await RunServerProcessAsync([], $"--MaskFormer:Models:Path={RepositoryPaths.Models}", "--Kestrel:Endpoints:Grpc:Url=http://127.0.0.1:0", setting);

        Assert.True(exitCode == 1, $"exit code {exitCode}: {output.Stderr} {output.Stdout}");
        Assert.Contains(expected, AssertOneLineWithoutStackTrace(output), StringComparison.Ordinal);
    }

    // A certificate or key that cannot be read used to start a server whose cleartext health probe said
    // SERVING while every TLS handshake failed.
    [Theory]
    [InlineData("garbage")]
    [InlineData("another key")]
    public async Task ServerProcess_TlsFilesThatCannotBeRead_ExitsNonZeroNamingTheSettings(string which)
    {
        using var key = System.Security.Cryptography.ECDsa.Create(System.Security.Cryptography.ECCurve.NamedCurves.nistP256);
        using var other = System.Security.Cryptography.ECDsa.Create(System.Security.Cryptography.ECCurve.NamedCurves.nistP256);
        var request = new System.Security.Cryptography.X509Certificates.CertificateRequest("CN=localhost", key, System.Security.Cryptography.HashAlgorithmName.SHA256);
        using var certificate = request.CreateSelfSigned(DateTimeOffset.UtcNow.AddDays(-1), DateTimeOffset.UtcNow.AddDays(30));
        var (certificatePath, keyPath) = (Path.Combine(_scratch, "server.pem"), Path.Combine(_scratch, "server.key"));
        await File.WriteAllTextAsync(certificatePath, which == "garbage" ? "garbage" : certificate.ExportCertificatePem());
        await File.WriteAllTextAsync(keyPath, which == "garbage" ? "garbage" : other.ExportPkcs8PrivateKeyPem());

        var (exitCode, output) = await RunServerProcessAsync(
            [],
            $"--MaskFormer:Models:Path={RepositoryPaths.Models}",
            "--Kestrel:Endpoints:Grpc:Url=https://127.0.0.1:0",
            $"--MaskFormer:Security:CertificatePath={certificatePath}",
            $"--MaskFormer:Security:KeyPath={keyPath}");

        Assert.True(exitCode == 1, $"exit code {exitCode}: {output.Stderr} {output.Stdout}");
        Assert.Contains("MaskFormer:Security:CertificatePath and MaskFormer:Security:KeyPath must be a PEM certificate and its private key", AssertOneLineWithoutStackTrace(output), StringComparison.Ordinal);
    }

    [Fact]
    public async Task ServerProcess_PrometheusPortInUse_NamesThePrometheusSetting()
    {
        using var taken = new System.Net.Sockets.TcpListener(System.Net.IPAddress.Loopback, 0);
        taken.Start();
        var address = $"http://127.0.0.1:{((System.Net.IPEndPoint)taken.LocalEndpoint).Port}";

        var (exitCode, output) = await RunServerProcessAsync([], $"--MaskFormer:Models:Path={RepositoryPaths.Models}", "--Kestrel:Endpoints:Grpc:Url=http://127.0.0.1:0", $"--MaskFormer:Telemetry:PrometheusUrl={address}");

        Assert.Equal(1, exitCode);
        var line = AssertOneLineWithoutStackTrace(output);
        Assert.Contains("Change it with MaskFormer:Telemetry:PrometheusUrl", line, StringComparison.Ordinal);
    }

    [Fact]
    public async Task ServerProcess_PortInUse_ExitsNonZeroWithOneLineNamingTheAddressAndSetting()
    {
        using var taken = new System.Net.Sockets.TcpListener(System.Net.IPAddress.Loopback, 0);
        taken.Start();
        var address = $"http://127.0.0.1:{((System.Net.IPEndPoint)taken.LocalEndpoint).Port}";

        var (exitCode, output) = await RunServerProcessAsync([], $"--MaskFormer:Models:Path={RepositoryPaths.Models}", $"--Kestrel:Endpoints:Grpc:Url={address}");

        Assert.Equal(1, exitCode);
        var line = AssertOneLineWithoutStackTrace(output);
        Assert.Contains(address, line, StringComparison.Ordinal);
        Assert.Contains("Kestrel__Endpoints__Grpc__Url", line, StringComparison.Ordinal);
    }

    [Fact]
    public async Task ServerProcess_NoModelRepository_ExitsNonZeroWithOneLineNamingThePathAndSetting()
    {
        var missing = Path.Combine(_scratch, "no-such-models");

        var (exitCode, output) = await RunServerProcessAsync([], $"--MaskFormer:Models:Path={missing}", "--Kestrel:Endpoints:Grpc:Url=http://127.0.0.1:0");

        Assert.Equal(1, exitCode);
        var line = AssertOneLineWithoutStackTrace(output);
        Assert.Contains($"'{missing}'", line, StringComparison.Ordinal);
        Assert.Contains("MaskFormer__Models__Path", line, StringComparison.Ordinal);
    }

    [Fact]
    public async Task ServerProcess_CorruptModel_ExitsNonZeroNamingTheFile()
    {
        var folder = CopyModel();
        await File.WriteAllBytesAsync(Path.Combine(folder, "model.onnx"), [1, 2, 3, 4, 5, 6, 7, 8, 9, 10]);

        var (exitCode, output) = await RunServerProcessAsync([], $"--MaskFormer:Models:Path={_scratch}", "--Kestrel:Endpoints:Grpc:Url=http://127.0.0.1:0");

        Assert.Equal(1, exitCode);
        var line = AssertOneLineWithoutStackTrace(output);
        Assert.Contains(Path.Combine(folder, "model.onnx"), line, StringComparison.Ordinal);
        Assert.Contains("MaskFormer:Models:Path", line, StringComparison.Ordinal);
    }

    [Fact]
    public async Task ServerProcess_RequiredCudaDeviceUnusable_ExitsNonZeroWithTheReason()
    {
        // cuda:99 exists on no machine, so this fails the same way with or without a GPU.
        var (exitCode, output) = await RunServerProcessAsync(
            new Dictionary<string, string> { ["MaskFormer__Inference__Devices__0__Name"] = "cuda:99", ["MaskFormer__Inference__Devices__0__Required"] = "true" },
            $"--MaskFormer:Models:Path={RepositoryPaths.Models}",
            "--Kestrel:Endpoints:Grpc:Url=http://127.0.0.1:0");

        Assert.Equal(1, exitCode);
        Assert.Contains("maskformer-server: cannot start: Required device cuda:99 cannot be used: ", AssertOneLineWithoutStackTrace(output), StringComparison.Ordinal);
    }

    [Fact]
    public async Task Start_RequiredCuda0_ServesOnCudaOrFailsWithTheReason()
    {
        var error = await Record.ExceptionAsync(() => StartAsync(RepositoryPaths.Models, "--MaskFormer:Inference:Devices:0:Name=cuda:0", "--MaskFormer:Inference:Devices:0:Required=true"));

        // This machine class has no GPU, so a required cuda:0 stops start-up here; on a GPU machine it starts.
        if (error is not null)
        {
            Assert.Equal("cuda:0", Assert.IsType<DeviceUnavailableException>(error).Device);
        }
    }

    [Fact]
    public async Task Health_BeforeWarmUp_UnhealthyThenServingOverGrpc()
    {
        // The readiness check the gRPC health service maps, asked before the host has loaded and warmed
        // the models (deterministic, unlike racing a warm-up over the wire), then over the wire once started.
        var app = ServerApp.Build(ServerFixture.Arguments());
        await using (app)
        {
            var checks = app.Services.GetRequiredService<HealthCheckService>();

            var before = await checks.CheckHealthAsync();
            await app.StartAsync();
            var address = new Uri(app.Services.GetRequiredService<IServer>().Features.Get<IServerAddressesFeature>()!.Addresses.First());
            using var channel = GrpcChannel.ForAddress(address);
            await ServerFixture.WaitUntilServingAsync(channel);
            var serving = await new Grpc.Health.V1.Health.HealthClient(channel).CheckAsync(new HealthCheckRequest { Service = "maskformer.v1.SegmentationService" });

            Assert.Equal(HealthStatus.Unhealthy, before.Status);
            Assert.Equal(HealthCheckResponse.Types.ServingStatus.Serving, serving.Status);
            await app.StopAsync();
        }
    }

    public void Dispose() => Directory.Delete(_scratch, recursive: true);

    private string CopyModel() => RepositoryPaths.CopyTinyShapes(Path.Combine(_scratch, "tiny-shapes"));

    private static async Task StartAsync(string modelsPath, params string[] extra)
    {
        var (app, _) = await ServerFixture.StartAsync([.. ServerFixture.Arguments(extra), $"--MaskFormer:Models:Path={modelsPath}"]);
        await app.StopAsync();
        await app.DisposeAsync();
    }

    /// <summary>The error is one line on stderr, and no stack trace went to either stream.</summary>
    private static string AssertOneLineWithoutStackTrace((string Stderr, string Stdout) output)
    {
        var line = Assert.Single(output.Stderr.Split('\n', StringSplitOptions.RemoveEmptyEntries | StringSplitOptions.TrimEntries));
        Assert.StartsWith("maskformer-server: ", line, StringComparison.Ordinal);
        Assert.DoesNotMatch(@"(?m)^\s+at \S+\(", output.Stdout);
        Assert.DoesNotContain("Exception", output.Stdout, StringComparison.Ordinal);
        return line;
    }

    private static async Task<(int ExitCode, (string Stderr, string Stdout) Output)> RunServerProcessAsync(Dictionary<string, string> environment, params string[] args)
    {
        var serverDll = Path.Combine(AppContext.BaseDirectory, "MaskFormer.Server.dll");
        var start = new ProcessStartInfo("dotnet") { RedirectStandardError = true, RedirectStandardOutput = true, UseShellExecute = false };
        foreach (var (name, value) in environment)
        {
            start.Environment[name] = value;
        }

        start.ArgumentList.Add(serverDll);
        foreach (var arg in args)
        {
            start.ArgumentList.Add(arg);
        }

        using var process = Process.Start(start)!;
        using var timeout = new CancellationTokenSource(TimeSpan.FromSeconds(60));
        var stderr = process.StandardError.ReadToEndAsync(timeout.Token);
        var stdout = process.StandardOutput.ReadToEndAsync(timeout.Token);
        await process.WaitForExitAsync(timeout.Token);
        return (process.ExitCode, (await stderr, await stdout));
    }
}
