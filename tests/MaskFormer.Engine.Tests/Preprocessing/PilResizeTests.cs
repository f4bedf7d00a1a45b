using System.Diagnostics;
using MaskFormer.Engine.Decoding;
using MaskFormer.Engine.Models;
using MaskFormer.Engine.Preprocessing;

namespace MaskFormer.Engine.Tests.Preprocessing;

/// <summary>
/// <see cref="PilResize"/> against Pillow itself (Debian's python3-pil, installed by the test command),
/// on random images shrunk and enlarged by many factors: every uint8 must be equal.
/// </summary>
public sealed class PilResizeTests
{
    private static readonly (int Width, int Height, int TargetWidth, int TargetHeight)[] s_cases = BuildCases();

    [Fact]
    public void ResizeRgb_ManySizes_EqualsPillowExactly()
    {
        var folder = Directory.CreateTempSubdirectory("pil-resize-");
        try
        {
            var random = new Random(12345);
            var lines = new List<string>();
            var sources = new List<byte[]>();
            for (var i = 0; i < s_cases.Length; i++)
            {
                var (width, height, targetWidth, targetHeight) = s_cases[i];
                var pixels = new byte[width * height * 3];
                random.NextBytes(pixels);

                // Smooth regions as well as noise, so rounding of mid-range sums is exercised too.
                if (i % 2 == 0)
                {
                    for (var p = 0; p < pixels.Length; p++)
                    {
                        pixels[p] = (byte)((p / 3 % width * 7) + (p / 3 / width * 3) + (p % 3 * 40));
                    }
                }

                sources.Add(pixels);
                var input = Path.Combine(folder.FullName, $"{i}.in");
                File.WriteAllBytes(input, pixels);
                lines.Add($"{input} {width} {height} {Path.Combine(folder.FullName, $"{i}.out")} {targetWidth} {targetHeight}");
            }

            RunPillow(lines);

            for (var i = 0; i < s_cases.Length; i++)
            {
                var (width, height, targetWidth, targetHeight) = s_cases[i];
                var expected = File.ReadAllBytes(Path.Combine(folder.FullName, $"{i}.out"));
                var actual = new byte[targetWidth * targetHeight * 3];
                PilResize.ResizeRgb(sources[i], width, height, actual, targetWidth, targetHeight);
                Assert.True(
                    expected.AsSpan().SequenceEqual(actual),
                    $"{width}x{height} -> {targetWidth}x{targetHeight}: first difference at byte {FirstDifference(expected, actual)}");
            }
        }
        finally
        {
            folder.Delete(recursive: true);
        }
    }

    [Fact]
    public void ResizeRgb_Shrinking_Antialiases()
    {
        // A one-pixel checkerboard shrunk 4x: point sampling keeps 0/255, Pillow's widened filter averages.
        const int Size = 64;
        var pixels = new byte[Size * Size * 3];
        for (var p = 0; p < Size * Size; p++)
        {
            var value = (byte)(((p % Size) + (p / Size)) % 2 * 255);
            pixels.AsSpan(p * 3, 3).Fill(value);
        }

        var actual = new byte[16 * 16 * 3];
        PilResize.ResizeRgb(pixels, Size, Size, actual, 16, 16);

        Assert.All(actual, value => Assert.InRange(value, (byte)100, (byte)155));
    }

    [Fact]
    public void Process_PilMethod_NormalisesPillowsPixelsAndPads()
    {
        var config = new PreprocessorConfig
        {
            ResizeMode = ResizeMode.Fixed,
            Height = 20,
            Width = 30,
            SizeDivisor = 32,
            ResizeMethod = ResizeMethod.Pil,
            ImageMean = [0.5f, 0.4f, 0.3f],
            ImageStd = [0.2f, 0.25f, 0.3f],
        };
        using var image = RgbImage.Create(97, 41);
        new Random(3).NextBytes(image.Pixels);
        var resized = new byte[30 * 20 * 3];
        PilResize.ResizeRgb(image.ReadOnlyPixels, 97, 41, resized, 30, 20);

        using var input = new ImagePreprocessor(config).Process(image);

        var tensor = input.Tensor;
        Assert.Equal(3 * 32 * 32, tensor.Length);
        for (var c = 0; c < 3; c++)
        {
            for (var y = 0; y < 32; y++)
            {
                for (var x = 0; x < 32; x++)
                {
                    var expected = y < 20 && x < 30
                        ? ((resized[(((y * 30) + x) * 3) + c] * (config.RescaleFactor / config.ImageStd[c])) - (config.ImageMean[c] / config.ImageStd[c]))
                        : 0f;
                    Assert.Equal(expected, tensor[(c * 32 * 32) + (y * 32) + x], 5);
                }
            }
        }
    }

    private static (int, int, int, int)[] BuildCases()
    {
        var random = new Random(7);
        var cases = new List<(int, int, int, int)>
        {
            (1920, 1080, 384, 216), (640, 480, 512, 384), (1, 1, 5, 3), (7, 3, 1, 1), (100, 100, 100, 37),
            (100, 100, 37, 100), (33, 17, 34, 18), (512, 512, 512, 512), (96, 200, 128, 266), (1000, 3, 1, 3),
        };
        while (cases.Count < 60)
        {
            var width = random.Next(1, 300);
            var height = random.Next(1, 300);
            cases.Add((width, height, random.Next(1, 300), random.Next(1, 300)));
        }

        return [.. cases];
    }

    private static void RunPillow(List<string> lines)
    {
        var script = Path.Combine(AppContext.BaseDirectory, "Preprocessing", "pil_resize.py");
        var start = new ProcessStartInfo("/usr/bin/python3", [script])
        {
            RedirectStandardInput = true,
            RedirectStandardOutput = true,
            RedirectStandardError = true,
        };
        using var process = Process.Start(start) ?? throw new InvalidOperationException("could not start /usr/bin/python3");
        foreach (var line in lines)
        {
            process.StandardInput.WriteLine(line);
        }

        process.StandardInput.Close();
        var output = process.StandardOutput.ReadToEnd();
        var errors = process.StandardError.ReadToEnd();
        process.WaitForExit();
        Assert.True(process.ExitCode == 0, $"Pillow oracle failed (is python3-pil installed?): {errors}");
        Assert.False(string.IsNullOrWhiteSpace(output), "Pillow oracle printed no version");
    }

    private static int FirstDifference(byte[] expected, byte[] actual)
    {
        for (var i = 0; i < Math.Min(expected.Length, actual.Length); i++)
        {
            if (expected[i] != actual[i])
            {
                return i;
            }
        }

        return expected.Length == actual.Length ? -1 : Math.Min(expected.Length, actual.Length);
    }
}
