using Grpc.Core;
using MaskFormer.Contracts.V1;

namespace MaskFormer.Server.Tests;

/// <summary>GetModelStatistics over gRPC: the totals move by exactly the calls made (the collection runs its tests one at a time).</summary>
[Collection(ServerTestGroup.Name)]
public sealed class StatisticsTests(ServerFixture server)
{
    [Fact]
    public async Task GetModelStatistics_AfterCalls_CountsThemAndTheirModelRuns()
    {
        var before = Assert.Single((await server.Client.GetModelStatisticsAsync(new GetModelStatisticsRequest { Model = "tiny-shapes" })).ModelStats);

        const int Calls = 5;
        await Task.WhenAll(Enumerable.Range(0, Calls).Select(i =>
            server.Client.SegmentAsync(new SegmentRequest { Image = SegmentTests.EncodedImage(HeldOutSet.ImageFiles[i]) }).ResponseAsync));
        await Assert.ThrowsAsync<RpcException>(async () => await server.Client.SegmentAsync(new SegmentRequest { Image = new Image { Encoded = Google.Protobuf.ByteString.CopyFromUtf8("not an image") } }));

        var after = Assert.Single((await server.Client.GetModelStatisticsAsync(new GetModelStatisticsRequest())).ModelStats, m => m.Name == "tiny-shapes");
        Assert.Equal(before.Success.Count + Calls, after.Success.Count);
        Assert.Equal(before.InferenceCount + Calls, after.InferenceCount);
        Assert.Equal(before.Queue.Count + Calls, after.Queue.Count);
        Assert.Equal(before.ComputeInfer.Count + Calls, after.ComputeInfer.Count);
        Assert.True(after.Failure.Count >= before.Failure.Count + 1, "the undecodable image was not counted as a failure");
        Assert.True(after.Success.TotalNs > before.Success.TotalNs && after.ComputeInfer.TotalNs > before.ComputeInfer.TotalNs);
        Assert.InRange(after.ExecutionCount - before.ExecutionCount, 1UL, (ulong)Calls);
        Assert.Equal(after.ExecutionCount, (ulong)after.BatchStats.Sum(b => (long)b.ComputeInfer.Count));
        Assert.Equal(after.InferenceCount, (ulong)after.BatchStats.Sum(b => (long)(b.BatchSize * b.ComputeInfer.Count)));
        Assert.True(after.LastInferenceUnixMs >= before.LastInferenceUnixMs && after.LastInferenceUnixMs > 0);
    }

    [Theory]
    [InlineData("no-such-model", "")]
    [InlineData("", "9")]
    public async Task GetModelStatistics_UnknownModelOrVersion_NotFound(string model, string version)
    {
        var error = await Assert.ThrowsAsync<RpcException>(async () => await server.Client.GetModelStatisticsAsync(new GetModelStatisticsRequest { Model = model, ModelVersion = version }));

        Assert.Equal(StatusCode.NotFound, error.StatusCode);
    }
}
