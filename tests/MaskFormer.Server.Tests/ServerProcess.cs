using System.Diagnostics;
using System.Text.RegularExpressions;

namespace MaskFormer.Server.Tests;

/// <summary>The server as its own process, on a free loopback port it reports in its log.</summary>
internal sealed partial class ServerProcess : IDisposable
{
    private readonly Process _process;
    private const string PrometheusUrlArgument = "--MaskFormer:Telemetry:PrometheusUrl=";
    private readonly TaskCompletionSource<Uri> _address = new(TaskCreationOptions.RunContinuationsAsynchronously);

    // Kestrel names the metrics endpoint it listens on too; the gRPC address is the other one.
    private int? _metricsPort;
    private readonly System.Text.StringBuilder _output = new();

    private ServerProcess(Process process) => _process = process;

    public string Output
    {
        get
        {
            lock (_output)
            {
                return _output.ToString();
            }
        }
    }

    public static ServerProcess Start(params string[] args)
    {
        var start = new ProcessStartInfo("dotnet") { RedirectStandardError = true, RedirectStandardOutput = true, UseShellExecute = false };
        start.ArgumentList.Add(Path.Combine(AppContext.BaseDirectory, "MaskFormer.Server.dll"));
        start.ArgumentList.Add("--Kestrel:Endpoints:Grpc:Url=http://127.0.0.1:0");
        start.ArgumentList.Add($"--MaskFormer:Models:Path={RepositoryPaths.Models}");
        foreach (var arg in args)
        {
            start.ArgumentList.Add(arg);
        }

        var server = new ServerProcess(new Process { StartInfo = start });
        if (args.LastOrDefault(arg => arg.StartsWith(PrometheusUrlArgument, StringComparison.Ordinal)) is { } metrics)
        {
            server._metricsPort = new Uri(metrics[PrometheusUrlArgument.Length..]).Port;
        }

        server._process.OutputDataReceived += (_, e) => server.Append(e.Data);
        server._process.ErrorDataReceived += (_, e) => server.Append(e.Data);
        server._process.Start();
        server._process.BeginOutputReadLine();
        server._process.BeginErrorReadLine();
        return server;
    }

    public async Task<Uri> AddressAsync()
    {
        using var timeout = new CancellationTokenSource(TimeSpan.FromSeconds(120));
        var exited = _process.WaitForExitAsync(timeout.Token);
        var first = await Task.WhenAny(_address.Task, exited);
        return first == _address.Task ? await _address.Task : throw new InvalidOperationException($"The server did not start:\n{Output}");
    }

    public void Signal(string signal)
    {
        using var kill = Process.Start("kill", ["-" + signal, _process.Id.ToString(System.Globalization.CultureInfo.InvariantCulture)]);
        kill.WaitForExit();
        Assert.Equal(0, kill.ExitCode);
    }

    public async Task<int> WaitForExitAsync(TimeSpan timeout)
    {
        using var cancel = new CancellationTokenSource(timeout);
        try
        {
            await _process.WaitForExitAsync(cancel.Token);
        }
        catch (OperationCanceledException)
        {
            Assert.Fail($"The server did not exit within {timeout} of SIGTERM:\n{Output}");
        }

        return _process.ExitCode;
    }

    public void Dispose()
    {
        if (!_process.HasExited)
        {
            _process.Kill(entireProcessTree: true);
            _process.WaitForExit();
        }

        _process.Dispose();
    }

    private void Append(string? line)
    {
        if (line is null)
        {
            return;
        }

        lock (_output)
        {
            _output.AppendLine(line);
        }

        if (ListeningLine().Match(line) is { Success: true } match && new Uri(match.Groups[1].Value) is var address && address.Port != _metricsPort)
        {
            _address.TrySetResult(address);
        }
    }

    [GeneratedRegex(@"Now listening on: (http://\S+)")]
    private static partial Regex ListeningLine();
}
