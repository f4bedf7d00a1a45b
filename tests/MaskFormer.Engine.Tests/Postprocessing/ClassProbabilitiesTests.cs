using MaskFormer.Engine.Postprocessing;
using MaskFormer.Engine.Sessions;
using MaskFormer.Engine.Tests.Reference;

namespace MaskFormer.Engine.Tests.Postprocessing;

public sealed class ClassProbabilitiesTests
{
    // Logits past float32's exp range (about 88) and far below it: PyTorch's softmax, which detectron2
    // uses, shifts by the largest logit and gives probabilities; exponentiating them as they are gives NaN.
    [Theory]
    [InlineData(100f, 99f, 0f)]
    [InlineData(500f, -500f, 499.5f)]
    [InlineData(-200f, -201f, -300f)]
    [InlineData(3f, 1f, -2f)]
    public void Softmax_AnyLogitRange_MatchesFloat64Reference(float a, float b, float c)
    {
        using var output = new ModelOutput(2, 3, 1, 1);
        float[] logits = [a, b, c, c, a, b];
        logits.CopyTo(output.ClassLogits);

        var probabilities = ClassProbabilities.Softmax(output);

        for (var q = 0; q < 2; q++)
        {
            var want = ReferenceMath.Softmax(logits.AsSpan(q * 3, 3));
            for (var k = 0; k < 3; k++)
            {
                Assert.Equal(want[k], probabilities[(q * 3) + k], 1e-6);
            }
        }
    }
}
