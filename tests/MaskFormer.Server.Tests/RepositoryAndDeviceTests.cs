using Grpc.Core;
using Grpc.Net.Client;
using Grpc.Reflection.V1Alpha;
using MaskFormer.Contracts.V1;
using MaskFormer.Engine;
using MaskFormer.Engine.Sessions;
using Microsoft.Extensions.DependencyInjection;

namespace MaskFormer.Server.Tests;

public sealed class RepositoryAndDeviceTests : IDisposable
{
    private readonly string _repository = Directory.CreateTempSubdirectory("maskformer-repo-").FullName;

    [Fact]
    public async Task ListModels_TwoModelsOneVersioned_ServedSideBySideByName()
    {
        CopyModel(Path.Combine(_repository, "alpha"));
        CopyModel(Path.Combine(_repository, "beta", "2"));
        var (app, address) = await ServerFixture.StartAsync([.. ServerFixture.Arguments(), $"--MaskFormer:Models:Path={_repository}", "--MaskFormer:Models:DefaultModel=beta"]);
        await using (app)
        {
            using var channel = GrpcChannel.ForAddress(address);
            await ServerFixture.WaitUntilServingAsync(channel);
            var client = new SegmentationService.SegmentationServiceClient(channel);

            var models = await client.ListModelsAsync(new ListModelsRequest());
            var byDefault = await client.SegmentAsync(new SegmentRequest { Image = SegmentTests.EncodedImage(HeldOutSet.ImageFiles[0]) });
            var byName = await client.SegmentAsync(new SegmentRequest { Model = "alpha", Image = SegmentTests.EncodedImage(HeldOutSet.ImageFiles[0]) });

            Assert.Equal([("beta", "2", true), ("alpha", "1.0.0", false)], models.Models.Select(m => (m.Name, m.Version, m.IsDefault)));
            Assert.Equal(("beta", "2"), (byDefault.Model, byDefault.ModelVersion));
            Assert.Equal("alpha", byName.Model);
            Assert.Equal(SegmentTests.DecodeLabels(byDefault), SegmentTests.DecodeLabels(byName));
            await app.StopAsync();
        }
    }

    [Fact]
    public async Task Start_CudaDeviceConfigured_UsesItOrFallsBackToCpuAndSaysWhy()
    {
        var (app, address) = await ServerFixture.StartAsync(ServerFixture.Arguments("--MaskFormer:Inference:Devices:0:Name=cuda:0", "--MaskFormer:Inference:Devices:0:Sessions=1"));
        await using (app)
        {
            using var channel = GrpcChannel.ForAddress(address);
            await ServerFixture.WaitUntilServingAsync(channel);
            var client = new SegmentationService.SegmentationServiceClient(channel);

            var device = (await client.ListModelsAsync(new ListModelsRequest())).Models[0].Devices.Single();
            var response = await client.SegmentAsync(new SegmentRequest { Image = SegmentTests.EncodedImage(HeldOutSet.ImageFiles[0]) });

            Assert.Equal("cuda:0", device.Name);
            if (device.FellBackToCpu)
            {
                // No usable CUDA here (the CI machines have no GPU): the CPU serves, and the reason is given.
                CudaExpectation.FallbackAllowed(device.FallbackReason);
                Assert.Equal("CPUExecutionProvider", device.ExecutionProvider);
                Assert.NotEmpty(device.FallbackReason);
                Assert.Equal("cpu", response.Device);
            }
            else
            {
                Assert.Equal("CUDAExecutionProvider", device.ExecutionProvider);
                Assert.Equal("cuda:0", response.Device);
            }

            Assert.NotEmpty(response.Semantic.LabelMap.Data);
            await app.StopAsync();
        }
    }

    [Fact]
    public async Task Segment_QueueFull_ResourceExhaustedWithRetryInfo()
    {
        // The model run is paused: one call runs, one waits in the queue, and the other 30 are refused
        // at once, however fast this machine is.
        var sessions = new FaultInjectingSessionFactory();
        var (app, address) = await ServerFixture.StartAsync(
            ServerFixture.Arguments("--MaskFormer:Inference:MaxQueueSize=1", "--MaskFormer:Inference:MaxBatchSize=1", "--MaskFormer:Inference:QueueFullRetryAfter=00:00:00.250"),
            builder => builder.Services.AddSingleton<IModelSessionFactory>(sessions));
        await using (app)
        {
            using var channel = GrpcChannel.ForAddress(address);
            await ServerFixture.WaitUntilServingAsync(channel);
            var client = new SegmentationService.SegmentationServiceClient(channel);
            var request = new SegmentRequest { Image = SegmentTests.EncodedImage(HeldOutSet.ImageFiles[0]) };
            var scheduler = app.Services.GetRequiredService<SegmentationEngine>().Models[0];
            var session = Assert.Single(sessions.Created);
            Grpc.Core.RpcException?[] outcomes;
            session.Pause();
            try
            {
                var running = CallAsync();
                await Faults.FaultServer.WaitUntilAsync(() => session.PausedRuns == 1, "the first call's model run did not start");
                var calls = Enumerable.Range(0, 31).Select(_ => CallAsync()).ToArray();
                await Faults.FaultServer.WaitUntilAsync(() => scheduler.GetCounters().Rejected == 30, "30 calls were not refused while one ran and one was queued");
                session.Resume();
                outcomes = [await running, .. await Task.WhenAll(calls)];
            }
            finally
            {
                session.Resume();
            }

            var rejected = outcomes.OfType<Grpc.Core.RpcException>().ToArray();
            Assert.Equal(30, rejected.Length);
            Assert.Equal(2, outcomes.Count(o => o is null));
            Assert.All(rejected, ex =>
            {
                Assert.Equal(Grpc.Core.StatusCode.ResourceExhausted, ex.StatusCode);
                Assert.Equal(TimeSpan.FromMilliseconds(250), ex.GetRpcStatus()!.GetDetail<Google.Rpc.RetryInfo>().RetryDelay.ToTimeSpan());
            });
            await app.StopAsync();

            async Task<Grpc.Core.RpcException?> CallAsync()
            {
                try
                {
                    await client.SegmentAsync(request);
                    return null;
                }
                catch (Grpc.Core.RpcException ex)
                {
                    return ex;
                }
            }
        }
    }

    [Fact]
    public async Task Reflection_ListsTheSegmentationServiceAndHealth()
    {
        var (app, address) = await ServerFixture.StartAsync(ServerFixture.Arguments());
        await using (app)
        {
            using var channel = GrpcChannel.ForAddress(address);
            using var call = new ServerReflection.ServerReflectionClient(channel).ServerReflectionInfo();

            await call.RequestStream.WriteAsync(new ServerReflectionRequest { ListServices = string.Empty });
            await call.RequestStream.CompleteAsync();
            Assert.True(await call.ResponseStream.MoveNext(CancellationToken.None));
            var services = call.ResponseStream.Current.ListServicesResponse.Service.Select(s => s.Name).ToArray();

            Assert.Contains("maskformer.v1.SegmentationService", services);
            Assert.Contains("grpc.health.v1.Health", services);
            await app.StopAsync();
        }
    }

    public void Dispose() => Directory.Delete(_repository, recursive: true);

    private static void CopyModel(string target) => RepositoryPaths.CopyTinyShapes(target);
}
