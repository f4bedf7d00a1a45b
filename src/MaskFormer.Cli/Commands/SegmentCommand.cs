using System.Globalization;
using System.Text.Json;
using System.Text.Json.Nodes;
using Google.Protobuf;
using MaskFormer.Cli.Rendering;
using MaskFormer.Contracts.V1;
using SixLabors.ImageSharp;
using SixLabors.ImageSharp.PixelFormats;

namespace MaskFormer.Cli.Commands;

/// <summary>
/// <c>maskformer segment IMAGE</c>: sends one image and writes, per task asked for, the raw result
/// (label map PNG, panoptic segment-id PNG), an overlay picture with a legend, and one JSON summary.
/// </summary>
internal static class SegmentCommand
{
    public static CommandInfo Info { get; } = new(
        "segment",
        "segment one image: label map, overlay pictures, JSON summary",
        $"""
        usage: maskformer segment IMAGE [--task semantic|panoptic|instance] [--out DIR] [options]
        Segments one image. Writes into --out, named after IMAGE (0000.png gives 0000.*):
          semantic   0000.labels.png (label map), 0000.overlay.png
          panoptic   0000.panoptic.png (COCO segment ids), 0000.panoptic.overlay.png
          instance   0000.instance.overlay.png
          and 0000.json: classes, segments, instances, stage timings.
          --task LIST            semantic, panoptic, instance, or several comma-separated (default semantic)
          --out DIR              where to write (default .)
          --model NAME           the model (default: the server's default model)
          --alpha A              strength of the class colours over the image, 0..1 (default 0.6)
          --min-score S          instance: the lowest score kept and drawn (default 0.5)
          --timeout SECONDS      per call, retries included (default 60); RESOURCE_EXHAUSTED with RetryInfo
                                 (the server is overloaded) is retried after the delay it asks for, 5 tries at most;
                                 UNAVAILABLE from the server (models still loading, draining) after its delay, or 0.25 s doubling to 4 s
        {CliApp.ServerHelp}
        """,
        ["task", "out", "model", "alpha", "min-score", "timeout"],
        (args, output, _, cancellationToken) => RunAsync(args, output, cancellationToken));

    public static async Task<int> RunAsync(CommandArguments args, TextWriter output, CancellationToken cancellationToken)
    {
        if (args.Positional.Count != 1)
        {
            throw new UsageException($"give one IMAGE (got {args.Positional.Count}); see 'maskformer segment --help'.");
        }

        var imagePath = args.Positional[0];
        var tasks = ParseTasks(args.Get("task", "semantic"));
        var outDirectory = args.Get("out", ".");
        var overlay = new OverlayOptions { Alpha = Math.Clamp(args.GetDouble("alpha", 0.6), 0, 1) };
        var minScore = (float)args.GetDouble("min-score", 0.5);
        var timeout = TimeSpan.FromSeconds(args.GetDouble("timeout", 60));
        var bytes = await File.ReadAllBytesAsync(imagePath, cancellationToken).ConfigureAwait(false);

        using var channel = ServerChannel.Open(args);
        var client = new SegmentationService.SegmentationServiceClient(channel);
        var models = await RetryingCall.CallAsync(deadline => client.ListModelsAsync(new ListModelsRequest(), deadline: deadline, cancellationToken: cancellationToken), timeout, cancellationToken).ConfigureAwait(false);
        var request = new SegmentRequest
        {
            Model = args.Get("model", string.Empty),
            Image = new Contracts.V1.Image { Encoded = ByteString.CopyFrom(bytes) },
            Options = new SegmentationOptions { InstanceScoreThreshold = minScore, RleFormat = RleFormat.Both },
        };
        request.Tasks.AddRange(tasks);
        var response = await RetryingCall.CallAsync(deadline => client.SegmentAsync(request, deadline: deadline, cancellationToken: cancellationToken), timeout, cancellationToken).ConfigureAwait(false);
        var model = models.Models.FirstOrDefault(m => m.Name == response.Model && m.Version == response.ModelVersion)
            ?? models.Models.First(m => m.Name == response.Model);
        var labelNames = model.Labels.ToDictionary(l => (int)l.Id, l => l.Name);

        Directory.CreateDirectory(outDirectory);
        var stem = Path.Combine(outDirectory, Path.GetFileNameWithoutExtension(imagePath));
        var outputs = new JsonObject();
        var summary = new JsonObject
        {
            ["image"] = Path.GetFullPath(imagePath),
            ["model"] = response.Model,
            ["model_version"] = response.ModelVersion,
            ["device"] = response.Device,
            ["width"] = response.Width,
            ["height"] = response.Height,
        };
        using var image = DisplayedImage.Load(bytes);
        await output.WriteLineAsync($"{Path.GetFileName(imagePath)}: {response.Width}x{response.Height} by {response.Model} {response.ModelVersion} on {response.Device} in {response.Timings.TotalMs:F1} ms").ConfigureAwait(false);

        if (response.Semantic is { } semantic)
        {
            await File.WriteAllBytesAsync($"{stem}.labels.png", semantic.LabelMap.Data.ToByteArray(), cancellationToken).ConfigureAwait(false);
            await SaveOverlayAsync(image, ResultPictures.Semantic(response, labelNames), ResultPictures.SemanticLegend(response), overlay, $"{stem}.overlay.png", cancellationToken).ConfigureAwait(false);
            outputs["label_map"] = Path.GetFullPath($"{stem}.labels.png");
            outputs["overlay"] = Path.GetFullPath($"{stem}.overlay.png");
            var total = (double)response.Width * response.Height;
            summary["classes"] = new JsonArray([.. semantic.Classes.Select(c => (JsonNode)new JsonObject
            {
                ["id"] = c.LabelId,
                ["name"] = c.LabelName,
                ["is_thing"] = model.Labels.FirstOrDefault(l => l.Id == c.LabelId)?.IsThing ?? false,
                ["area"] = c.Area,
                ["fraction"] = Math.Round(c.Area / total, 6),
            })]);
            await output.WriteLineAsync("  semantic:").ConfigureAwait(false);
            foreach (var c in semantic.Classes)
            {
                await output.WriteLineAsync($"  {c.LabelId,5} {c.LabelName,-16} {c.Area / total * 100,6:F2}%").ConfigureAwait(false);
            }
        }

        if (response.Panoptic is { } panoptic)
        {
            await File.WriteAllBytesAsync($"{stem}.panoptic.png", panoptic.SegmentIdPng.ToByteArray(), cancellationToken).ConfigureAwait(false);
            await SaveOverlayAsync(image, ResultPictures.Panoptic(response, streaming: false), ResultPictures.PanopticLegend(response), overlay, $"{stem}.panoptic.overlay.png", cancellationToken).ConfigureAwait(false);
            outputs["panoptic_png"] = Path.GetFullPath($"{stem}.panoptic.png");
            outputs["panoptic_overlay"] = Path.GetFullPath($"{stem}.panoptic.overlay.png");
            summary["panoptic"] = new JsonArray([.. panoptic.Segments.Select(s => (JsonNode)new JsonObject
            {
                ["id"] = s.Id,
                ["category_id"] = s.CategoryId,
                ["name"] = s.LabelName,
                ["is_thing"] = s.IsThing,
                ["score"] = Math.Round(s.Score, 4),
                ["area"] = s.Area,
                ["bbox"] = Box(s.Bbox),
            })]);
            await output.WriteLineAsync($"  panoptic: {panoptic.Segments.Count} segments").ConfigureAwait(false);
            foreach (var s in panoptic.Segments)
            {
                await output.WriteLineAsync(string.Create(CultureInfo.InvariantCulture, $"  {s.Id,5} {s.LabelName,-16} {(s.IsThing ? "thing" : "stuff")} score {s.Score:F2}, {s.Area} px")).ConfigureAwait(false);
            }
        }

        if (response.Instance is { } instances)
        {
            await SaveOverlayAsync(image, ResultPictures.Instances(response, streaming: false), ResultPictures.InstanceLegend(response), overlay, $"{stem}.instance.overlay.png", cancellationToken).ConfigureAwait(false);
            outputs["instance_overlay"] = Path.GetFullPath($"{stem}.instance.overlay.png");
            summary["instances"] = new JsonArray([.. instances.Instances.Select(i => (JsonNode)new JsonObject
            {
                ["label_id"] = i.LabelId,
                ["name"] = i.LabelName,
                ["score"] = Math.Round(i.Score, 4),
                ["area"] = i.Area,
                ["bbox"] = Box(i.Bbox),
                ["rle"] = new JsonObject { ["size"] = new JsonArray(i.Mask.Height, i.Mask.Width), ["counts"] = i.Mask.Compressed },
            })]);
            await output.WriteLineAsync(string.Create(CultureInfo.InvariantCulture, $"  instance: {instances.Instances.Count} scoring above {minScore:0.##}")).ConfigureAwait(false);
            foreach (var i in instances.Instances)
            {
                await output.WriteLineAsync(string.Create(CultureInfo.InvariantCulture, $"        {i.LabelName,-16} score {i.Score:F2}, {i.Area} px at ({i.Bbox.X}, {i.Bbox.Y})")).ConfigureAwait(false);
            }
        }

        summary["timings_ms"] = JsonNode.Parse(JsonFormatter.Default.Format(response.Timings));
        summary["outputs"] = outputs;
        var json = summary.ToJsonString(new JsonSerializerOptions { WriteIndented = true });
        await File.WriteAllTextAsync($"{stem}.json", json, cancellationToken).ConfigureAwait(false);
        await output.WriteLineAsync($"wrote {string.Join(", ", outputs.Select(o => Path.GetFileName(o.Value!.GetValue<string>())))}, {Path.GetFileName(stem)}.json in {Path.GetFullPath(outDirectory)}").ConfigureAwait(false);
        return 0;
    }

    /// <summary>"semantic,panoptic" into tasks; an unknown name is a usage error.</summary>
    public static IReadOnlyList<SegmentationTask> ParseTasks(string text) =>
        [
            .. text.Split(',', StringSplitOptions.RemoveEmptyEntries | StringSplitOptions.TrimEntries)
                .Select(name => name.ToLowerInvariant() switch
                {
                    "semantic" => SegmentationTask.Semantic,
                    "panoptic" => SegmentationTask.Panoptic,
                    "instance" or "instances" => SegmentationTask.Instance,
                    _ => throw new UsageException($"--task {name}: use semantic, panoptic or instance."),
                })
                .Distinct(),
        ];

    private static async Task SaveOverlayAsync(Image<Rgb24> image, SegmentMap map, IReadOnlyList<LegendEntry> legend, OverlayOptions options, string path, CancellationToken cancellationToken)
    {
        using var overlay = OverlayRenderer.Render(image, map, legend, options);
        await overlay.SaveAsPngAsync(path, cancellationToken).ConfigureAwait(false);
    }

    private static JsonArray Box(BoundingBox box) => new(box.X, box.Y, box.Width, box.Height);
}
