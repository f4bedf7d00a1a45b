using System.Diagnostics;
using System.Text;

namespace MaskFormer.Examples.Tests;

/// <summary>
/// A server of the test's own: `dotnet $MASKFORMER_SERVER_DLL` on 127.0.0.1:PORT serving $MASKFORMER_MODELS
/// (by default the repository's Release build and models/), its output kept for the test's messages.
/// </summary>
internal sealed class ServerProcess : IDisposable
{
    private readonly Process _process;
    private readonly StringBuilder _output = new();
    private readonly TaskCompletionSource _ready = new(TaskCreationOptions.RunContinuationsAsynchronously);

    private ServerProcess(int port, string[] settings)
    {
        var dll = Environment.GetEnvironmentVariable("MASKFORMER_SERVER_DLL") is { Length: > 0 } given
            ? given
            : Path.Combine(Example.Root, "src", "MaskFormer.Server", "bin", Example.Configuration, "net10.0", "MaskFormer.Server.dll");
        var models = Environment.GetEnvironmentVariable("MASKFORMER_MODELS") is { Length: > 0 } folder ? folder : Path.Combine(Example.Root, "models");
        Assert.True(File.Exists(dll), $"no server at {dll}: build it (dotnet build MaskFormer.sln -c {Example.Configuration}) or set MASKFORMER_SERVER_DLL");
        Port = port;
        var info = new ProcessStartInfo("dotnet") { RedirectStandardOutput = true, RedirectStandardError = true };
        foreach (var arg in (string[])[dll, $"--Kestrel:Endpoints:Grpc:Url=http://127.0.0.1:{port}", $"--MaskFormer:Models:Path={models}", "--MaskFormer:Inference:WarmUp=false", .. settings])
        {
            info.ArgumentList.Add(arg);
        }

        _process = new Process { StartInfo = info };
        _process.OutputDataReceived += (_, e) => Take(e.Data);
        _process.ErrorDataReceived += (_, e) => Take(e.Data);
        _process.Start();
        _process.BeginOutputReadLine();
        _process.BeginErrorReadLine();
    }

    public int Port { get; }

    public string Address => $"127.0.0.1:{Port}";

    public int Id => _process.Id;

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

    /// <summary>Starts a server; does not wait for it.</summary>
    public static ServerProcess Start(int port, params string[] settings) => new(port, settings);

    /// <summary>Waits for "Inference engine ready" in its log (its models loaded: calls are answered).</summary>
    public async Task WaitUntilReadyAsync(TimeSpan timeout)
    {
        var ended = _process.WaitForExitAsync();
        var first = await Task.WhenAny(_ready.Task, ended, Task.Delay(timeout));
        Assert.True(first == _ready.Task, first == ended
            ? $"the server exited with {_process.ExitCode}:\n{Output}"
            : $"the server was not ready within {timeout.TotalSeconds} s:\n{Output}");
    }

    /// <summary>Sends the signal (TERM: a real drain; KILL) by the system's kill command.</summary>
    public void Signal(string signal)
    {
        using var kill = Process.Start("kill", ["-" + signal, _process.Id.ToString(System.Globalization.CultureInfo.InvariantCulture)]);
        kill.WaitForExit();
        Assert.Equal(0, kill.ExitCode);
    }

    public async Task WaitForExitAsync(TimeSpan timeout)
    {
        using var cancel = new CancellationTokenSource(timeout);
        try
        {
            await _process.WaitForExitAsync(cancel.Token);
        }
        catch (OperationCanceledException)
        {
            Assert.Fail($"the server did not exit within {timeout.TotalSeconds} s:\n{Output}");
        }
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

    private void Take(string? line)
    {
        if (line is null)
        {
            return;
        }

        lock (_output)
        {
            _output.AppendLine(line);
        }

        if (line.Contains("engine ready", StringComparison.Ordinal))
        {
            _ready.TrySetResult();
        }
    }
}
