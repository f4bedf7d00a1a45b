using MaskFormer.Engine.Postprocessing;
using MaskFormer.Engine.Tests.Postprocessing;

namespace MaskFormer.Engine.Tests.Postprocessing.Dense;

/// <summary>
/// The modes side by side and one after another (<see cref="Detectron2Tasks"/>) against each mode run
/// alone on its own bounds: the same labels, instances and segments bit for bit; and a failing mode
/// surfaces its own exception, not an <see cref="AggregateException"/>.
/// </summary>
public sealed class Detectron2TasksTests
{
    private const SegmentationTasks All = SegmentationTasks.Semantic | SegmentationTasks.Instance | SegmentationTasks.Panoptic;

    public static TheoryData<int, bool> Seeds
    {
        get
        {
            // Even seeds side by side, odd ones one after another.
            var data = new TheoryData<int, bool>();
            foreach (var seed in Enumerable.Range(1, 24))
            {
                data.Add(seed, seed % 2 == 0);
            }

            return data;
        }
    }

    [Theory]
    [MemberData(nameof(Seeds))]
    public void Run_AllModesTogether_EqualsEachAlone(int seed, bool sideBySide)
    {
        var random = new Random(seed);
        var plan = TiledCases.Plan(random);
        var (queries, classes) = (random.Next(1, 13), random.Next(1, 10));
        var labels = PeakyModelOutput.Labels(random, classes);
        using var output = TiledCases.Output(random, queries, classes + 1, plan);
        var isMask2Former = random.Next(2) == 0;
        var options = PostprocessOptions.Detectron2;
        var context = $"seed {seed}, plan {plan}, {queries} queries, {classes} classes, side by side {sideBySide}";

        var (semantic, instances, panoptic) = Modes(output, plan, All, labels, isMask2Former, options, sideBySide: sideBySide);
        var (semanticAlone, _, _) = Modes(output, plan, SegmentationTasks.Semantic, labels, isMask2Former, options);
        var (_, instancesAlone, _) = Modes(output, plan, SegmentationTasks.Instance, labels, isMask2Former, options);
        var (_, _, panopticAlone) = Modes(output, plan, SegmentationTasks.Panoptic, labels, isMask2Former, options);
        try
        {
            Assert.True(Pixels(semantic!).SequenceEqual(Pixels(semanticAlone!)), $"semantic labels differ ({context})");
            Assert.Equal(instancesAlone!.Count, instances!.Count);
            for (var i = 0; i < instances.Count; i++)
            {
                var (want, got) = (instancesAlone[i], instances[i]);
                Assert.Equal((want.LabelId, want.Score, want.Area, want.Box), (got.LabelId, got.Score, got.Area, got.Box));
                Assert.True(want.Mask.Pixels.SequenceEqual(got.Mask.Pixels), $"instance {i}: masks differ ({context})");
            }

            Assert.True(Pixels(panoptic!.SegmentIds).SequenceEqual(Pixels(panopticAlone!.SegmentIds)), $"panoptic ids differ ({context})");
            Assert.Equal(panopticAlone.Segments, panoptic.Segments);
        }
        finally
        {
            semantic?.Dispose();
            semanticAlone?.Dispose();
            panoptic?.Dispose();
            panopticAlone?.Dispose();
            foreach (var instance in (instances ?? []).Concat(instancesAlone ?? []))
            {
                instance.Dispose();
            }
        }
    }

    [Theory]
    [InlineData(true)]
    [InlineData(false)]
    public void Run_OneModeFails_ThrowsItsExceptionNotAnAggregate(bool sideBySide)
    {
        var random = new Random(7);
        var plan = new MaskFormer.Engine.Preprocessing.ResizePlan(64, 64, 64, 64, 64, 64);
        using var output = TiledCases.Output(random, 4, 3, plan);

        // No labels: instance inference (things only) reads the label of its first pair and fails; semantic does not read labels.
        var failure = Record.Exception(() => Modes(output, plan, SegmentationTasks.Semantic | SegmentationTasks.Instance, new List<MaskFormer.Engine.Models.ModelLabel>(), false, PostprocessOptions.Detectron2, thingsOnly: true, sideBySide: sideBySide));

        Assert.IsType<ArgumentOutOfRangeException>(failure);
    }

    private static (LabelMap? Semantic, IReadOnlyList<InstanceMask>? Instances, PanopticResult? Panoptic) Modes(
        MaskFormer.Engine.Sessions.ModelOutput output, MaskFormer.Engine.Preprocessing.ResizePlan plan, SegmentationTasks tasks, IReadOnlyList<MaskFormer.Engine.Models.ModelLabel> labels, bool isMask2Former, PostprocessOptions options, bool thingsOnly = false, bool? sideBySide = null)
    {
        using var tiles = new MaskTiles(output, plan);
        return Detectron2Tasks.Run(tiles, tasks, labels, thingsOnly, isMask2Former, options, sideBySide);
    }

    private static ushort[] Pixels(LabelMap map) => map.Values.ToArray();
}
