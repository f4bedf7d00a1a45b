using System.Text.Json;
using System.Text.Json.Nodes;
using Google.Protobuf;
using Grpc.Net.Client;
using MaskFormer.Cli.Rendering;
using MaskFormer.Contracts.V1;
using SixLabors.ImageSharp;
using SixLabors.ImageSharp.PixelFormats;

namespace MaskFormer.Cli.Commands;

/// <summary>
/// <c>maskformer segment IMAGE</c>: sends one image, writes the label map PNG, a colourised overlay
/// with a legend, and a JSON summary.
/// </summary>
internal static class SegmentCommand
{
    public const string Usage = "maskformer segment IMAGE [--server URL] [--model NAME] [--out DIR] [--alpha 0.5] [--timeout SECONDS]";

    public static async Task<int> RunAsync(CommandArguments args, TextWriter output, CancellationToken cancellationToken)
    {
        if (args.Positional.Count != 1)
        {
            await Console.Error.WriteLineAsync($"usage: {Usage}").ConfigureAwait(false);
            return 2;
        }

        var imagePath = args.Positional[0];
        var outDirectory = args.Get("out", ".");
        var alpha = (float)args.GetDouble("alpha", 0.5);
        var timeout = TimeSpan.FromSeconds(args.GetDouble("timeout", 60));
        var bytes = await File.ReadAllBytesAsync(imagePath, cancellationToken).ConfigureAwait(false);

        using var channel = GrpcChannel.ForAddress(args.ServerAddress);
        var client = new SegmentationService.SegmentationServiceClient(channel);
        var models = await client.ListModelsAsync(new ListModelsRequest(), deadline: DateTime.UtcNow.Add(timeout), cancellationToken: cancellationToken).ConfigureAwait(false);
        var request = new SegmentRequest
        {
            Model = args.Get("model", string.Empty),
            Image = new Contracts.V1.Image { Encoded = ByteString.CopyFrom(bytes) },
            Tasks = { SegmentationTask.Semantic },
        };
        var response = await client.SegmentAsync(request, deadline: DateTime.UtcNow.Add(timeout), cancellationToken: cancellationToken).ConfigureAwait(false);
        var model = models.Models.FirstOrDefault(m => m.Name == response.Model && m.Version == response.ModelVersion)
            ?? models.Models.First(m => m.Name == response.Model);

        Directory.CreateDirectory(outDirectory);
        var stem = Path.Combine(outDirectory, Path.GetFileNameWithoutExtension(imagePath));
        var labelMap = response.Semantic.LabelMap;
        await File.WriteAllBytesAsync($"{stem}.labels.png", labelMap.Data.ToByteArray(), cancellationToken).ConfigureAwait(false);

        var total = (double)response.Width * response.Height;
        var legend = response.Semantic.Classes
            .Select(c => new LegendEntry((int)c.LabelId, c.LabelName, c.Area / total))
            .ToArray();
        using (var image = SixLabors.ImageSharp.Image.Load<Rgb24>(bytes))
        {
            var labels = OverlayRenderer.DecodeLabelMap(labelMap.Data.ToByteArray(), (int)labelMap.BitsPerPixel, image.Width, image.Height);
            using var overlay = OverlayRenderer.Render(image, labels, legend, alpha);
            await overlay.SaveAsPngAsync($"{stem}.overlay.png", cancellationToken).ConfigureAwait(false);
        }

        var summary = new JsonObject
        {
            ["image"] = Path.GetFullPath(imagePath),
            ["model"] = response.Model,
            ["model_version"] = response.ModelVersion,
            ["device"] = response.Device,
            ["width"] = response.Width,
            ["height"] = response.Height,
            ["classes"] = new JsonArray([.. response.Semantic.Classes.Select(c => (JsonNode)new JsonObject
            {
                ["id"] = c.LabelId,
                ["name"] = c.LabelName,
                ["is_thing"] = model.Labels.FirstOrDefault(l => l.Id == c.LabelId)?.IsThing ?? false,
                ["area"] = c.Area,
                ["fraction"] = Math.Round(c.Area / total, 6),
            })]),
            ["timings_ms"] = JsonNode.Parse(JsonFormatter.Default.Format(response.Timings)),
            ["outputs"] = new JsonObject
            {
                ["label_map"] = Path.GetFullPath($"{stem}.labels.png"),
                ["overlay"] = Path.GetFullPath($"{stem}.overlay.png"),
            },
        };
        var json = summary.ToJsonString(new JsonSerializerOptions { WriteIndented = true });
        await File.WriteAllTextAsync($"{stem}.json", json, cancellationToken).ConfigureAwait(false);

        await output.WriteLineAsync($"{Path.GetFileName(imagePath)}: {response.Width}x{response.Height} by {response.Model} {response.ModelVersion} on {response.Device} in {response.Timings.TotalMs:F1} ms").ConfigureAwait(false);
        foreach (var entry in legend)
        {
            await output.WriteLineAsync($"  {entry.Id,3} {entry.Name,-16} {entry.Fraction * 100,6:F2}%").ConfigureAwait(false);
        }

        await output.WriteLineAsync($"wrote {stem}.labels.png, {stem}.overlay.png, {stem}.json").ConfigureAwait(false);
        return 0;
    }
}
