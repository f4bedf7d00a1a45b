using Grpc.Core;
using MaskFormer.Contracts.V1;
using static MaskFormer.Server.Tests.LatencyContractTests;

namespace MaskFormer.Server.Tests;

/// <summary>
/// StreamStatus messages follow the stream's configs and come while it is idle ("every
/// status_interval_ms, whether or not answers are being written"), over real HTTP/2. Each test waits
/// for events, capped by a patience far above the intervals asked, and asserts no duration.
/// </summary>
[Collection(ServerTestGroup.Name)]
public sealed class StreamStatusIntervalTests(ServerFixture server)
{
    // Forty times and more the intervals asked below: only a server that sends no status runs into it.
    private static readonly TimeSpan s_patience = TimeSpan.FromSeconds(40);

    [Fact]
    public async Task SegmentStream_StatusIntervalAndNoFrame_StatusesComeBeforeHalfClose()
    {
        using var call = server.Client.SegmentStream(deadline: DateTime.UtcNow.AddMinutes(3));
        await call.RequestStream.WriteAsync(new SegmentStreamRequest { Config = new StreamConfig { StatusIntervalMs = 100 } });

        var idle = await ReadStatusesAsync(call, 3);
        await call.RequestStream.CompleteAsync();
        var rest = await call.ResponseStream.ReadAllAsync().ToArrayAsync();

        Assert.All(idle, s => Assert.Equal((0ul, false), (s.FramesReceived, s.Final)));
        Assert.True(Assert.Single(rest).Status.Final);
    }

    [Fact]
    public async Task SegmentStream_LatencyContractAndNoFrame_StatusesComeEverySecondByDefault()
    {
        using var call = server.Client.SegmentStream(deadline: DateTime.UtcNow.AddMinutes(3));
        await call.RequestStream.WriteAsync(new SegmentStreamRequest { Config = new StreamConfig { Latency = new LatencyContract { TargetFps = 10 } } });

        var idle = await ReadStatusesAsync(call, 2);
        await call.RequestStream.CompleteAsync();
        var rest = await call.ResponseStream.ReadAllAsync().ToArrayAsync();

        Assert.All(idle, s => Assert.False(s.Final));
        Assert.True(Assert.Single(rest).Status.Final);
    }

    [Fact]
    public async Task SegmentStream_ConfigResentWithShorterInterval_StatusesFollowItWhileIdle()
    {
        using var call = server.Client.SegmentStream(deadline: DateTime.UtcNow.AddMinutes(3));
        await call.RequestStream.WriteAsync(new SegmentStreamRequest { Config = new StreamConfig { StatusIntervalMs = 60_000 } });
        await call.RequestStream.WriteAsync(new SegmentStreamRequest { Frame = Frame(1, HeldOutSet.ImageFiles[0]) });

        // The answer is written, so the writer waits for the next frame under the 60 s interval when the
        // new config comes.
        using var patience = new CancellationTokenSource(s_patience);
        Assert.True(await call.ResponseStream.MoveNext(patience.Token), "the stream ended");
        Assert.Equal(1ul, call.ResponseStream.Current.FrameId);
        await call.RequestStream.WriteAsync(new SegmentStreamRequest { Config = new StreamConfig { StatusIntervalMs = 100 } });

        var idle = await ReadStatusesAsync(call, 3);
        await call.RequestStream.CompleteAsync();
        var rest = await call.ResponseStream.ReadAllAsync().ToArrayAsync();

        Assert.All(idle, s => Assert.Equal((1ul, false), (s.FramesAnswered, s.Final)));
        Assert.True(Assert.Single(rest).Status.Final);
    }

    [Fact]
    public async Task SegmentStream_ConfigTurnsStatusesOff_NoneAfterIt_NotEvenTheFinal()
    {
        using var call = server.Client.SegmentStream(deadline: DateTime.UtcNow.AddMinutes(3));
        await call.RequestStream.WriteAsync(new SegmentStreamRequest { Config = new StreamConfig { StatusIntervalMs = 50 } });
        await ReadStatusesAsync(call, 2);

        // status_interval_ms 0 is "never"; the frame after it marks where statuses must have stopped.
        await call.RequestStream.WriteAsync(new SegmentStreamRequest { Config = new StreamConfig { StatusIntervalMs = 0 } });
        await call.RequestStream.WriteAsync(new SegmentStreamRequest { Frame = Frame(1, HeldOutSet.ImageFiles[0]) });
        using var patience = new CancellationTokenSource(s_patience);
        var messages = new List<SegmentStreamResponse>();
        while (messages.LastOrDefault()?.FrameId != 1)
        {
            Assert.True(await call.ResponseStream.MoveNext(patience.Token), "the stream ended");
            messages.Add(call.ResponseStream.Current);
        }

        // Idle for several of the old intervals: a timer still set to 50 ms would write statuses meanwhile.
        await Task.Delay(TimeSpan.FromMilliseconds(500));
        await call.RequestStream.CompleteAsync();
        var rest = await call.ResponseStream.ReadAllAsync().ToArrayAsync();

        Assert.NotNull(messages[^1].Result);
        Assert.Empty(rest);
    }

    // The next count statuses, failing if an answer or the end of the stream comes first.
    private static async Task<StreamStatus[]> ReadStatusesAsync(AsyncDuplexStreamingCall<SegmentStreamRequest, SegmentStreamResponse> call, int count)
    {
        using var patience = new CancellationTokenSource(s_patience);
        var statuses = new List<StreamStatus>();
        while (statuses.Count < count)
        {
            try
            {
                Assert.True(await call.ResponseStream.MoveNext(patience.Token), "the stream ended");
            }
            catch (RpcException) when (patience.IsCancellationRequested)
            {
                Assert.Fail($"{statuses.Count} of {count} statuses came in {s_patience.TotalSeconds} s");
            }

            var status = call.ResponseStream.Current.Status;
            Assert.True(status is not null, $"not a status: {call.ResponseStream.Current}");
            statuses.Add(status);
        }

        return [.. statuses];
    }
}
