using System.Diagnostics;
using System.Globalization;
using Google.Protobuf;
using MaskFormer.Engine;
using MaskFormer.Engine.Decoding;
using MaskFormer.Engine.Encoding;
using MaskFormer.Engine.Models;
using MaskFormer.Engine.Sessions;
using MaskFormer.Server.Mapping;
using Microsoft.Extensions.Logging.Abstractions;
using Microsoft.Extensions.Options;

namespace MaskFormer.Benchmarks.Report;

/// <summary>
/// <c>hires [--rounds R] [--repeats N] [--realistic] [--label TEXT]</c>: what a 1920x1080 image costs around
/// the model against a 512x512 one, in process, one caller, all three tasks: decoding and pre-processing,
/// post-processing (the engine's stage timer), building the response (the server's <c>encode</c> stage:
/// <c>ResponseMapper.ToResponse</c>), protobuf serialisation, and where the encoding goes (label PNG,
/// panoptic PNG, instance RLE). Times are CPU time of this process (every thread: parallel work counts
/// whole) and medians over rounds; sizes alternate within a round. Meant to be run from two builds
/// (before and after a change) in alternation.
/// </summary>
internal static class HighResolutionReport
{
    public static async Task<int> RunAsync(string[] args)
    {
        var (rounds, repeats, realistic, label) = (3, 5, false, "this tree");
        for (var i = 0; i < args.Length; i++)
        {
            switch (args[i])
            {
                case "--rounds":
                    rounds = int.Parse(args[++i], CultureInfo.InvariantCulture);
                    break;
                case "--repeats":
                    repeats = int.Parse(args[++i], CultureInfo.InvariantCulture);
                    break;
                case "--realistic":
                    realistic = true;
                    break;
                case "--label":
                    label = args[++i];
                    break;
                default:
                    throw new ArgumentException($"unknown argument '{args[i]}'; usage: hires [--rounds R] [--repeats N] [--realistic] [--label TEXT]");
            }
        }

        var (name, repository) = realistic
            ? (BenchmarkInputs.Realistic, Path.GetDirectoryName(await BenchmarkInputs.EnsureRealisticAsync(Console.Out, CancellationToken.None))!)
            : (BenchmarkInputs.Tiny, RepositoryPaths.Models);
        await using var engine = new SegmentationEngine(
            Options.Create(new ModelRepositoryOptions { Path = repository, DefaultModel = name }),
            Options.Create(new InferenceOptions { MaxBatchSize = 1, WarmUp = false }),
            new ImageDecoder(Options.Create(new ImageDecoderOptions())),
            TimeProvider.System,
            NullLogger<SegmentationEngine>.Instance);
        engine.Load();
        await engine.WarmUpAsync(CancellationToken.None);

        var images = new (string Size, byte[] Bytes)[] { ("512x512", BenchmarkInputs.Scaled(512, 512)), ("1920x1080", BenchmarkInputs.Scaled(1920, 1080)) };
        var samples = images.ToDictionary(i => i.Size, _ => new List<Sample>());
        foreach (var (_, bytes) in images)
        {
            for (var i = 0; i < 2; i++)
            {
                await MeasureAsync(engine, name, bytes);
            }
        }

        Console.WriteLine($"# hires, {name}, {label}, load average before {MachineInfo.LoadAverage()}");
        for (var round = 0; round < rounds; round++)
        {
            foreach (var (size, bytes) in round % 2 == 0 ? images : images.Reverse())
            {
                for (var r = 0; r < repeats; r++)
                {
                    samples[size].Add(await MeasureAsync(engine, name, bytes));
                }
            }
        }

        Console.WriteLine($"load average after {MachineInfo.LoadAverage()}; CPU ms per image (all threads), median of {rounds * repeats}; post wall = the engine's stage timer");
        Console.WriteLine("| model | tree | size | decode + pre-process CPU | post wall | response (encode) CPU | encode wall | serialise CPU | semantic PNG | panoptic PNG | instance RLE | instances | response KiB |");
        Console.WriteLine("| --- | --- | --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: |");
        var medians = new Dictionary<string, Sample>();
        foreach (var (size, _) in images)
        {
            var list = samples[size];
            var m = new Sample(
                Median(list, s => s.DecodeCpu),
                Median(list, s => s.PostWall),
                Median(list, s => s.EncodeCpu),
                Median(list, s => s.EncodeWall),
                Median(list, s => s.SerializeCpu),
                Median(list, s => s.SemanticPng),
                Median(list, s => s.PanopticPng),
                Median(list, s => s.InstanceRle),
                list[0].Instances,
                list[0].ResponseBytes);
            medians[size] = m;
            Console.WriteLine(string.Create(CultureInfo.InvariantCulture, $"| {name} | {label} | {size} | {m.DecodeCpu:F2} | {m.PostWall:F2} | {m.EncodeCpu:F2} | {m.EncodeWall:F2} | {m.SerializeCpu:F2} | {m.SemanticPng:F2} | {m.PanopticPng:F2} | {m.InstanceRle:F2} | {m.Instances} | {m.ResponseBytes / 1024.0:F1} |"));
        }

        var (small, large) = (medians["512x512"], medians["1920x1080"]);
        Console.WriteLine(string.Create(
            CultureInfo.InvariantCulture,
            $"1080p/512: encode CPU {large.EncodeCpu / small.EncodeCpu:F2}x, encode+serialise CPU {(large.EncodeCpu + large.SerializeCpu) / (small.EncodeCpu + small.SerializeCpu):F2}x, post wall + encode wall {(large.PostWall + large.EncodeWall) / (small.PostWall + small.EncodeWall):F2}x; encode wall / post wall: 512 {100 * small.EncodeWall / small.PostWall:F1}%, 1080 {100 * large.EncodeWall / large.PostWall:F1}%"));
        return 0;
    }

    private static readonly ImageDecoder s_decoder = new(Options.Create(new ImageDecoderOptions()));

    private static async Task<Sample> MeasureAsync(SegmentationEngine engine, string model, byte[] bytes)
    {
        var decoder = s_decoder;
        var served = engine.Models[0];
        var cpu = Cpu();
        double decodeOnly;
        using (var image = decoder.Decode(bytes))
        {
            decodeOnly = Cpu() - cpu;
            served.Preprocessor.Process(image).Dispose();
        }

        var decodeCpu = Cpu() - cpu;
        var request = new SegmentationRequest
        {
            Model = model,
            Image = ImageSource.Encoded(bytes),
            Tasks = SegmentationTasks.Semantic | SegmentationTasks.Instance | SegmentationTasks.Panoptic,
        };
        using var result = await engine.SegmentAsync(request, CancellationToken.None);
        cpu = Cpu();
        var started = Stopwatch.GetTimestamp();
        var response = ResponseMapper.ToResponse(result, 1, null, null, TimeProvider.System, started);
        var encodeWall = Stopwatch.GetElapsedTime(started).TotalMilliseconds;
        var encodeCpu = Cpu() - cpu;
        cpu = Cpu();
        var wire = response.ToByteArray();
        var serializeCpu = Cpu() - cpu;

        // Where the encoding goes, each part alone on this thread.
        var bits = LabelMapPngEncoder.BitsPerPixel(served.Labels.Count);
        var semantic = Time(() => LabelMapPngEncoder.EncodePng(result.Semantic!, bits));
        var panoptic = Time(() => PanopticPngEncoder.Encode(result.Panoptic!.SegmentIds));
        var counts = new List<uint[]>();
        var rle = Time(() =>
        {
            foreach (var instance in result.Instances!)
            {
                counts.Add(CocoRle.Encode(instance));
            }
        });
        var compress = Time(() =>
        {
            foreach (var c in counts)
            {
                CocoRle.Compress(c);
            }
        });
        var boxArea = result.Instances!.Sum(i => (double)i.Box.Width * i.Box.Height) / (result.Width * (double)result.Height);
        Console.Error.WriteLine(string.Create(CultureInfo.InvariantCulture, $"{result.Width}x{result.Height}: decode {decodeOnly:F2} ms, rle counts {rle:F2} ms, compress {compress:F2} ms, runs {counts.Sum(c => c.Length)}, boxes cover {boxArea:F2} images"));
        return new Sample(decodeCpu, result.Timings.Postprocess.TotalMilliseconds, encodeCpu, encodeWall, serializeCpu, semantic, panoptic, rle, result.Instances!.Count, wire.Length);
    }

    private static double Time(Action action)
    {
        var cpu = Cpu();
        action();
        return Cpu() - cpu;
    }

    private static double Cpu() => ProcessCpu.Milliseconds();

    private static double Median(List<Sample> samples, Func<Sample, double> value)
    {
        var values = samples.Select(value).Order().ToArray();
        return values[values.Length / 2];
    }

    private sealed record Sample(double DecodeCpu, double PostWall, double EncodeCpu, double EncodeWall, double SerializeCpu, double SemanticPng, double PanopticPng, double InstanceRle, int Instances, int ResponseBytes);
}
