using System.Diagnostics;
using System.Text;

namespace MaskFormer.Examples.Tests;

/// <summary>
/// A TLS 1.2 server that wants a client certificate and refuses the handshake itself without one, or with one
/// that its CA file did not issue or that is out of date, as servers built on OpenSSL do (`openssl s_server`
/// with tools/make-test-certs.sh's server.pem and ca.pem, on 127.0.0.1:PORT). The project's server (Kestrel,
/// TLS 1.3) refuses a client certificate only after the handshake, so it cannot show this. It speaks no gRPC:
/// a call that got through its handshake would fail after it.
/// </summary>
internal sealed class Tls12Server : IDisposable
{
    private readonly Process _process;
    private readonly StringBuilder _output = new();
    private readonly TaskCompletionSource _listening = new(TaskCreationOptions.RunContinuationsAsynchronously);

    private Tls12Server(string files, int port)
    {
        Address = $"https://127.0.0.1:{port}";

        // -Verify: a client certificate is required; -verify_return_error: one that fails the check ends the
        // handshake (s_server would otherwise only print the error); -www: answers without reading stdin.
        var info = new ProcessStartInfo("openssl") { RedirectStandardOutput = true, RedirectStandardError = true, RedirectStandardInput = true };
        foreach (var arg in (string[])["s_server", "-accept", $"127.0.0.1:{port}", "-tls1_2", "-cert", Path.Combine(files, "server.pem"), "-key", Path.Combine(files, "server.key"),
            "-CAfile", Path.Combine(files, "ca.pem"), "-Verify", "1", "-verify_return_error", "-www"])
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

    /// <summary>https://127.0.0.1:PORT.</summary>
    public string Address { get; }

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

    /// <summary>Starts one on a free port with the certificates in <paramref name="files"/> and waits until it listens.</summary>
    public static async Task<Tls12Server> StartAsync(string files)
    {
        var server = new Tls12Server(files, Example.FreePort());
        try
        {
            var ended = server._process.WaitForExitAsync();
            var first = await Task.WhenAny(server._listening.Task, ended, Task.Delay(TimeSpan.FromSeconds(60)));
            Assert.True(first == server._listening.Task, first == ended
                ? $"openssl s_server exited with {server._process.ExitCode}:\n{server.Output}"
                : $"openssl s_server did not listen within 60 s:\n{server.Output}");
            return server;
        }
        catch
        {
            server.Dispose();
            throw;
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

        if (line == "ACCEPT")
        {
            _listening.TrySetResult();
        }
    }
}
