using System.Diagnostics;
using SixLabors.ImageSharp;
using SixLabors.ImageSharp.Formats.Jpeg;
using SixLabors.ImageSharp.Processing;

namespace MaskFormer.Benchmarks.Report;

/// <summary>The models and images the report runs on.</summary>
internal static class BenchmarkInputs
{
    public const string Tiny = "tiny-shapes";
    public const string Realistic = "realistic-width";

    /// <summary>Where the generated realistic-width model lives (ignored by git).</summary>
    public static string RealisticFolder => Path.Combine(RepositoryPaths.Root, "bench", "models", Realistic);

    /// <summary>A held-out image as committed (PNG, about 150 pixels a side).</summary>
    public static byte[] HeldOut() => File.ReadAllBytes(Path.Combine(RepositoryPaths.HeldOut, "0000.png"));

    /// <summary>A held-out image (0000.png unless named) scaled to <paramref name="width"/> x <paramref name="height"/>, as a JPEG (quality 90).</summary>
    public static byte[] Scaled(int width, int height, string file = "0000.png")
    {
        using var image = Image.Load(Path.Combine(RepositoryPaths.HeldOut, file));
        image.Mutate(x => x.Resize(width, height, KnownResamplers.Triangle));
        using var stream = new MemoryStream();
        image.Save(stream, new JpegEncoder { Quality = 90 });
        return stream.ToArray();
    }

    /// <summary>
    /// Generates the realistic-width model with tools/model-zoo/make_realistic.py (Debian's Python and
    /// python3-torch, installed by tools/model-zoo/install.sh when missing) unless it is already there.
    /// </summary>
    public static async Task<string> EnsureRealisticAsync(TextWriter log, CancellationToken cancellationToken)
    {
        var folder = RealisticFolder;
        if (File.Exists(Path.Combine(folder, "model.onnx")) && File.Exists(Path.Combine(folder, "config.json")))
        {
            return folder;
        }

        const string Python = "/usr/bin/python3";
        if (await RunAsync(Python, ["-c", "import torch, onnx"], cancellationToken) != 0)
        {
            await log.WriteLineAsync("python3-torch missing: running tools/model-zoo/install.sh");
            if (await RunAsync("bash", [Path.Combine(RepositoryPaths.Root, "tools", "model-zoo", "install.sh")], cancellationToken) != 0)
            {
                throw new InvalidOperationException("tools/model-zoo/install.sh failed; the realistic-width model needs Debian's python3-torch and python3-onnx.");
            }
        }

        await log.WriteLineAsync($"generating the realistic-width model in {folder}");
        return await RunAsync(Python, [Path.Combine(RepositoryPaths.Root, "tools", "model-zoo", "make_realistic.py"), "--out", folder], cancellationToken) == 0
            ? folder
            : throw new InvalidOperationException("tools/model-zoo/make_realistic.py failed.");
    }

    private static async Task<int> RunAsync(string file, string[] arguments, CancellationToken cancellationToken)
    {
        var info = new ProcessStartInfo(file) { UseShellExecute = false };
        foreach (var argument in arguments)
        {
            info.ArgumentList.Add(argument);
        }

        try
        {
            using var process = Process.Start(info)!;
            await process.WaitForExitAsync(cancellationToken);
            return process.ExitCode;
        }
        catch (System.ComponentModel.Win32Exception)
        {
            return -1;
        }
    }
}
