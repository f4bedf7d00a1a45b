using System.Diagnostics;
using System.Text;
using System.Text.RegularExpressions;

namespace MaskFormer.Cli.Tests.Commands;

/// <summary>
/// A TLS 1.2 server that wants a client certificate and refuses the handshake itself without one, or with one
/// its CA did not issue or that is out of date, as servers built on OpenSSL do: `openssl s_server -tls1_2
/// -Verify 1 -verify_return_error` with the certificates of tools/make-test-certs.sh (made for it, in
/// <see cref="Files"/>), on a loopback port the system gives. The project's server (Kestrel, TLS 1.3 here)
/// refuses a client certificate only after the handshake, and .NET's own TLS 1.2 server checks one only after
/// its handshake, so neither can show this. It speaks no gRPC: a call that got through would fail after.
/// </summary>
public sealed partial class Tls12Server : IAsyncLifetime, IDisposable
{
    private static readonly TimeSpan s_startLimit = TimeSpan.FromSeconds(60);

    private readonly StringBuilder _output = new();
    private readonly TaskCompletionSource<int> _port = new(TaskCreationOptions.RunContinuationsAsynchronously);
    private Process? _process;

    /// <summary>The folder of tools/make-test-certs.sh's files: ca.pem, server.pem, client.pem, client-expired.pem, other-ca.pem and keys.</summary>
    public string Files { get; } = Directory.CreateTempSubdirectory("maskformer-tls12-").FullName;

    /// <summary>https://127.0.0.1:PORT.</summary>
    public Uri Address { get; private set; } = null!;

    /// <summary>What openssl has printed so far, for a failed test's message.</summary>
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

    public async Task InitializeAsync()
    {
        await RunToEndAsync("bash", Path.Combine(RepositoryPaths.Root, "tools", "make-test-certs.sh"), Files);

        // Port 0: the port comes back in s_server's "ACCEPT 127.0.0.1:PORT" (OpenSSL 3), so none is guessed.
        // -verify_return_error: a client certificate that fails the check ends the handshake (s_server would
        // otherwise only print the error); -www: answers without reading standard input.
        var start = new ProcessStartInfo("openssl") { RedirectStandardOutput = true, RedirectStandardError = true, RedirectStandardInput = true, UseShellExecute = false };
        foreach (var arg in (string[])["s_server", "-accept", "127.0.0.1:0", "-tls1_2", "-cert", Path.Combine(Files, "server.pem"), "-key", Path.Combine(Files, "server.key"),
            "-CAfile", Path.Combine(Files, "ca.pem"), "-Verify", "1", "-verify_return_error", "-www"])
        {
            start.ArgumentList.Add(arg);
        }

        _process = new Process { StartInfo = start };
        _process.OutputDataReceived += (_, e) => Take(e.Data);
        _process.ErrorDataReceived += (_, e) => Take(e.Data);
        _process.Start();
        _process.BeginOutputReadLine();
        _process.BeginErrorReadLine();

        var ended = _process.WaitForExitAsync();
        var first = await Task.WhenAny(_port.Task, ended, Task.Delay(s_startLimit));
        if (first != _port.Task)
        {
            var why = first == ended ? $"exited with {_process.ExitCode}" : $"did not say where it listens within {s_startLimit.TotalSeconds} s";
            Dispose();
            Assert.Fail($"openssl s_server {why}:\n{Output}");
        }

        Address = new Uri($"https://127.0.0.1:{await _port.Task}");
    }

    // Dispose ends it: xunit calls both.
    public Task DisposeAsync() => Task.CompletedTask;

    public void Dispose()
    {
        if (_process is not null)
        {
            if (!_process.HasExited)
            {
                _process.Kill(entireProcessTree: true);
                _process.WaitForExit();
            }

            _process.Dispose();
            _process = null;
        }

        if (Directory.Exists(Files))
        {
            Directory.Delete(Files, recursive: true);
        }
    }

    private static async Task RunToEndAsync(string program, params string[] args)
    {
        var start = new ProcessStartInfo(program, args) { RedirectStandardOutput = true, RedirectStandardError = true, UseShellExecute = false };
        using var process = Process.Start(start) ?? throw new InvalidOperationException($"{program} did not start.");
        var output = process.StandardOutput.ReadToEndAsync();
        var error = process.StandardError.ReadToEndAsync();
        await process.WaitForExitAsync();
        Assert.True(process.ExitCode == 0, $"{program} {string.Join(' ', args)} exited {process.ExitCode}:\n{await output}\n{await error}");
    }

    [GeneratedRegex(@"^ACCEPT 127\.0\.0\.1:(\d+)$")]
    private static partial Regex Listening();

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

        if (Listening().Match(line) is { Success: true } listening)
        {
            _port.TrySetResult(int.Parse(listening.Groups[1].Value, System.Globalization.CultureInfo.InvariantCulture));
        }
    }
}
