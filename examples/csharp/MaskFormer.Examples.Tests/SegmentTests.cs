using System.Text.Json;
using SixLabors.ImageSharp;
using SixLabors.ImageSharp.PixelFormats;

namespace MaskFormer.Examples.Tests;

public sealed class SegmentTests : IDisposable
{
    private readonly string _out = Directory.CreateTempSubdirectory("maskformer-examples-").FullName;

    [Fact]
    public async Task Segment_HeldoutImage_WritesFilesWhoseLabelMapDecodesToTheModelsLabels()
    {
        var run = await Example.RunAsync(["segment", Example.HeldoutImage, "--out", _out, "--server", Example.Address]);

        Assert.True(run.ExitCode == 0, run.ToString());
        using var image = Image.Load<Rgb24>(Example.HeldoutImage);
        Assert.Contains($"size:    {image.Width}x{image.Height}", run.Output, StringComparison.Ordinal);
        Assert.Contains("classes:", run.Output, StringComparison.Ordinal);
        Assert.Contains("panoptic segments (", run.Output, StringComparison.Ordinal);
        Assert.Contains("timings (ms):", run.Output, StringComparison.Ordinal);
        Assert.Equal(["0000.json", "0000.labels.png", "0000.panoptic.png"], Directory.GetFiles(_out).Select(Path.GetFileName).Order());

        // The label map: the image's size, every pixel a label of the model, its areas those the summary lists.
        using var summary = JsonDocument.Parse(await File.ReadAllTextAsync(Path.Combine(_out, "0000.json")));
        var response = summary.RootElement.GetProperty("response");
        Assert.Equal("tiny-shapes", response.GetProperty("model").GetString());
        using var labels = Image.Load<L8>(Path.Combine(_out, "0000.labels.png"));
        Assert.Equal((image.Width, image.Height), (labels.Width, labels.Height));
        var counts = new Dictionary<int, long>();
        labels.ProcessPixelRows(rows =>
        {
            for (var y = 0; y < rows.Height; y++)
            {
                foreach (var pixel in rows.GetRowSpan(y))
                {
                    counts[pixel.PackedValue] = counts.GetValueOrDefault(pixel.PackedValue) + 1;
                }
            }
        });
        var modelLabels = await ModelLabelsAsync();
        Assert.All(counts.Keys, id => Assert.True(modelLabels.ContainsKey(id), $"label {id} is not one of the model's"));
        var classes = response.GetProperty("semantic").GetProperty("classes").EnumerateArray()
            .ToDictionary(c => c.GetProperty("labelId").GetInt32(), c => (Area: long.Parse(c.GetProperty("area").GetString()!, System.Globalization.CultureInfo.InvariantCulture), Name: c.GetProperty("labelName").GetString()));
        Assert.Equal(counts.OrderBy(c => c.Key), classes.Select(c => KeyValuePair.Create(c.Key, c.Value.Area)).OrderBy(c => c.Key));
        Assert.All(classes, c => Assert.Equal(modelLabels[c.Key], c.Value.Name));
        Assert.True(counts.Count > 1, "the map holds one label only");

        using var panoptic = Image.Load<Rgb24>(Path.Combine(_out, "0000.panoptic.png"));
        Assert.Equal((image.Width, image.Height), (panoptic.Width, panoptic.Height));
        Assert.NotEmpty(response.GetProperty("panoptic").GetProperty("segments").EnumerateArray());
    }

    [Fact]
    public async Task Segment_ModelByName_IsAnsweredByIt()
    {
        var run = await Example.RunAsync(["segment", Example.HeldoutImage, "--out", _out, "--model", "tiny-shapes", "--deadline", "60", "--server", Example.Address]);

        Assert.True(run.ExitCode == 0, run.ToString());
        Assert.StartsWith("model:   tiny-shapes (version ", run.Output.Split('\n')[1], StringComparison.Ordinal);
    }

    [Fact]
    public async Task Segment_ConnectionClosedBeforeTheCall_IsMadeAgainOnANewConnection()
    {
        // The connection check's connection ends (GOAWAY) and the call's new one is closed before the call.
        using var proxy = new ClosingProxy(Example.Address, closedConnections: 1);

        var run = await Example.RunAsync(["segment", Example.HeldoutImage, "--out", _out, "--deadline", "60", "--server", proxy.Address]);

        Assert.True(run.ExitCode == 0, run.ToString());
        Assert.Contains("panoptic segments (", run.Output, StringComparison.Ordinal);
        Assert.Equal(3, proxy.Connections);
    }

    [Fact]
    public async Task Segment_EveryNewConnectionClosedBeforeTheCall_FailsAfterOneMoreTryNotAtTheDeadline()
    {
        using var proxy = new ClosingProxy(Example.Address, closedConnections: int.MaxValue);

        var run = await Example.RunAsync(["segment", Example.HeldoutImage, "--out", _out, "--deadline", "60", "--server", proxy.Address]);

        Assert.True(run.ExitCode == 1, run.ToString());
        Assert.Matches("^error: Segment failed with (INTERNAL|UNAVAILABLE): ", run.Errors);
        Assert.Equal(3, proxy.Connections);
        Assert.True(run.Elapsed < Example.AtOnce, run.ToString());
    }

    [Fact]
    public async Task Segment_UnknownModel_Exits1WithTheServersNotFound()
    {
        var run = await Example.RunAsync(["segment", Example.HeldoutImage, "--out", _out, "--model", "no-such-model", "--server", Example.Address]);

        Assert.True(run.ExitCode == 1, run.ToString());
        Assert.Contains("error: Segment failed with NOT_FOUND: Model 'no-such-model' is not served.", run.Errors, StringComparison.Ordinal);
        Assert.Empty(Directory.GetFiles(_out));
    }

    [Fact]
    public async Task Segment_TinyDeadline_Exits1WithDeadlineExceededAndItsReason()
    {
        var run = await Example.RunAsync(["segment", Example.HeldoutImage, "--out", _out, "--deadline", "0.001", "--server", Example.Address]);

        Assert.True(run.ExitCode == 1, run.ToString());
        // A reason after the code: the client's own deadline says which it was (a server's says its own).
        Assert.Matches(@"^error: Segment failed with DEADLINE_EXCEEDED: \S.*\n$", run.Errors);
    }

    [Fact]
    public async Task Segment_MissingImage_Exits2NamingIt()
    {
        var missing = Path.Combine(_out, "missing.png");

        var run = await Example.RunAsync(["segment", missing, "--server", Example.Address]);

        Assert.True(run.ExitCode == 2, run.ToString());
        Assert.Contains($"error: cannot read {missing}", run.Errors, StringComparison.Ordinal);
    }

    [Fact]
    public async Task Segment_AFolderForTheImage_Exits2SayingItIsAFolder()
    {
        var run = await Example.RunAsync(["segment", Example.Clip, "--server", Example.Address]);

        Assert.True(run.ExitCode == 2, run.ToString());
        Assert.Equal($"error: cannot read {Example.Clip}: it is a folder, not an image (stream takes a folder of frames)\n", run.Errors);
    }

    [Fact]
    public async Task Segment_OutFolderThatCannotBeMade_Exits2NamingItWithoutAStackTrace()
    {
        var file = Path.Combine(_out, "a-file");
        await File.WriteAllTextAsync(file, "");
        var folder = Path.Combine(file, "out");

        var run = await Example.RunAsync(["segment", Example.HeldoutImage, "--out", folder, "--server", Example.Address]);

        Assert.True(run.ExitCode == 2, run.ToString());
        Assert.StartsWith($"error: cannot write into {folder}: ", run.Errors, StringComparison.Ordinal);
        Assert.DoesNotContain("   at ", run.Errors, StringComparison.Ordinal);

        // Refused before the call: nothing of a response printed.
        Assert.Empty(run.Output);
    }

    public void Dispose() => Directory.Delete(_out, recursive: true);

    // id2label of the served model's config.json: the labels a label map may hold.
    private static async Task<Dictionary<int, string>> ModelLabelsAsync()
    {
        using var config = JsonDocument.Parse(await File.ReadAllTextAsync(Path.Combine(Example.Root, "models", "tiny-shapes", "config.json")));
        return config.RootElement.GetProperty("id2label").EnumerateObject()
            .ToDictionary(p => int.Parse(p.Name, System.Globalization.CultureInfo.InvariantCulture), p => p.Value.GetString()!);
    }
}
