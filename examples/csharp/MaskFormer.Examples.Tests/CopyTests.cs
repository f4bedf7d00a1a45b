using System.Diagnostics;
using System.Text.RegularExpressions;
using System.Xml.Linq;

namespace MaskFormer.Examples.Tests;

/// <summary>The example copied out of the repository as its README says ("Copy it out"), built and run there.</summary>
public sealed partial class CopyTests
{
    [Fact]
    public async Task Example_CopiedOutOfTheRepositoryAsTheReadmeSays_BuildsAndAnswersWhateverTheCulture()
    {
        using var folder = new TemporaryFolder();
        var project = Path.Combine(folder.Path, "MaskFormer.Examples");
        CopyFolder(Path.Combine(Example.Root, "examples", "csharp", "MaskFormer.Examples"), project);
        CopyFolder(Path.Combine(Example.Root, "protos"), Path.Combine(folder.Path, "protos"));

        // Nothing of the repository's above the copy (empty props files stop MSBuild looking further up).
        await File.WriteAllTextAsync(Path.Combine(folder.Path, "Directory.Build.props"), "<Project />\n");
        await File.WriteAllTextAsync(Path.Combine(folder.Path, "Directory.Packages.props"), "<Project />\n");

        // The README's two edits: a Version on each PackageReference (Directory.Packages.props's), the protos' path.
        var versions = XDocument.Load(Path.Combine(Example.Root, "Directory.Packages.props")).Descendants("PackageVersion")
            .ToDictionary(p => (string)p.Attribute("Include")!, p => (string)p.Attribute("Version")!);
        var csproj = Path.Combine(project, "MaskFormer.Examples.csproj");
        var text = (await File.ReadAllTextAsync(csproj)).Replace(@"..\..\..\protos", @"..\protos", StringComparison.Ordinal);
        text = PackageReference().Replace(text, m => $"{m.Value} Version=\"{versions[m.Groups[1].Value]}\"");
        await File.WriteAllTextAsync(csproj, text);

        var build = await RunAsync(project, "build", "-c", "Release", "-nologo", "--disable-build-servers", "-clp:ErrorsOnly");
        Assert.True(build.ExitCode == 0, $"the copy does not build:\n{build}");

        var dll = Path.Combine(project, "bin", "Release", "net10.0", "MaskFormer.Examples.dll");
        var run = await RunAsync(project, dll, "segment", Example.HeldoutImage, "--out", Path.Combine(folder.Path, "out"), "--server", Example.Address);
        Assert.True(run.ExitCode == 0, run.ToString());
        Assert.Contains("model:   tiny-shapes", run.Output, StringComparison.Ordinal);

        // Outside the repository the process is not culture-invariant (Directory.Build.props's
        // InvariantGlobalization): its messages must read the same under a culture with a decimal comma.
        var address = $"127.0.0.1:{Example.FreePort()}";
        var german = await RunAsync(project, new Dictionary<string, string> { ["LC_ALL"] = "de_DE.UTF-8" }, dll, "segment", Example.HeldoutImage, "--server", address, "--wait-for-server", "--connect-timeout", "0.5");
        Assert.True(german.ExitCode == 2, german.ToString());
        Assert.Contains($"error: cannot reach the MaskFormer server at {address} within 0.5 s: ", german.Errors, StringComparison.Ordinal);
    }

    private static void CopyFolder(string from, string to)
    {
        foreach (var file in Directory.EnumerateFiles(from, "*", SearchOption.AllDirectories))
        {
            var relative = Path.GetRelativePath(from, file);
            if (relative.Split(Path.DirectorySeparatorChar)[0] is "bin" or "obj")
            {
                continue;
            }

            Directory.CreateDirectory(Path.GetDirectoryName(Path.Combine(to, relative))!);
            File.Copy(file, Path.Combine(to, relative));
        }
    }

    // `dotnet ARGS` in FOLDER, outside the test host's MSBuild: the copy is built as a user builds it.
    private static Task<Run> RunAsync(string folder, params string[] args) => RunAsync(folder, new Dictionary<string, string>(), args);

    private static async Task<Run> RunAsync(string folder, IReadOnlyDictionary<string, string> environment, params string[] args)
    {
        var info = new ProcessStartInfo("dotnet") { WorkingDirectory = folder, RedirectStandardOutput = true, RedirectStandardError = true };
        foreach (var arg in args)
        {
            info.ArgumentList.Add(arg);
        }

        foreach (var name in info.Environment.Keys.Where(k => k.StartsWith("MSBUILD", StringComparison.OrdinalIgnoreCase) || k.StartsWith("MASKFORMER_", StringComparison.Ordinal)).ToList())
        {
            info.Environment.Remove(name);
        }

        foreach (var (name, value) in environment)
        {
            info.Environment[name] = value;
        }

        using var process = Process.Start(info)!;
        var output = process.StandardOutput.ReadToEndAsync();
        var errors = process.StandardError.ReadToEndAsync();
        var started = Stopwatch.GetTimestamp();
        using var timeout = new CancellationTokenSource(TimeSpan.FromMinutes(5));
        try
        {
            await process.WaitForExitAsync(timeout.Token);
        }
        catch (OperationCanceledException)
        {
            process.Kill(entireProcessTree: true);
            Assert.Fail($"dotnet {string.Join(' ', args)} did not end within 5 minutes:\n{await output}\n{await errors}");
        }

        return new Run(process.ExitCode, await output, await errors, Stopwatch.GetElapsedTime(started));
    }

    [GeneratedRegex("<PackageReference Include=\"([^\"]+)\"")]
    private static partial Regex PackageReference();
}
