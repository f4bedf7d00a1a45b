using MaskFormer.Engine.Sessions;
using Microsoft.Extensions.Logging;

namespace MaskFormer.Engine.Tests.Sessions;

public sealed class SessionFactoryTests
{
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
                Assert.Equal(1, fallbackLogs);
                Assert.All(placements, p => Assert.Equal(("CPUExecutionProvider", placements[0].FallbackReason), (p.ExecutionProvider, p.FallbackReason)));
                Assert.All(placements, p => Assert.Equal("cpu", p.ActualDevice));
            }
            else
            {
                Assert.Equal(0, fallbackLogs);
                Assert.All(placements, p => Assert.Equal("CUDAExecutionProvider", p.ExecutionProvider));
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

    private sealed class RecordingLogger : ILogger
    {
        public List<int> EventIds { get; } = [];

        public IDisposable? BeginScope<TState>(TState state)
            where TState : notnull => null;

        public bool IsEnabled(LogLevel logLevel) => true;

        public void Log<TState>(LogLevel logLevel, EventId eventId, TState state, Exception? exception, Func<TState, Exception?, string> formatter) =>
            EventIds.Add(eventId.Id);
    }
}
