using MaskFormer.Engine.Sessions;
using Microsoft.Extensions.Logging;

namespace MaskFormer.Engine.Tests.Sessions;

public sealed class SessionFactoryTests
{
    [Fact]
    public async Task Load_CudaDeviceThatFallsBackToTheCpu_ItsSessionGetsTheCoresNotOneThread()
    {
        // No machine has a 100th GPU, so this device falls back everywhere; alone, its CPU session gets every core.
        await using var engine = await EngineFactory.StartAsync(new InferenceOptions { Devices = [new DeviceOptions { Name = "cuda:99" }], WarmUp = false });

        var placement = Assert.Single(engine.Models).Placements.Single();
        Assert.True(placement.FellBackToCpu, placement.ExecutionProvider);
        Assert.Equal(Environment.ProcessorCount, placement.IntraOpThreads);
    }

    [Fact]
    public void Create_ThreeSessionsOnACudaDevice_TriesCudaOnceThenReusesTheVerdict()
    {
        var logger = new RecordingLogger();
        var factory = new SessionFactory(new InferenceOptions(), logger);
        var device = new DeviceSpec(true, 0);
        var modelPath = Path.Combine(RepositoryPaths.TinyShapes, "model.onnx");

        var sessions = Enumerable.Range(0, 3).Select(_ => factory.Create(modelPath, device, 1)).ToArray();
        try
        {
            var placements = sessions.Select(s => s.Placement).ToArray();
            var fallbackLogs = logger.EventIds.Count(id => id == 100);
            if (placements[0].FellBackToCpu)
            {
                // No usable CUDA here (CI has no GPU): one attempt, one warning, the same reason everywhere.
                CudaExpectation.FallbackAllowed(placements[0].FallbackReason);
                Assert.Equal(1, fallbackLogs);
                Assert.All(placements, p => Assert.Equal(("CPUExecutionProvider", placements[0].FallbackReason), (p.ExecutionProvider, p.FallbackReason)));
                Assert.All(placements, p => Assert.Equal("cpu", p.ActualDevice));

                // A session that fell back to the CPU runs each batch as it is: padding would cost the cores.
                Assert.All(sessions, s => Assert.Empty(s.BatchSizes));
            }
            else
            {
                Assert.Equal(0, fallbackLogs);
                Assert.All(placements, p => Assert.Equal("CUDAExecutionProvider", p.ExecutionProvider));
                Assert.All(sessions, s => Assert.Equal([1, 4], s.BatchSizes));
                Assert.Equal(3, logger.EventIds.Count(id => id == 102));
            }
        }
        finally
        {
            foreach (var session in sessions)
            {
                session.Dispose();
            }
        }
    }

    [Theory]
    [InlineData(true, 4, "", "1,4")]
    [InlineData(true, 8, "", "1,8")]
    [InlineData(true, 1, "", "1")]
    [InlineData(true, 8, " 4,2, 4", "2,4,8")]
    [InlineData(true, 4, "4", "4")]
    [InlineData(false, 8, "", "")]
    public void EffectiveCudaBatchSizes_OneAndTheMaxBatchSizeUnlessConfiguredOrTurnedOff(bool pad, int maxBatchSize, string configured, string expected)
    {
        var options = new InferenceOptions { PadCudaBatches = pad, MaxBatchSize = maxBatchSize, CudaBatchSizes = configured };

        Assert.Equal(Sizes(expected), options.EffectiveCudaBatchSizes());

        // CPU sessions never pad.
        using var cpu = new SessionFactory(options, new RecordingLogger()).Create(Path.Combine(RepositoryPaths.TinyShapes, "model.onnx"), DeviceSpec.Cpu, 1);
        Assert.Empty(cpu.BatchSizes);

        static int[] Sizes(string list) => [.. list.Split(',', StringSplitOptions.RemoveEmptyEntries).Select(int.Parse)];
    }

    [Fact]
    public void CudaProviderOptions_Unconfigured_FullFloat32OnTheDevice()
    {
        var providerOptions = SessionFactory.CudaProviderOptions(new InferenceOptions(), new DeviceSpec(true, 1));

        Assert.Equal(new Dictionary<string, string> { ["use_tf32"] = "0", ["device_id"] = "1" }, providerOptions);
    }

    [Fact]
    public void CudaProviderOptions_Configured_OverTheDefaultsButNotOverTheDevice()
    {
        var options = new InferenceOptions
        {
            CudaProviderOptions = { ["use_tf32"] = "1", ["cudnn_conv_algo_search"] = "HEURISTIC", ["device_id"] = "7" },
        };

        var providerOptions = SessionFactory.CudaProviderOptions(options, new DeviceSpec(true, 2));

        Assert.Equal(new Dictionary<string, string> { ["use_tf32"] = "1", ["cudnn_conv_algo_search"] = "HEURISTIC", ["device_id"] = "2" }, providerOptions);
    }

    [Fact]
    public void Create_RequiredCudaDevice_UsesCudaOrThrowsWithTheReason()
    {
        var factory = new SessionFactory(new InferenceOptions(), new RecordingLogger());
        var modelPath = Path.Combine(RepositoryPaths.TinyShapes, "model.onnx");

        ModelSession? session = null;
        var error = Record.Exception(() => session = factory.Create(modelPath, new DeviceSpec(true, 0), 1, required: true));
        using (session)
        {
            if (error is not null)
            {
                // No usable CUDA here: no CPU fallback, and the second attempt reuses the verdict.
                CudaExpectation.FallbackAllowed(error.Message);
                var unavailable = Assert.IsType<DeviceUnavailableException>(error);
                Assert.Equal("cuda:0", unavailable.Device);
                Assert.StartsWith("Required device cuda:0 cannot be used: ", unavailable.Message, StringComparison.Ordinal);
                Assert.NotEmpty(unavailable.Reason);
                var again = Assert.Throws<DeviceUnavailableException>(() => factory.Create(modelPath, new DeviceSpec(true, 0), 1, required: true));
                Assert.Equal(unavailable.Reason, again.Reason);
            }
            else
            {
                Assert.Equal(("CUDAExecutionProvider", false), (session!.Placement.ExecutionProvider, session.Placement.FellBackToCpu));
            }
        }
    }

    [Fact]
    public void Create_OptionalDeviceAfterRequiredFailure_StillFallsBack()
    {
        // A device id no machine has, so CUDA fails on GPU machines too.
        var factory = new SessionFactory(new InferenceOptions(), new RecordingLogger());
        var modelPath = Path.Combine(RepositoryPaths.TinyShapes, "model.onnx");
        var missing = new DeviceSpec(true, 99);

        Assert.Throws<DeviceUnavailableException>(() => factory.Create(modelPath, missing, 1, required: true));
        using var fallback = factory.Create(modelPath, missing, 1);

        Assert.True(fallback.Placement.FellBackToCpu);
        Assert.Equal("cpu", fallback.Placement.ActualDevice);
    }

    [Fact]
    public void Create_CudaHostWaitOnADeviceNoMachineHas_WarnedOncePerProcessWithTheReasonAndTheSessionsStillCome()
    {
        // No driver here, or (on a GPU machine) one without device 97, which no other test uses: refused.
        // Two factories (two engines, say) share the process's primary context, so only the first asks.
        var (firstLogger, secondLogger) = (new RecordingLogger(), new RecordingLogger());
        var options = new InferenceOptions { CudaHostWait = CudaHostWait.BlockingSync };
        var modelPath = Path.Combine(RepositoryPaths.TinyShapes, "model.onnx");

        using var first = new SessionFactory(options, firstLogger).Create(modelPath, new DeviceSpec(true, 97), 1);
        using var second = new SessionFactory(options, secondLogger).Create(modelPath, new DeviceSpec(true, 97), 1);

        var warning = Assert.Single(firstLogger.Entries, e => e.EventId is 103 or 104);
        Assert.Equal(104, warning.EventId);
        Assert.StartsWith("CUDA device cuda:97: MaskFormer:Inference:CudaHostWait=BlockingSync not applied, the device waits as CUDA decides: the CUDA driver", warning.Message, StringComparison.Ordinal);
        Assert.DoesNotContain(secondLogger.Entries, e => e.EventId is 103 or 104);
        Assert.All(new[] { first, second }, s => Assert.Equal("cpu", s.Placement.ActualDevice));
    }

    [Fact]
    public void Create_CudaHostWaitBlockingSyncOnCuda0_TheContextSleepsOrAWarningWithTheReason()
    {
        var logger = new RecordingLogger();
        var factory = new SessionFactory(new InferenceOptions { CudaHostWait = CudaHostWait.BlockingSync }, logger);

        using var session = factory.Create(Path.Combine(RepositoryPaths.TinyShapes, "model.onnx"), new DeviceSpec(true, 0), 1);

        var entry = Assert.Single(logger.Entries, e => e.EventId is 103 or 104);
        if (entry.EventId == 103)
        {
            // A GPU machine: the driver took it, and its primary context says so.
            Assert.Equal("CUDA device cuda:0: threads waiting for it wait by BlockingSync (MaskFormer:Inference:CudaHostWait)", entry.Message);
            Assert.Equal(CudaHostWait.BlockingSync, CudaDriver.HostWait(0));
        }
        else
        {
            // No CUDA driver here (CI), or one without a GPU: nothing set, and the driver cannot say either.
            CudaExpectation.FallbackAllowed(entry.Message);
            Assert.StartsWith("CUDA device cuda:0: MaskFormer:Inference:CudaHostWait=BlockingSync not applied, the device waits as CUDA decides: the CUDA driver", entry.Message, StringComparison.Ordinal);
            Assert.Null(CudaDriver.HostWait(0));
        }
    }

    [Fact]
    public void Create_CudaHostWaitAuto_LeavesTheDriverAlone()
    {
        var logger = new RecordingLogger();
        var factory = new SessionFactory(new InferenceOptions(), logger);

        using var session = factory.Create(Path.Combine(RepositoryPaths.TinyShapes, "model.onnx"), new DeviceSpec(true, 99), 1);

        Assert.DoesNotContain(logger.Entries, e => e.EventId is 103 or 104);
    }

    [Theory]
    [InlineData(CudaHostWait.Auto, 0x00u)]
    [InlineData(CudaHostWait.Spin, 0x01u)]
    [InlineData(CudaHostWait.Yield, 0x02u)]
    [InlineData(CudaHostWait.BlockingSync, 0x04u)]
    public void SchedulingFlag_EachWait_CudaHeadersContextFlag(CudaHostWait wait, uint expected) =>
        Assert.Equal(expected, CudaDriver.SchedulingFlag(wait));

    private sealed class RecordingLogger : ILogger
    {
        public List<(int EventId, string Message)> Entries { get; } = [];

        public List<int> EventIds { get; } = [];

        public IDisposable? BeginScope<TState>(TState state)
            where TState : notnull => null;

        public bool IsEnabled(LogLevel logLevel) => true;

        public void Log<TState>(LogLevel logLevel, EventId eventId, TState state, Exception? exception, Func<TState, Exception?, string> formatter)
        {
            EventIds.Add(eventId.Id);
            Entries.Add((eventId.Id, formatter(state, exception)));
        }
    }
}
