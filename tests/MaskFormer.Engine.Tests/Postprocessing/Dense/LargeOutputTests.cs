using MaskFormer.Engine.Postprocessing;
using MaskFormer.Engine.Preprocessing;
using MaskFormer.Engine.Sessions;

namespace MaskFormer.Engine.Tests.Postprocessing.Dense;

/// <summary>
/// The tiled inference against the dense one at outputs many times the model's grid (a 1080p image
/// from a small or a realistic model), where open tiles are cut into blocks: many queries with smooth,
/// close logits keep most tiles open, as an untrained realistic-width model does. Bit for bit.
/// </summary>
public sealed class LargeOutputTests
{
    public static TheoryData<int> Seeds => [.. Enumerable.Range(1, 16)];

    [Theory]
    [MemberData(nameof(Seeds))]
    public void PanopticRun_LargeOutputs_EqualsDense(int seed)
    {
        var random = new Random(seed);
        var plan = Plan(random);
        var (queries, classes) = (random.Next(6, 40), random.Next(2, 12));
        var labels = PeakyModelOutput.Labels(random, classes);
        using var output = Output(random, queries, classes + 1, plan);
        var options = new PostprocessOptions { ObjectMaskThreshold = 0.05f, OverlapThreshold = new[] { 0.05f, 0.5f }[random.Next(2)] };
        var isMask2Former = random.Next(2) == 0;

        using var tiled = PanopticInference.Run(output, plan, labels, isMask2Former, options);
        using var dense = DensePanopticInference.Run(output, plan, labels, isMask2Former, options);

        Assert.Equal(dense.Segments, tiled.Segments);
        AssertSame(dense.SegmentIds.Values, tiled.SegmentIds.Values, plan, $"seed {seed}, plan {plan}, {queries} queries");
    }

    [Theory]
    [MemberData(nameof(Seeds))]
    public void SemanticRun_LargeOutputs_EqualsDense(int seed)
    {
        var random = new Random(seed);
        var plan = Plan(random);
        var (queries, classes) = (random.Next(6, 40), random.Next(2, 12));
        using var output = Output(random, queries, classes + 1, plan);

        using var tiled = SemanticInference.Run(output, plan);
        using var dense = DenseSemanticInference.Run(output, plan);

        AssertSame(dense.Values, tiled.Values, plan, $"seed {seed}, plan {plan}, {queries} queries");
    }

    // A grid of 12-160 points a side upsampled 2-16 times (up to 1920x1080): the scales of the tiny
    // and realistic-width models at 1080p.
    private static ResizePlan Plan(Random random)
    {
        var (resizedHeight, resizedWidth) = (random.Next(12, 100), random.Next(12, 160));
        var (paddedHeight, paddedWidth) = ((resizedHeight + 31) / 32 * 32, (resizedWidth + 31) / 32 * 32);
        int Original(int resized, int most) => Math.Min(most, (int)(resized * (2 + (random.NextDouble() * 14))));
        return new ResizePlan(Original(resizedHeight, 1080), Original(resizedWidth, 1920), resizedHeight, resizedWidth, paddedHeight, paddedWidth);
    }

    private static ModelOutput Output(Random random, int queries, int classesWithNoObject, ResizePlan plan)
    {
        var output = new ModelOutput(queries, classesWithNoObject, plan.PaddedHeight / 4, plan.PaddedWidth / 4);
        var classLogits = output.ClassLogits;
        for (var i = 0; i < classLogits.Length; i++)
        {
            classLogits[i] = (float)((random.NextDouble() * 2) - 1);
        }

        // Close logits (every query in the running almost everywhere), or blobs with soft edges.
        var spread = random.Next(2) == 0 ? 0.5 : 8;
        var masks = output.MaskLogits;
        for (var i = 0; i < masks.Length; i++)
        {
            masks[i] = (float)((random.NextDouble() - 0.5) * spread);
        }

        // A query a hair from another: ties and near-ties at pixel level.
        if (queries > 1)
        {
            var size = output.MaskHeight * output.MaskWidth;
            var (a, b) = (random.Next(queries), random.Next(queries));
            for (var i = 0; i < size; i++)
            {
                masks[(b * size) + i] = random.Next(2) == 0 ? masks[(a * size) + i] : MathF.BitIncrement(masks[(a * size) + i]);
            }
        }

        return output;
    }

    private static void AssertSame(ReadOnlySpan<ushort> want, ReadOnlySpan<ushort> got, ResizePlan plan, string context)
    {
        for (var i = 0; i < want.Length; i++)
        {
            Assert.True(want[i] == got[i], $"pixel {i % plan.OriginalWidth},{i / plan.OriginalWidth}: dense {want[i]}, tiled {got[i]} ({context})");
        }
    }
}
