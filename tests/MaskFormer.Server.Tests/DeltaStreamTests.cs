using Google.Protobuf;
using Grpc.Core;
using MaskFormer.Contracts.V1;

namespace MaskFormer.Server.Tests;

/// <summary>
/// Delta results (StreamConfig.delta) on the committed model and clip, over real HTTP/2: a client that
/// rebuilds every result from the deltas holds exactly what a stream without deltas returns.
/// </summary>
[Collection(ServerTestGroup.Name)]
public sealed class DeltaStreamTests(ServerFixture server, Xunit.Abstractions.ITestOutputHelper output)
{
    private static readonly string s_clip = Path.Combine(RepositoryPaths.TinyShapes, "clip");
    private static readonly string[] s_frames = [.. Directory.GetFiles(s_clip, "frame_???.png").Order()];
    private static readonly SegmentationTask[] s_allTasks = [SegmentationTask.Semantic, SegmentationTask.Instance, SegmentationTask.Panoptic];

    [Theory]
    [InlineData(LabelMapEncoding.Png)]
    [InlineData(LabelMapEncoding.Raw)]
    public async Task SegmentStream_DeltasOnCommittedClip_RebuiltResultsEqualCompleteOnesByteForByte(LabelMapEncoding encoding)
    {
        // Frame 7 twice in a row: a frame whose maps and masks did not change at all.
        var files = s_frames.Take(8).Append(s_frames[7]).Concat(s_frames.Skip(8)).ToArray();
        var frames = files.Select((file, i) => Frame((ulong)(100 + i), File.ReadAllBytes(file))).ToArray();

        var (completeConfig, deltaConfig) = (Config(delta: null), Config(new DeltaOptions { Enabled = true }));
        completeConfig.Options = new SegmentationOptions { LabelMapEncoding = encoding };
        deltaConfig.Options = new SegmentationOptions { LabelMapEncoding = encoding };
        var complete = await StreamAsync(completeConfig, frames.Select(f => (object)f));
        var deltas = await StreamAsync(deltaConfig, frames.Select(f => (object)f));

        Assert.Equal(frames.Length, complete.Length);
        Assert.Equal(frames.Length, deltas.Length);
        var rebuilder = new DeltaRebuilder();
        for (var i = 0; i < frames.Length; i++)
        {
            Assert.Equal(SegmentStreamResponse.OutcomeOneofCase.Result, deltas[i].OutcomeCase);
            var rebuilt = rebuilder.Rebuild(deltas[i].Result);
            Assert.Equal(WithoutTimings(complete[i].Result).ToByteArray(), WithoutTimings(rebuilt).ToByteArray());
        }

        Assert.NotNull(deltas[0].Result.Semantic.LabelMap);
        Assert.False(deltas[0].Result.Panoptic.SegmentIdPng.IsEmpty);
        Assert.DoesNotContain(deltas[0].Result.Instance.Instances, i => i.MaskUnchanged);
        Assert.True(rebuilder.Deltas >= frames.Length / 2, $"only {rebuilder.Deltas} of {frames.Length} results were deltas");

        var repeated = deltas[8].Result;
        Assert.Empty(repeated.Semantic.LabelMapDelta.Patches);
        Assert.Empty(repeated.Panoptic.SegmentIdDelta.Patches);
        Assert.Equal(deltas[7].FrameId, repeated.Semantic.LabelMapDelta.BaseFrameId);
        Assert.Contains(repeated.Instance.Instances, i => i.MaskUnchanged);

        var (full, delta) = (complete.Sum(r => r.CalculateSize()), deltas.Sum(r => r.CalculateSize()));
        output.WriteLine($"{frames.Length} frames, semantic ({encoding}) + instance + panoptic: complete {full} bytes, deltas {delta} bytes ({100.0 * (full - delta) / full:F1} % saved)");
        Assert.True(delta < full);
    }

    [Fact]
    public async Task SegmentStream_DeltasWithErrorsSkipsAndANewConfig_EachDeltaFollowsTheLastResultSent()
    {
        var unary = new Dictionary<ulong, (ushort[] Semantic, ushort[] Panoptic)>();
        var messages = new List<object>();
        for (var i = 0; i < s_frames.Length; i++)
        {
            var id = (ulong)(i + 1);
            var bytes = File.ReadAllBytes(s_frames[i]);
            if (i == 4)
            {
                messages.Add(Frame(id, [1, 2, 3, 4]));
                continue;
            }

            if (i == 10)
            {
                messages.Add(Config(new DeltaOptions { Enabled = true, KeyframeInterval = 3 }, OverloadPolicy.LatestOnly, [SegmentationTask.Semantic, SegmentationTask.Panoptic]));
            }

            messages.Add(Frame(id, bytes));
            var answer = await server.Client.SegmentAsync(new SegmentRequest { Image = new Contracts.V1.Image { Encoded = ByteString.CopyFrom(bytes) }, Tasks = { SegmentationTask.Semantic, SegmentationTask.Panoptic } });
            unary[id] = (DeltaRebuilder.DecodeLabels(answer.Semantic.LabelMap.Data, answer.Semantic.LabelMap.Encoding, 8).Pixels, DeltaRebuilder.DecodeSegmentIds(answer.Panoptic.SegmentIdPng).Pixels);
        }

        // QUEUE until the config (the bad frame is answered, never skipped), LATEST_ONLY after it (frames may be skipped).
        var responses = await StreamAsync(Config(new DeltaOptions { Enabled = true }, OverloadPolicy.Queue, [SegmentationTask.Semantic, SegmentationTask.Panoptic]), messages);

        Assert.Equal(s_frames.Length, responses.Length);
        Assert.Equal(SegmentStreamResponse.OutcomeOneofCase.Error, responses[4].OutcomeCase);
        var rebuilder = new DeltaRebuilder();
        var (previous, first, sinceConfig) = ((ulong?)null, true, -1);
        foreach (var response in responses.Where(r => r.OutcomeCase == SegmentStreamResponse.OutcomeOneofCase.Result))
        {
            var result = response.Result;
            if (response.FrameId > 10)
            {
                sinceConfig++;
            }

            if (first || sinceConfig % 3 == 0)
            {
                // The first result, the first after a config and every third after it (keyframe_interval 3) are complete.
                Assert.NotNull(result.Semantic.LabelMap);
                Assert.Null(result.Panoptic.SegmentIdDelta);
            }

            foreach (var delta in new[] { result.Semantic.LabelMapDelta, result.Panoptic.SegmentIdDelta }.OfType<MapDelta>())
            {
                Assert.Equal(previous, delta.BaseFrameId);
            }

            var rebuilt = rebuilder.Rebuild(result);
            Assert.Equal(unary[response.FrameId].Semantic, DeltaRebuilder.DecodeLabels(rebuilt.Semantic.LabelMap.Data, LabelMapEncoding.Png, 8).Pixels);
            Assert.Equal(unary[response.FrameId].Panoptic, DeltaRebuilder.DecodeSegmentIds(rebuilt.Panoptic.SegmentIdPng).Pixels);
            (previous, first) = (response.FrameId, false);
        }

        output.WriteLine($"results {responses.Count(r => r.Result is not null)}, skipped {responses.Count(r => r.Skipped is not null)}, deltas {rebuilder.Deltas}");
        Assert.True(rebuilder.Deltas > 0);
    }

    private static StreamConfig Config(DeltaOptions? delta, OverloadPolicy policy = OverloadPolicy.Queue, SegmentationTask[]? tasks = null) =>
        new() { Tasks = { tasks ?? s_allTasks }, MaxInFlight = 4, OverloadPolicy = policy, Delta = delta };

    private static StreamFrame Frame(ulong id, byte[] encoded) => new() { FrameId = id, Image = new Contracts.V1.Image { Encoded = ByteString.CopyFrom(encoded) } };

    private static SegmentResponse WithoutTimings(SegmentResponse response)
    {
        var copy = response.Clone();
        copy.Timings = null;
        return copy;
    }

    private async Task<SegmentStreamResponse[]> StreamAsync(StreamConfig config, IEnumerable<object> messages)
    {
        using var call = server.Client.SegmentStream(deadline: DateTime.UtcNow.AddMinutes(3));
        var reading = call.ResponseStream.ReadAllAsync().ToArrayAsync().AsTask();
        await call.RequestStream.WriteAsync(new SegmentStreamRequest { Config = config });
        foreach (var message in messages)
        {
            await call.RequestStream.WriteAsync(message is StreamConfig next ? new SegmentStreamRequest { Config = next } : new SegmentStreamRequest { Frame = (StreamFrame)message });
        }

        await call.RequestStream.CompleteAsync();
        return await reading;
    }
}
