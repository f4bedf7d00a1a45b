using System.Diagnostics;

namespace MaskFormer.Cli.Tests;

/// <summary>The CLI installs as a .NET tool the way the README says, and the installed command runs.</summary>
public sealed class ToolPackageTests : IDisposable
{
#if DEBUG
    private const string Configuration = "Debug";
#else
    private const string Configuration = "Release";
#endif

    private readonly string _work = Directory.CreateTempSubdirectory("maskformer-tool-").FullName;

    [Fact]
    public async Task PackThenToolInstall_InstalledMaskformerHelp_ExitsZero()
    {
        var project = Path.Combine(RepositoryPaths.Root, "src", "MaskFormer.Cli", "MaskFormer.Cli.csproj");
        var packages = Path.Combine(_work, "packages");
        var tools = Path.Combine(_work, "tools");

        // A version of its own, so no package cached by an earlier run can stand in for this build.
        var version = $"1.0.0-test.{Guid.NewGuid():N}";

        // --no-build: the test project already built the CLI in this configuration.
        await RunAsync("dotnet", "pack", project, "-c", Configuration, "--no-build", "-nologo", "-o", packages, $"-p:Version={version}");
        await RunAsync("dotnet", "tool", "install", "MaskFormer.Cli", "--version", version, "--tool-path", tools, "--add-source", packages, "--ignore-failed-sources");
        var help = await RunAsync(Path.Combine(tools, OperatingSystem.IsWindows() ? "maskformer.exe" : "maskformer"), "--help");

        Assert.Contains("usage: maskformer COMMAND", help, StringComparison.Ordinal);
        Assert.Contains("MASKFORMER_ADDRESS", help, StringComparison.Ordinal);
    }

    public void Dispose() => Directory.Delete(_work, recursive: true);

    private async Task<string> RunAsync(string program, params string[] args)
    {
        var start = new ProcessStartInfo(program, args) { RedirectStandardOutput = true, RedirectStandardError = true, UseShellExecute = false, WorkingDirectory = _work };
        start.Environment["DOTNET_CLI_TELEMETRY_OPTOUT"] = "1";
        start.Environment["DOTNET_NOLOGO"] = "1";
        using var process = Process.Start(start) ?? throw new InvalidOperationException($"{program} did not start.");
        var output = process.StandardOutput.ReadToEndAsync();
        var error = process.StandardError.ReadToEndAsync();
        await process.WaitForExitAsync();
        Assert.True(process.ExitCode == 0, $"{program} {string.Join(' ', args)} exited {process.ExitCode}:\n{await output}\n{await error}");
        return await output;
    }
}
