using System.Diagnostics;
using System.Net.Sockets;
using System.Text;

[assembly: CollectionBehavior(DisableTestParallelization = true)]

namespace MaskFormer.Examples.Tests;

/// <summary>The built example, its server and the repository's files, as the tests find them.</summary>
internal static class Example
{
    public static readonly string Root = FindRoot();

    // bin/CONFIGURATION/net10.0/ of this test project: the example is built in the same configuration.
    public static readonly string Configuration = new DirectoryInfo(Path.TrimEndingDirectorySeparator(AppContext.BaseDirectory)).Parent!.Name;

    public static readonly string Dll = Path.Combine(Root, "examples", "csharp", "MaskFormer.Examples", "bin", Configuration, "net10.0", "MaskFormer.Examples.dll");
    public static readonly string HeldoutImage = Path.Combine(Root, "models", "tiny-shapes", "heldout", "0000.png");
    public static readonly string Clip = Path.Combine(Root, "models", "tiny-shapes", "clip");

    private static readonly string[] s_clientVariables = ["MASKFORMER_ADDRESS", "MASKFORMER_TOKEN", "MASKFORMER_CA_CERT", "MASKFORMER_CLIENT_CERT", "MASKFORMER_CLIENT_KEY"];

    /// <summary>The live server's address from $MASKFORMER_ADDRESS; fails the test when it is unset or nothing listens there.</summary>
    public static string Address
    {
        get
        {
            var address = Environment.GetEnvironmentVariable("MASKFORMER_ADDRESS");
            if (string.IsNullOrEmpty(address))
            {
                Assert.Fail("MASKFORMER_ADDRESS is not set: start the server and run e.g. `MASKFORMER_ADDRESS=127.0.0.1:5081 dotnet test examples/csharp/MaskFormer.Examples.Tests`");
            }

            var hostPort = address.Contains("://", StringComparison.Ordinal) ? new Uri(address).Authority : address;
            var colon = hostPort.LastIndexOf(':');
            try
            {
                using var client = new TcpClient();
                client.Connect(hostPort[..colon].Trim('[', ']'), int.Parse(hostPort[(colon + 1)..], System.Globalization.CultureInfo.InvariantCulture));
            }
            catch (Exception ex) when (ex is SocketException or FormatException or ArgumentException)
            {
                Assert.Fail($"nothing answers at MASKFORMER_ADDRESS={address} ({ex.Message}): start the server there first");
            }

            return address;
        }
    }

    /// <summary>
    /// The bound on a failure "at once". It is timed against a connect timeout far longer
    /// (<see cref="RunAtOnceAsync"/>): an example that waited for the timeout instead would take 60 s, while a
    /// loaded machine may take seconds just to start a process.
    /// </summary>
    public static readonly TimeSpan AtOnce = TimeSpan.FromSeconds(20);

    /// <summary><see cref="RunAsync"/> with --connect-timeout 60, for a failure that must come at once.</summary>
    public static Task<Run> RunAtOnceAsync(string[] args, IReadOnlyDictionary<string, string>? environment = null) =>
        RunAsync([.. args, "--connect-timeout", "60"], environment);

    /// <summary>Runs the example to its end (2 minutes at most) with no client variables but <paramref name="environment"/>'s.</summary>
    public static async Task<Run> RunAsync(string[] args, IReadOnlyDictionary<string, string>? environment = null)
    {
        using var process = Start(args, environment);
        var output = process.StandardOutput.ReadToEndAsync();
        var errors = process.StandardError.ReadToEndAsync();
        var started = Stopwatch.GetTimestamp();
        using var timeout = new CancellationTokenSource(TimeSpan.FromMinutes(2));
        try
        {
            await process.WaitForExitAsync(timeout.Token);
        }
        catch (OperationCanceledException)
        {
            process.Kill(entireProcessTree: true);
            Assert.Fail($"the example did not end within 2 minutes: {string.Join(' ', args)}\n{await output}\n{await errors}");
        }

        return new Run(process.ExitCode, await output, await errors, Stopwatch.GetElapsedTime(started));
    }

    /// <summary>Starts the example with its output redirected: `dotnet MaskFormer.Examples.dll ARGS`.</summary>
    public static Process Start(string[] args, IReadOnlyDictionary<string, string>? environment = null)
    {
        Assert.True(File.Exists(Dll), $"no example at {Dll}: build it (dotnet build MaskFormer.sln -c {Configuration})");
        var info = new ProcessStartInfo("dotnet") { RedirectStandardOutput = true, RedirectStandardError = true, StandardOutputEncoding = Encoding.UTF8 };
        info.ArgumentList.Add(Dll);
        foreach (var arg in args)
        {
            info.ArgumentList.Add(arg);
        }

        foreach (var name in s_clientVariables)
        {
            info.Environment.Remove(name);
        }

        foreach (var (name, value) in environment ?? new Dictionary<string, string>())
        {
            info.Environment[name] = value;
        }

        return Process.Start(info)!;
    }

    /// <summary>A port nothing listens on (from $MASKFORMER_TEST_FREE_PORTS, "FIRST-LAST", when set, else the system's choice).</summary>
    public static int FreePort()
    {
        var range = Environment.GetEnvironmentVariable("MASKFORMER_TEST_FREE_PORTS")?.Split('-');
        var (first, last) = range is [var a, var b] ? (int.Parse(a, System.Globalization.CultureInfo.InvariantCulture), int.Parse(b, System.Globalization.CultureInfo.InvariantCulture)) : (0, 0);
        for (var port = first; port <= last; port++)
        {
            try
            {
                using var listener = new TcpListener(System.Net.IPAddress.Loopback, port);
                listener.Start();
                return ((System.Net.IPEndPoint)listener.LocalEndpoint).Port;
            }
            catch (SocketException)
            {
                // Taken: the next one.
            }
        }

        throw new InvalidOperationException($"no free port in MASKFORMER_TEST_FREE_PORTS={first}-{last}");
    }

    private static string FindRoot()
    {
        for (var folder = new DirectoryInfo(AppContext.BaseDirectory); folder is not null; folder = folder.Parent)
        {
            if (File.Exists(Path.Combine(folder.FullName, "MaskFormer.sln")))
            {
                return folder.FullName;
            }
        }

        throw new InvalidOperationException($"no MaskFormer.sln above {AppContext.BaseDirectory}");
    }
}

/// <summary>How one run of the example ended.</summary>
internal sealed record Run(int ExitCode, string Output, string Errors, TimeSpan Elapsed)
{
    public override string ToString() => $"exit {ExitCode} after {Elapsed.TotalSeconds:F1} s\nstdout:\n{Output}\nstderr:\n{Errors}";
}

/// <summary>Kills a process still running when the test ends (a failed assertion), so that none outlives the test.</summary>
internal sealed class Ending(Process process) : IDisposable
{
    public void Dispose()
    {
        if (!process.HasExited)
        {
            process.Kill(entireProcessTree: true);
        }
    }
}
