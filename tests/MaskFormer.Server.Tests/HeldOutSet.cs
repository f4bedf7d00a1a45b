using System.Runtime.InteropServices;
using System.Text.Json;
using SixLabors.ImageSharp;
using SixLabors.ImageSharp.PixelFormats;

namespace MaskFormer.Server.Tests;

/// <summary>The committed held-out images with their ground truth, and the Python evaluation's numbers.</summary>
internal static class HeldOutSet
{
    public static IReadOnlyList<string> ImageFiles { get; } = LoadImageFiles();

    public static byte[] ReadLabels(string path) => DecodeLabels(File.ReadAllBytes(path));

    public static byte[] DecodeLabels(byte[] png)
    {
        using var image = SixLabors.ImageSharp.Image.Load<L8>(png);
        var labels = new byte[image.Width * image.Height];
        image.ProcessPixelRows(rows =>
        {
            for (var y = 0; y < rows.Height; y++)
            {
                MemoryMarshal.AsBytes(rows.GetRowSpan(y)).CopyTo(labels.AsSpan(y * image.Width));
            }
        });
        return labels;
    }

    /// <summary>The mIoU the model card states for the committed held-out images (its "committed" row).</summary>
    public static double ReadCardMiou()
    {
        var row = File.ReadLines(Path.Combine(RepositoryPaths.TinyShapes, "MODEL.md")).First(line => line.StartsWith("| committed", StringComparison.Ordinal));
        return double.Parse(row.Split('|', StringSplitOptions.TrimEntries)[3], System.Globalization.CultureInfo.InvariantCulture);
    }

    public static JsonDocument ReadEvaluation() => JsonDocument.Parse(File.ReadAllText(Path.Combine(RepositoryPaths.TinyShapes, "eval.json")));

    private static List<string> LoadImageFiles()
    {
        using var annotations = JsonDocument.Parse(File.ReadAllText(Path.Combine(RepositoryPaths.HeldOut, "annotations.json")));
        return [.. annotations.RootElement.GetProperty("images").EnumerateArray().Select(image => image.GetProperty("file_name").GetString()!)];
    }
}

/// <summary>mIoU as the model zoo's evaluate.py defines it: one confusion over all images, mean over classes with a union.</summary>
internal sealed class MeanIou(int classes)
{
    private readonly long[] _intersection = new long[classes];
    private readonly long[] _union = new long[classes];

    public void Add(ReadOnlySpan<byte> truth, ReadOnlySpan<byte> prediction)
    {
        var truthCounts = new long[classes];
        var predictionCounts = new long[classes];
        var intersection = new long[classes];
        for (var i = 0; i < truth.Length; i++)
        {
            if (truth[i] == 255)
            {
                continue;
            }

            truthCounts[truth[i]]++;
            if (prediction[i] < classes)
            {
                predictionCounts[prediction[i]]++;
            }

            if (truth[i] == prediction[i])
            {
                intersection[truth[i]]++;
            }
        }

        for (var c = 0; c < classes; c++)
        {
            _intersection[c] += intersection[c];
            _union[c] += truthCounts[c] + predictionCounts[c] - intersection[c];
        }
    }

    public double Value => Enumerable.Range(0, classes).Where(c => _union[c] > 0).Average(c => _intersection[c] / (double)_union[c]);
}
