using MaskFormer.Engine.Decoding;
using MaskFormer.Engine.Hosting;
using MaskFormer.Engine.Models;
using MaskFormer.Engine.Sessions;
using Microsoft.Extensions.Logging.Abstractions;
using Microsoft.Extensions.Options;

namespace MaskFormer.Engine.Tests.Hosting;

public sealed class WarmUpTests
{
    [Fact]
    public async Task WarmUp_BeforeReady_RunsEveryDecoderTaskAndConventionThroughTheHostsResultPath()
    {
        var recorder = new RecordingWarmUp();
        await using var engine = new SegmentationEngine(
            Options.Create(new ModelRepositoryOptions { Path = RepositoryPaths.Models }),
            Options.Create(new InferenceOptions()),
            new ImageDecoder(Options.Create(new ImageDecoderOptions())),
            TimeProvider.System,
            NullLogger<SegmentationEngine>.Instance,
            [recorder]);
        recorder.IsReady = () => engine.IsReady;
        engine.Load();

        await engine.WarmUpAsync(CancellationToken.None);

        // 7 encoded formats and 4 raw layouts on a small picture, then 3 post-processing settings on a
        // larger one, every one with all three tasks; the host saw each result before the engine was ready.
        Assert.True(engine.IsReady);
        Assert.Equal(7 + 4 + 3, recorder.Results.Count);
        Assert.All(recorder.Results, r => Assert.Equal((true, true, true, false), (r.Semantic, r.Instance, r.Panoptic, r.ReadyWhenSeen)));
        Assert.Contains(recorder.Results, r => r.Instances > 0 && r.PanopticSegments > 0);
        Assert.Equal(2, recorder.Results.Select(r => r.Width).Distinct().Count());
    }

    private sealed record Seen(bool Semantic, bool Instance, bool Panoptic, int Instances, int PanopticSegments, int Width, bool ReadyWhenSeen);

    private sealed class RecordingWarmUp : IResultWarmUp
    {
        public List<Seen> Results { get; } = [];

        public Func<bool> IsReady { get; set; } = () => false;

        public void WarmUp(SegmentationResult result) => Results.Add(new Seen(
            result.Semantic is not null,
            result.Instances is not null,
            result.Panoptic is not null,
            result.Instances?.Count ?? 0,
            result.Panoptic?.Segments.Count ?? 0,
            result.Width,
            IsReady()));
    }
}
