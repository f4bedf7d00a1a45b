using System.Diagnostics;
using System.Text.RegularExpressions;

namespace MaskFormer.Benchmarks.Report;

/// <summary>
/// The service as it is deployed: its own process (its own runtime settings, GC and threads), started
/// from the built MaskFormer.Server.dll on a free loopback port, so its CPU time and resident memory
/// are its own and not the load generator's.
/// </summary>
internal sealed partial class ServerProcess : IAsyncDisposable
{
    private readonly Process _process;
    private readonly TaskCompletionSource<string> _address = new(TaskCreationOptions.RunContinuationsAsynchronously);
    private readonly List<string> _log = [];

    private readonly int? _ignoredPort;

    private ServerProcess(Process process, int? ignoredPort)
    {
        _process = process;
        _ignoredPort = ignoredPort;
    }

    public string Address => _address.Task.Result;

    /// <summary>The server's process id (for attaching a profiler).</summary>
    public int Id => _process.Id;

    /// <param name="modelFolder">The model repository to serve.</param>
    /// <param name="extraArguments">More settings, as "--Key=Value".</param>
    /// <param name="cancellationToken">Stops waiting for the server to listen.</param>
    /// <param name="environment">More environment variables for the server.</param>
    /// <param name="otherListenerPort">A port of another listener the arguments open (Prometheus), not the gRPC one.</param>
    /// <param name="serverDll">Another build of MaskFormer.Server.dll (a baseline to compare with); this tree's by default.</param>
    public static async Task<ServerProcess> StartAsync(string modelFolder, IReadOnlyList<string> extraArguments, CancellationToken cancellationToken, IReadOnlyDictionary<string, string>? environment = null, int? otherListenerPort = null, string? serverDll = null)
    {
        var dll = serverDll ?? ServerDll();
        var info = new ProcessStartInfo("dotnet")
        {
            WorkingDirectory = Path.GetDirectoryName(dll)!,
            RedirectStandardOutput = true,
            RedirectStandardError = true,
            UseShellExecute = false,
        };
        foreach (var argument in new[]
        {
            dll,
            "--Kestrel:Endpoints:Grpc:Url=http://127.0.0.1:0",
            $"--MaskFormer:Models:Path={modelFolder}",
            "--Logging:LogLevel:Default=Warning",
            "--Logging:LogLevel:Microsoft.Hosting.Lifetime=Information",
        }.Concat(extraArguments))
        {
            info.ArgumentList.Add(argument);
        }

        foreach (var (name, value) in environment ?? new Dictionary<string, string>())
        {
            info.Environment[name] = value;
        }

        var server = new ServerProcess(Process.Start(info) ?? throw new InvalidOperationException("could not start the server"), otherListenerPort);
        server._process.OutputDataReceived += (_, e) => server.OnLine(e.Data);
        server._process.ErrorDataReceived += (_, e) => server.OnLine(e.Data);
        server._process.BeginOutputReadLine();
        server._process.BeginErrorReadLine();
        // A server that cannot start (a required GPU missing, a bad setting) exits at once: say so then,
        // not after the 3 minutes a slow start may take. WaitForExitAsync also waits for the last log lines.
        var exited = server._process.WaitForExitAsync(CancellationToken.None);
        try
        {
            await Task.WhenAny(server._address.Task, exited).WaitAsync(TimeSpan.FromMinutes(3), cancellationToken);
        }
        catch (TimeoutException)
        {
            await server.DisposeAsync();
            throw new TimeoutException($"the server did not start listening; its log:\n{server.Log()}");
        }
        catch
        {
            // Cancelled while waiting: the process must not outlive the report.
            await server.DisposeAsync();
            throw;
        }

        if (!server._address.Task.IsCompleted)
        {
            var code = server._process.ExitCode;
            await server.DisposeAsync();
            throw new InvalidOperationException($"the server exited with code {code} before it listened; its log:\n{server.Log()}");
        }

        return server;
    }

    /// <summary>The server's CPU time so far (user + system, all threads).</summary>
    public TimeSpan CpuTime()
    {
        _process.Refresh();
        return _process.TotalProcessorTime;
    }

    /// <summary>Resident memory now.</summary>
    public long ResidentBytes()
    {
        _process.Refresh();
        return _process.WorkingSet64;
    }

    public string Log()
    {
        lock (_log)
        {
            return string.Join('\n', _log.TakeLast(40));
        }
    }

    public async ValueTask DisposeAsync()
    {
        if (!_process.HasExited)
        {
            _process.Kill(entireProcessTree: true);
            await _process.WaitForExitAsync();
        }

        _process.Dispose();
    }

    private static string ServerDll()
    {
#if DEBUG
        const string Configuration = "Debug";
#else
        const string Configuration = "Release";
#endif
        // Another build of the server (a before/after comparison) when named.
        var dll = Environment.GetEnvironmentVariable("MASKFORMER_BENCH_SERVER_DLL") is { Length: > 0 } other
            ? other
            : Path.Combine(RepositoryPaths.Root, "src", "MaskFormer.Server", "bin", Configuration, "net10.0", "MaskFormer.Server.dll");
        return File.Exists(dll) ? dll : throw new InvalidOperationException($"{dll} is missing; build the solution in {Configuration} first.");
    }

    private void OnLine(string? line)
    {
        if (line is null)
        {
            return;
        }

        lock (_log)
        {
            _log.Add(line);
        }

        if (ListeningOn().Match(line) is { Success: true } match && (_ignoredPort is not { } ignored || new Uri(match.Groups[1].Value).Port != ignored))
        {
            _address.TrySetResult(match.Groups[1].Value);
        }
    }

    [GeneratedRegex(@"Now listening on: (http://\S+)")]
    private static partial Regex ListeningOn();
}
