using MaskFormer.Engine.Decoding;
using MaskFormer.Engine.Hosting;
using MaskFormer.Engine.Models;
using MaskFormer.Engine.Sessions;
using MaskFormer.Testing;
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

    [Fact]
    public async Task WarmUp_LongQueueDelay_ItsRequestsDoNotWaitForBatchesThatNothingElseWouldFill()
    {
        // On a clock that stands still a queued request's wait for its batch never ends, so the warm-up
        // finishes only if its requests do not wait at all (on the system clock each waited the whole
        // delay: MaxQueueDelay 4 s held a server NOT_SERVING for a minute).
        await using var engine = new SegmentationEngine(
            Options.Create(new ModelRepositoryOptions { Path = RepositoryPaths.Models }),
            Options.Create(new InferenceOptions { MaxBatchSize = 8, MaxQueueDelay = TimeSpan.FromSeconds(10) }),
            new ImageDecoder(Options.Create(new ImageDecoderOptions())),
            new StoppedClock(),
            NullLogger<SegmentationEngine>.Instance);
        engine.Load();

        // The minute only keeps this test from hanging on a warm-up that waits.
        await engine.WarmUpAsync(CancellationToken.None).WaitAsync(TimeSpan.FromMinutes(1));

        Assert.True(engine.IsReady);
    }

    [Theory]
    [InlineData(null, new[] { 1, 2, 3, 4 })]
    [InlineData(new[] { 1, 4 }, new[] { 1, 4 })]
    [InlineData(new[] { 4 }, new[] { 4 })]
    public async Task WarmUp_EachSession_RunsEveryBatchSizeOrOncePerPaddedSizeFirst(int[]? paddedBatchSizes, int[] expected)
    {
        var sessions = new FaultInjectingSessionFactory(paddedBatchSizes);
        await using (await EngineFactory.StartAsync(new InferenceOptions { MaxBatchSize = 4 }, sessions: sessions))
        {
        }

        // The model's runs come first, then the request path's (which may batch however the queue falls).
        var session = Assert.Single(sessions.Created);
        Assert.Equal(paddedBatchSizes ?? [], session.BatchSizes);
        Assert.Equal(expected, session.RunSizes.Take(expected.Length));
        Assert.True(session.RunSizes.Count > expected.Length, "the request path's warm-up ran the session too");
    }

    [Fact]
    public async Task WarmUp_FirstRunHangs_TerminatedAtTheRunTimeoutAndTheEngineStaysNotReady()
    {
        // A first run that never returns by itself (ONNX Runtime's Terminate ends it, as it does a real run).
        var sessions = new FaultInjectingSessionFactory { NextSessionFault = SessionFault.Hang };
        var engine = new SegmentationEngine(
            Options.Create(new ModelRepositoryOptions { Path = RepositoryPaths.Models }),
            Options.Create(new InferenceOptions { SessionRunTimeout = TimeSpan.FromMilliseconds(200) }),
            new ImageDecoder(Options.Create(new ImageDecoderOptions())),
            TimeProvider.System,
            NullLogger<SegmentationEngine>.Instance)
        {
            ModelSessionFactory = sessions,
        };
        engine.Load();

        // The minute is only a guard against this test hanging; the run limit is what ends the warm-up.
        var error = await Assert.ThrowsAsync<TimeoutException>(() => engine.WarmUpAsync(CancellationToken.None).WaitAsync(TimeSpan.FromMinutes(1)));

        Assert.Contains("MaskFormer:Inference:SessionRunTimeout", error.Message, StringComparison.Ordinal);
        Assert.True(Assert.Single(sessions.Created).Terminated);
        Assert.False(engine.IsReady);

        // A call is told the server will not serve, without a delay to retry after: not "still loading".
        var refused = await Assert.ThrowsAsync<SegmentationException>(() => engine.SegmentAsync(new SegmentationRequest { Image = EngineFactory.HeldOutImage(0), Tasks = SegmentationTasks.Semantic }, CancellationToken.None));
        Assert.Equal(SegmentationErrorKind.Unavailable, refused.Kind);
        Assert.Contains("warm-up failed", refused.Message, StringComparison.Ordinal);
        Assert.Contains("SessionRunTimeout", refused.Message, StringComparison.Ordinal);
        Assert.Null(refused.RetryAfter);
        await engine.DisposeAsync().AsTask().WaitAsync(TimeSpan.FromMinutes(1));
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

    /// <summary>A clock whose time does not pass (timers still fire on the system's).</summary>
    private sealed class StoppedClock : TimeProvider
    {
        private readonly DateTimeOffset _now = DateTimeOffset.UtcNow;

        public override DateTimeOffset GetUtcNow() => _now;

        public override long GetTimestamp() => 0;
    }
}
