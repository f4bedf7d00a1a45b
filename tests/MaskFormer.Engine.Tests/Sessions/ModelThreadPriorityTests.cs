using System.Globalization;
using MaskFormer.Engine.Sessions;
using Microsoft.Extensions.Logging.Abstractions;

namespace MaskFormer.Engine.Tests.Sessions;

/// <summary>
/// Request threads run below the model's threads (Linux nice values read from /proc): the default engine
/// lowers a thread-pool thread that runs a request but not an application's own thread, keeps its session
/// workers at the process's priority, and starts model threads at that priority even from a lowered thread
/// (which a new thread would otherwise inherit).
/// </summary>
public sealed class ModelThreadPriorityTests
{
    private const int DefaultIncrement = 10;

    [Fact]
    public async Task Segment_LowersThePoolThreadThatRunsItNotAnApplicationThreadNorTheSessionWorkers()
    {
        await using var engine = await EngineFactory.StartAsync(new InferenceOptions { IntraOpThreads = 1 });
        var main = MainThreadNice();
        var request = new SegmentationRequest { Image = EngineFactory.HeldOutImage(0), Tasks = SegmentationTasks.Semantic };
        var (before, after) = (int.MinValue, int.MinValue);
        Exception? failure = null;
        var application = new Thread(() =>
        {
            try
            {
                before = OwnNice();
                using var result = engine.SegmentAsync(request, CancellationToken.None).GetAwaiter().GetResult();
                after = OwnNice();
            }
            catch (Exception ex)
            {
                failure = ex;
            }
        });

        ModelThreadPriority.Start(application);
        application.Join();
        var pool = await Task.Run(() =>
        {
            using var result = engine.SegmentAsync(request, CancellationToken.None).GetAwaiter().GetResult();
            return OwnNice();
        });

        Assert.Null(failure);
        Assert.Equal((main, main), (before, after));
        Assert.Equal(Math.Min(19, main + DefaultIncrement), pool);
        var workers = ThreadNices().Where(t => t.Name.StartsWith("maskformer-sess", StringComparison.Ordinal)).ToList();
        Assert.NotEmpty(workers);
        Assert.All(workers, w => Assert.Equal(main, w.Nice));
    }

    [Fact]
    public void Start_FromALoweredThread_StartsTheNewThreadAtTheProcessPriority()
    {
        ModelThreadPriority.Configure(DefaultIncrement, NullLogger.Instance);
        var main = MainThreadNice();
        var (lowered, started, inherited) = (int.MinValue, int.MinValue, int.MinValue);
        var parent = new Thread(() =>
        {
            // Lowered by hand, not through the engine, so that no thread-pool thread is lowered by this test.
            _ = ModelThreadPriority.SetCurrentThreadNice(Math.Min(19, main + DefaultIncrement));
            lowered = OwnNice();
            var child = new Thread(() => started = OwnNice());
            ModelThreadPriority.Start(child);
            child.Join();
            var plain = new Thread(() => inherited = OwnNice());
            plain.Start();
            plain.Join();
        });

        ModelThreadPriority.Start(parent);
        parent.Join();

        Assert.Equal(Math.Min(19, main + DefaultIncrement), lowered);
        Assert.Equal(main, started);
        Assert.Equal(lowered, inherited);
    }

    private static int OwnNice() => Nice(File.ReadAllText("/proc/thread-self/stat"));

    private static int MainThreadNice() => Nice(File.ReadAllText($"/proc/self/task/{Environment.ProcessId}/stat"));

    private static IEnumerable<(string Name, int Nice)> ThreadNices()
    {
        foreach (var task in Directory.EnumerateDirectories("/proc/self/task"))
        {
            string stat;
            try
            {
                stat = File.ReadAllText(Path.Combine(task, "stat"));
            }
            catch (IOException)
            {
                continue; // the thread ended meanwhile
            }

            yield return (stat[(stat.IndexOf('(', StringComparison.Ordinal) + 1)..stat.LastIndexOf(')')], Nice(stat));
        }
    }

    // proc(5): the nice value is field 19; the fields after the parenthesised name start at field 3.
    private static int Nice(string stat) => int.Parse(stat[(stat.LastIndexOf(')') + 2)..].Split(' ')[16], CultureInfo.InvariantCulture);
}
