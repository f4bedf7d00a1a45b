using MaskFormer.Engine.Models;
using MaskFormer.Engine.Postprocessing;
using MaskFormer.Engine.Preprocessing;
using MaskFormer.Engine.Sessions;
using MaskFormer.Engine.Tests.Reference;

namespace MaskFormer.Engine.Tests.Postprocessing;

public sealed class SemanticInferenceTests
{
    // Pixels whose best two classes differ by less than this in float64 are ties as far as float32
    // arithmetic can tell; they are left out of the comparison, and counted to keep that honest.
    private const double TieMargin = 1e-5;

    public static TheoryData<int> Seeds => [.. Enumerable.Range(1, 40)];

    [Theory]
    [MemberData(nameof(Seeds))]
    public void Run_RandomLogits_MatchesFloat64Reference(int seed)
    {
        var random = new Random(seed);
        var config = Config(random);
        var plan = ResizePlan.For(random.Next(1, 90), random.Next(1, 90), config);
        var queries = random.Next(1, 13);
        var classes = random.Next(1, 10);
        using var output = RandomOutput(random, queries, classes + 1, plan);
        PoisonLabelBuffers(plan.OriginalWidth * plan.OriginalHeight);

        using var labels = SemanticInference.Run(output, plan);
        var (expected, margins) = ReferenceSemantic.Run(output, plan);

        Assert.Equal(plan.OriginalWidth, labels.Width);
        Assert.Equal(plan.OriginalHeight, labels.Height);
        var compared = 0;
        for (var i = 0; i < expected.Length; i++)
        {
            if (margins[i] > TieMargin)
            {
                Assert.True(expected[i] == labels.Values[i], $"pixel {i % labels.Width},{i / labels.Width}: expected {expected[i]}, got {labels.Values[i]} (margin {margins[i]:E2}) for plan {plan}");
                compared++;
            }
        }

        Assert.True(compared > expected.Length * 0.95, $"only {compared} of {expected.Length} pixels were clear of ties");
    }

    // The map's buffer comes from the pool uncleared: hand the pool buffers of that size full of an id no
    // class has, which a pixel left unwritten would keep.
    private static void PoisonLabelBuffers(int length)
    {
        var buffers = Enumerable.Range(0, 4).Select(_ => EngineArrayPool<ushort>.Shared.Rent(length)).ToArray();
        foreach (var buffer in buffers)
        {
            buffer.AsSpan().Fill(ushort.MaxValue);
            EngineArrayPool<ushort>.Shared.Return(buffer);
        }
    }

    [Fact]
    public void Run_OneQueryDominatesEachHalf_LabelsFollowTheMasks()
    {
        // Two queries: query 0 says class 1 on the left half, query 1 says class 2 on the right half.
        var plan = new ResizePlan(8, 8, 8, 8, 8, 8);
        using var output = new ModelOutput(2, 4, 2, 2);
        output.ClassLogits.Clear();
        output.ClassLogits[1] = 10f;
        output.ClassLogits[4 + 2] = 10f;
        float[] left = [8f, -8f, 8f, -8f];
        float[] right = [-8f, 8f, -8f, 8f];
        left.CopyTo(output.MaskLogits);
        right.CopyTo(output.MaskLogits[4..]);

        using var labels = SemanticInference.Run(output, plan);

        Assert.Equal(1, labels.Row(3)[0]);
        Assert.Equal(2, labels.Row(3)[7]);
    }

    internal static PreprocessorConfig Config(Random random) => random.Next(3) switch
    {
        0 => new PreprocessorConfig { ResizeMode = ResizeMode.ShortestEdge, ShortestEdge = random.Next(8, 64), LongestEdge = 128, SizeDivisor = 32, ImageMean = [0, 0, 0], ImageStd = [1, 1, 1] },
        1 => new PreprocessorConfig { ResizeMode = ResizeMode.Fixed, Height = random.Next(4, 70), Width = random.Next(4, 70), SizeDivisor = 16, ImageMean = [0, 0, 0], ImageStd = [1, 1, 1] },
        _ => new PreprocessorConfig { ResizeMode = ResizeMode.None, SizeDivisor = 4, ImageMean = [0, 0, 0], ImageStd = [1, 1, 1] },
    };

    internal static ModelOutput RandomOutput(Random random, int queries, int classesWithNoObject, ResizePlan plan)
    {
        var output = new ModelOutput(queries, classesWithNoObject, plan.PaddedHeight / 4, plan.PaddedWidth / 4);
        for (var i = 0; i < output.ClassLogits.Length; i++)
        {
            output.ClassLogits[i] = (float)((random.NextDouble() * 8) - 4);
        }

        for (var i = 0; i < output.MaskLogits.Length; i++)
        {
            output.MaskLogits[i] = (float)((random.NextDouble() * 12) - 6);
        }

        return output;
    }
}
