using Google.Protobuf;
using Grpc.Core;
using MaskFormer.Contracts.V1;

namespace MaskFormer.Server.Tests;

/// <summary>
/// A stream's latency contract and status messages (issue 11 item 1), over real HTTP/2 with the
/// committed model. Nothing here asserts a duration: what is checked holds however slow the machine.
/// </summary>
[Collection(ServerTestGroup.Name)]
public sealed class LatencyContractTests(ServerFixture server)
{
    [Fact]
    public async Task SegmentStream_StatusRequested_EachStatusCountsTheAnswersBeforeIt()
    {
        // LATEST_ONLY skips some frames, one frame is bad (unless superseded): every kind of answer is counted.
        var frames = Enumerable.Range(0, 30).Select(i => i == 7
            ? new StreamFrame { FrameId = (ulong)i, Image = new Contracts.V1.Image { Encoded = ByteString.CopyFromUtf8("not an image") } }
            : Frame((ulong)i, HeldOutSet.ImageFiles[i % 6])).ToArray();
        var config = new StreamConfig
        {
            MaxInFlight = 2,
            OverloadPolicy = OverloadPolicy.LatestOnly,
            Latency = new LatencyContract { TargetFps = 30 },
            StatusIntervalMs = 1,
        };

        var messages = await StreamAsync(server.Client, config, frames);

        var answers = messages.Where(m => m.OutcomeCase != SegmentStreamResponse.OutcomeOneofCase.Status).ToArray();
        Assert.Equal(frames.Select(f => f.FrameId), answers.Select(a => a.FrameId));
        var statuses = 0;
        ulong results = 0, failed = 0, skipped = 0;
        foreach (var message in messages)
        {
            switch (message.OutcomeCase)
            {
                case SegmentStreamResponse.OutcomeOneofCase.Result: results++; break;
                case SegmentStreamResponse.OutcomeOneofCase.Error: failed++; break;
                case SegmentStreamResponse.OutcomeOneofCase.Skipped: skipped++; break;
                default:
                    var status = message.Status;
                    statuses++;
                    Assert.Equal(0ul, message.FrameId);
                    Assert.Equal((results, failed, skipped), (status.FramesAnswered, status.FramesFailed, status.FramesSkipped));
                    Assert.Equal(status.FramesReceived, status.FramesAnswered + status.FramesFailed + status.FramesSkipped + status.FramesPending);
                    Assert.Equal(status.FramesSkipped, (ulong)status.Skips.Sum(s => (long)s.Count));
                    Assert.InRange(status.MaxInFlight, 1u, 2u);
                    Assert.True(status.ResultAge.P50Ms <= status.ResultAge.P90Ms && status.ResultAge.P90Ms <= status.ResultAge.P99Ms && status.ResultAge.P99Ms <= status.ResultAge.MaxMs, status.ToString());
                    Assert.Equal(1f, status.OutputScale);
                    break;
            }
        }

        var final = messages[^1].Status;
        Assert.NotNull(final);
        Assert.True(final.Final);
        Assert.Equal(1, messages.Count(m => m.Status?.Final == true));
        Assert.True(statuses >= 2, $"{statuses} status messages");
        Assert.Equal(30ul, final.FramesReceived);
        Assert.Equal(0ul, final.FramesPending);
        Assert.Equal(answers.Count(a => a.OutcomeCase == SegmentStreamResponse.OutcomeOneofCase.Error), (int)final.FramesFailed);
        Assert.Equal(30ul, final.FramesAnswered + final.FramesFailed + final.FramesSkipped);
        Assert.All(final.Skips, s => Assert.Equal(SkipReason.Superseded, s.Reason));
        Assert.True(final.ServiceTimeMs > 0 && final.SustainableFps > 0 && final.ResultAge.MaxMs > 0, final.ToString());
    }

    [Fact]
    public async Task SegmentStream_NoStatusAsked_OnlyAnswers()
    {
        var frames = Enumerable.Range(0, 4).Select(i => Frame((ulong)i, HeldOutSet.ImageFiles[i])).ToArray();

        var messages = await StreamAsync(server.Client, new StreamConfig { MaxInFlight = 2 }, frames);

        Assert.Equal([0ul, 1ul, 2ul, 3ul], messages.Select(m => m.FrameId));
        Assert.DoesNotContain(messages, m => m.OutcomeCase == SegmentStreamResponse.OutcomeOneofCase.Status);
    }

    [Fact]
    public async Task SegmentStream_MaxAge_FramesTooOldToStartAreSkippedWithTheReason()
    {
        // One frame in flight and 40 sent at once: every frame but the first waits at least one model run,
        // far longer than 1 ms, so frames are too old when their turn comes, unless one is the newest with
        // nothing in flight (the stream never idles holding a frame).
        var frames = Enumerable.Range(0, 40).Select(i => Frame((ulong)i, HeldOutSet.ImageFiles[i % 6])).ToArray();
        var config = new StreamConfig { MaxInFlight = 1, OverloadPolicy = OverloadPolicy.Queue, Latency = new LatencyContract { MaxAgeMs = 1 } };

        var messages = await StreamAsync(server.Client, config, frames);

        var answers = messages.Where(m => m.OutcomeCase != SegmentStreamResponse.OutcomeOneofCase.Status).ToArray();
        Assert.Equal(frames.Select(f => f.FrameId), answers.Select(a => a.FrameId));
        var skipped = answers.Where(a => a.OutcomeCase == SegmentStreamResponse.OutcomeOneofCase.Skipped).ToArray();
        Assert.NotEmpty(skipped);
        Assert.All(skipped, s => Assert.Equal(SkipReason.TooOld, s.Skipped.Reason));
        Assert.Equal(SegmentStreamResponse.OutcomeOneofCase.Result, answers[0].OutcomeCase);
        Assert.Equal(SegmentStreamResponse.OutcomeOneofCase.Result, answers[^1].OutcomeCase);
        var final = messages[^1].Status;
        Assert.True(final.Final);
        Assert.Equal((ulong)skipped.Length, final.Skips.Single(s => s.Reason == SkipReason.TooOld).Count);
        Assert.Equal((ulong)(answers.Length - skipped.Length), final.FramesAnswered);
    }

    [Fact]
    public async Task SegmentStream_TargetAboveWhatOneFrameInFlightSustains_OutputScaleStepsDown()
    {
        // 1000 fps with one frame in flight needs a service time under 1 ms, which no machine gives for a
        // decode, a model run and post-processing: the server lowers the output size, as allowed.
        var frames = Enumerable.Range(0, 40).Select(i => Frame((ulong)i, HeldOutSet.ImageFiles[0])).ToArray();
        var config = new StreamConfig { MaxInFlight = 1, Latency = new LatencyContract { TargetFps = 1000, AllowDownscale = true } };

        var messages = await StreamAsync(server.Client, config, frames);

        var results = messages.Where(m => m.OutcomeCase == SegmentStreamResponse.OutcomeOneofCase.Result).Select(m => m.Result).ToArray();
        Assert.Equal(40, results.Length);
        Assert.True(messages[^1].Status.OutputScale < 1f, messages[^1].Status.ToString());
        Assert.True(results[^1].Width < results[0].Width && results[^1].Height < results[0].Height, $"{results[0].Width}x{results[0].Height} then {results[^1].Width}x{results[^1].Height}");
    }

    [Fact]
    public async Task SegmentStream_EmptyOutputSize_DownscalesAsWhenUnset()
    {
        // An OutputSize with no member set means the image's own size, as leaving it unset does.
        var frames = Enumerable.Range(0, 40).Select(i => Frame((ulong)i, HeldOutSet.ImageFiles[0])).ToArray();
        var config = new StreamConfig { MaxInFlight = 1, Options = new SegmentationOptions { OutputSize = new Contracts.V1.OutputSize() }, Latency = new LatencyContract { TargetFps = 1000, AllowDownscale = true } };

        var messages = await StreamAsync(server.Client, config, frames);

        var results = messages.Where(m => m.OutcomeCase == SegmentStreamResponse.OutcomeOneofCase.Result).Select(m => m.Result).ToArray();
        Assert.Equal(40, results.Length);
        Assert.True(messages[^1].Status.OutputScale < 1f, messages[^1].Status.ToString());
        Assert.True(results[^1].Width < results[0].Width, $"{results[0].Width}x{results[0].Height} then {results[^1].Width}x{results[^1].Height}");
    }

    [Fact]
    public async Task SegmentStream_ExactOutputSize_NeverDownscaled_StatusSaysScaleOne()
    {
        var frames = Enumerable.Range(0, 40).Select(i => Frame((ulong)i, HeldOutSet.ImageFiles[0])).ToArray();
        var exact = new Contracts.V1.OutputSize { Exact = new OutputDimensions { Width = 100, Height = 80 } };
        var config = new StreamConfig { MaxInFlight = 1, StatusIntervalMs = 20, Options = new SegmentationOptions { OutputSize = exact }, Latency = new LatencyContract { TargetFps = 1000, AllowDownscale = true } };

        var messages = await StreamAsync(server.Client, config, frames);

        var results = messages.Where(m => m.OutcomeCase == SegmentStreamResponse.OutcomeOneofCase.Result).Select(m => m.Result).ToArray();
        Assert.Equal(40, results.Length);
        Assert.All(results, r => Assert.Equal((100u, 80u), (r.Width, r.Height)));
        var statuses = messages.Where(m => m.OutcomeCase == SegmentStreamResponse.OutcomeOneofCase.Status).ToArray();
        Assert.NotEmpty(statuses);
        Assert.All(statuses, m => Assert.Equal(1f, m.Status.OutputScale));
    }

    [Fact]
    public async Task SegmentStream_OutputScaleStepsDownOnFramesTwoPixelsHigh_EveryFrameStillAnswered()
    {
        // At a quarter scale a 2-pixel side rounds to 0: the server's own downscaling keeps it at 1.
        var raw = new RawFrame { Width = 64, Height = 2, PixelFormat = PixelFormat.Gray8, Data = ByteString.CopyFrom(new byte[128]) };
        var frames = Enumerable.Range(0, 40).Select(i => new StreamFrame { FrameId = (ulong)i, Image = new Contracts.V1.Image { Raw = raw } }).ToArray();
        var config = new StreamConfig { MaxInFlight = 1, Latency = new LatencyContract { TargetFps = 1000, AllowDownscale = true } };

        var messages = await StreamAsync(server.Client, config, frames);

        var answers = messages.Where(m => m.OutcomeCase != SegmentStreamResponse.OutcomeOneofCase.Status).ToArray();
        Assert.All(answers, a => Assert.True(a.Result is not null, $"frame {a.FrameId}: {a.OutcomeCase} {a.Error?.Message}"));
        Assert.Equal(40, answers.Length);
        Assert.True(messages[^1].Status.OutputScale < 0.5f, messages[^1].Status.ToString());
        Assert.Contains(answers, a => a.Result.Height == 1);
    }

    [Fact]
    public async Task SegmentStream_OutputScaleStepsDown_SegmentsKeepTheirTrackIds()
    {
        // The same image every frame while the output size steps down (as in the test above): the same
        // objects at fewer pixels, so the same ids.
        var frames = Enumerable.Range(0, 40).Select(i => Frame((ulong)i, HeldOutSet.ImageFiles[0])).ToArray();
        var config = new StreamConfig { Tasks = { SegmentationTask.Panoptic }, MaxInFlight = 1, Latency = new LatencyContract { TargetFps = 1000, AllowDownscale = true } };

        var messages = await StreamAsync(server.Client, config, frames);

        var results = messages.Where(m => m.OutcomeCase == SegmentStreamResponse.OutcomeOneofCase.Result).Select(m => m.Result).ToArray();
        Assert.Equal(40, results.Length);
        var sizes = results.Select(r => (r.Width, r.Height)).Distinct().ToArray();
        Assert.True(sizes.Length >= 2, $"one output size only: {sizes[0]}");
        var first = results[0].Panoptic.Segments.Select(s => s.TrackId).ToHashSet();
        Assert.All(results, r => Assert.True(
            r.Panoptic.Segments.All(s => first.Contains(s.TrackId)),
            $"{r.Width}x{r.Height}: track ids {string.Join(", ", r.Panoptic.Segments.Select(s => s.TrackId))}, the first frame's {string.Join(", ", first)}"));
    }

    [Fact]
    public async Task SegmentStream_StatusInterval_StatusesComeWhileNoFrameIsAnswered()
    {
        using var call = server.Client.SegmentStream(deadline: DateTime.UtcNow.AddMinutes(3));
        await call.RequestStream.WriteAsync(new SegmentStreamRequest { Config = new StreamConfig { StatusIntervalMs = 50 } });
        await call.RequestStream.WriteAsync(new SegmentStreamRequest { Frame = Frame(0, HeldOutSet.ImageFiles[0]) });

        // The sender pauses after its first frame: statuses keep coming meanwhile, each counting that one answer.
        using var patience = new CancellationTokenSource(TimeSpan.FromMinutes(1));
        var messages = new List<SegmentStreamResponse>();
        while (messages.SkipWhile(m => m.Result is null).Count(m => m.Status is not null) < 3)
        {
            Assert.True(await call.ResponseStream.MoveNext(patience.Token), "the stream ended");
            messages.Add(call.ResponseStream.Current);
        }

        await call.RequestStream.WriteAsync(new SegmentStreamRequest { Frame = Frame(1, HeldOutSet.ImageFiles[1]) });
        await call.RequestStream.CompleteAsync();
        while (await call.ResponseStream.MoveNext(patience.Token))
        {
            messages.Add(call.ResponseStream.Current);
        }

        var afterFirst = messages.SkipWhile(m => m.Result is null).Skip(1).TakeWhile(m => m.Result is null).ToArray();
        Assert.True(afterFirst.Length >= 3, $"{afterFirst.Length} statuses between the two answers");
        Assert.All(afterFirst, m => Assert.Equal(1ul, m.Status.FramesAnswered));
        Assert.Equal([0ul, 1ul], messages.Where(m => m.Result is not null).Select(m => m.FrameId));
        Assert.True(messages[^1].Status.Final);
        Assert.Equal(2ul, messages[^1].Status.FramesAnswered);
    }

    [Fact]
    public async Task SegmentStream_RejectedConfig_FramesFailWithBadRequest_StatusesGoOn()
    {
        using var call = server.Client.SegmentStream(deadline: DateTime.UtcNow.AddMinutes(1));
        await call.RequestStream.WriteAsync(new SegmentStreamRequest { Config = new StreamConfig { StatusIntervalMs = 20 } });
        await call.RequestStream.WriteAsync(new SegmentStreamRequest { Frame = Frame(1, HeldOutSet.ImageFiles[0]) });
        await call.RequestStream.WriteAsync(new SegmentStreamRequest { Config = new StreamConfig { Tracking = new TrackingOptions { IouThreshold = 0f } } });
        await call.RequestStream.WriteAsync(new SegmentStreamRequest { Frame = Frame(2, HeldOutSet.ImageFiles[0]) });
        await call.RequestStream.CompleteAsync();
        var messages = await call.ResponseStream.ReadAllAsync().ToArrayAsync();

        Assert.NotNull(messages.Single(m => m.FrameId == 1 && m.OutcomeCase != SegmentStreamResponse.OutcomeOneofCase.Status).Result);
        var failed = messages.Single(m => m.FrameId == 2 && m.OutcomeCase != SegmentStreamResponse.OutcomeOneofCase.Status).Error;
        Assert.Equal((int)StatusCode.InvalidArgument, failed.Code);
        var details = Google.Rpc.Status.Parser.ParseFrom(failed.StatusDetails).Details.Single().Unpack<Google.Rpc.BadRequest>();
        Assert.Equal("config.tracking.iou_threshold", Assert.Single(details.FieldViolations).Field);
        Assert.True(messages[^1].Status?.Final, "the stream's final status was not sent after a rejected config");
    }

    [Theory]
    [InlineData(-1f, 0u, null, "config.latency.target_fps")]
    [InlineData(float.NaN, 0u, null, "config.latency.target_fps")]
    [InlineData(1001f, 0u, null, "config.latency.target_fps")]
    [InlineData(30f, 60_001u, null, "config.latency.max_age_ms")]
    [InlineData(30f, 100u, 60_001u, "config.status_interval_ms")]
    public async Task SegmentStream_InvalidLatencyContract_FramesFailWithInvalidArgumentNamingTheField(float targetFps, uint maxAgeMs, uint? statusIntervalMs, string field)
    {
        var config = new StreamConfig { Latency = new LatencyContract { TargetFps = targetFps, MaxAgeMs = maxAgeMs } };
        if (statusIntervalMs is { } interval)
        {
            config.StatusIntervalMs = interval;
        }

        var messages = await StreamAsync(server.Client, config, [Frame(5, HeldOutSet.ImageFiles[0])]);

        var answer = Assert.Single(messages);
        Assert.Equal(5ul, answer.FrameId);
        Assert.Equal((int)StatusCode.InvalidArgument, answer.Error.Code);
        Assert.Contains(field, answer.Error.Message, StringComparison.Ordinal);
    }

    internal static async Task<SegmentStreamResponse[]> StreamAsync(SegmentationService.SegmentationServiceClient client, StreamConfig config, IEnumerable<StreamFrame> frames)
    {
        using var call = client.SegmentStream(deadline: DateTime.UtcNow.AddMinutes(3));
        var reading = Task.Run(async () =>
        {
            var responses = new List<SegmentStreamResponse>();
            await foreach (var response in call.ResponseStream.ReadAllAsync())
            {
                responses.Add(response);
            }

            return responses.ToArray();
        });
        await call.RequestStream.WriteAsync(new SegmentStreamRequest { Config = config });
        foreach (var frame in frames)
        {
            await call.RequestStream.WriteAsync(new SegmentStreamRequest { Frame = frame });
        }

        await call.RequestStream.CompleteAsync();
        return await reading;
    }

    internal static StreamFrame Frame(ulong id, string file) => new() { FrameId = id, Image = SegmentTests.EncodedImage(file) };
}
