using System.Globalization;
using Google.Protobuf;
using Grpc.Core;
using MaskFormer.Contracts.V1;

namespace MaskFormer.Examples;

/// <summary>
/// <c>segment IMAGE</c>: one unary Segment call (semantic + panoptic unless --tasks says otherwise), retried
/// when the server says to (<see cref="RetryingCall"/>), printed, and written into --out (<see cref="ResultFiles"/>).
/// </summary>
internal static class SegmentCommand
{
    public const string Usage = """
        usage: MaskFormer.Examples segment IMAGE [--out DIR] [--tasks LIST] [--model NAME] [--deadline SECONDS]
                                               [--server ADDRESS] [--connect-timeout SECONDS] [--wait-for-server]
          --out DIR            where IMAGE.labels.png, IMAGE.panoptic.png and IMAGE.json go (default .)
          --tasks LIST         semantic, instance, panoptic, comma-separated (default semantic,panoptic)
          --model NAME         the model (default: the server's default model)
          --deadline SECONDS   the call's deadline, every retried attempt included (default 30)
        """;

    private static readonly string[] s_options = ["out", "tasks", "model", "deadline", .. Connection.Options];

    public static async Task<int> RunAsync(IEnumerable<string> args, CancellationToken cancellationToken)
    {
        var line = CommandLine.Parse(args, s_options, Connection.Flags);
        if (line.Positional.Count != 1)
        {
            throw new UsageException($"give one IMAGE (got {line.Positional.Count})");
        }

        var imagePath = line.Positional[0];
        var tasks = Tasks.Parse(line.Get("tasks", "semantic,panoptic"));
        var deadline = TimeSpan.FromSeconds(line.Seconds("deadline", 30));
        var connection = Connection.From(line);
        byte[] image;
        try
        {
            image = await File.ReadAllBytesAsync(imagePath, cancellationToken);
        }
        catch (Exception ex) when (ex is IOException or UnauthorizedAccessException)
        {
            // .NET reports reading a folder as "Access to the path is denied", which sends the user after permissions.
            var reason = Directory.Exists(imagePath) ? "it is a folder, not an image (stream takes a folder of frames)" : ex.Message;
            await Console.Error.WriteLineAsync($"error: cannot read {imagePath}: {reason}");
            return 2;
        }

        var folder = line.Get("out", ".");
        ResultFiles.CreateFolder(folder);
        using var channel = await connection.OpenAsync(cancellationToken);
        var client = new SegmentationService.SegmentationServiceClient(channel);
        var request = new SegmentRequest { Image = new Image { Encoded = ByteString.CopyFrom(image) }, Model = line.Get("model", ""), FrameId = 1 };
        request.Tasks.AddRange(tasks);
        SegmentResponse response;
        try
        {
            response = await RetryingCall.CallAsync(d => client.SegmentAsync(request, deadline: d, cancellationToken: cancellationToken), deadline, cancellationToken);
        }
        catch (RpcException ex) when (!cancellationToken.IsCancellationRequested)
        {
            // .NET's client gives a deadline it enforced itself no detail: say which deadline ran out.
            var detail = ex.StatusCode == StatusCode.DeadlineExceeded && ex.Status.Detail.Length == 0
                ? string.Create(CultureInfo.InvariantCulture, $"no answer within the deadline of {deadline.TotalSeconds:0.###} s (--deadline)")
                : ex.Status.Detail;
            await Console.Error.WriteLineAsync($"error: Segment failed with {Names.Code(ex.StatusCode)}: {detail}");
            return 1;
        }

        Console.WriteLine($"image:   {imagePath}");
        Print(response, Console.Out);
        var files = await ResultFiles.WriteAsync(folder, imagePath, response, cancellationToken);
        Console.WriteLine($"wrote {string.Join(", ", files)} in {Path.GetFullPath(folder)}");
        return 0;
    }

    /// <summary>A response as the Python example prints it.</summary>
    public static void Print(SegmentResponse r, TextWriter output)
    {
        var o = CultureInfo.InvariantCulture;
        output.WriteLine($"model:   {r.Model} (version {(r.ModelVersion is { Length: > 0 } v ? v : "-")}) on {(r.Device is { Length: > 0 } d ? d : "?")}");
        output.WriteLine($"size:    {r.Width}x{r.Height}");
        if (r.Semantic is { } semantic)
        {
            var map = semantic.LabelMap;
            output.WriteLine($"semantic label map: {map.Width}x{map.Height}, {map.BitsPerPixel}-bit, {Names.Of(map.Encoding)}, {map.Data.Length} bytes");
            output.WriteLine("classes:");
            var total = Math.Max(1.0, (double)r.Width * r.Height);
            foreach (var c in semantic.Classes)
            {
                output.WriteLine(string.Create(o, $"  {c.LabelId,3} {c.LabelName,-16} {c.Area,8} px  {100 * c.Area / total,5:F1}%"));
            }
        }

        if (r.Panoptic is { } panoptic)
        {
            output.WriteLine($"panoptic segments ({panoptic.Segments.Count}):");
            foreach (var s in panoptic.Segments)
            {
                var b = s.Bbox ?? new BoundingBox();
                output.WriteLine(string.Create(o, $"  id {s.Id,3} {s.LabelName,-16} {(s.IsThing ? "thing" : "stuff")}  score {s.Score:F3}  area {s.Area,6}  bbox [{b.X}, {b.Y}, {b.Width}, {b.Height}]"));
            }
        }

        if (r.Instance is { } instance)
        {
            output.WriteLine($"instances ({instance.Instances.Count}):");
            foreach (var i in instance.Instances)
            {
                var b = i.Bbox ?? new BoundingBox();
                output.WriteLine(string.Create(o, $"  {i.LabelName,-16} score {i.Score:F3}  area {i.Area,6}  bbox [{b.X}, {b.Y}, {b.Width}, {b.Height}]"));
            }
        }

        var t = r.Timings ?? new StageTimings();
        output.WriteLine(string.Create(o, $"timings (ms): decode {t.DecodeMs:F2}, preprocess {t.PreprocessMs:F2}, queue {t.QueueMs:F2}, inference {t.InferenceMs:F2} (batch {t.BatchSize}), postprocess {t.PostprocessMs:F2}, encode {t.EncodeMs:F2}, total {t.TotalMs:F2}"));
    }
}
