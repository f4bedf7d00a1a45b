using System.Numerics.Tensors;
using MaskFormer.Engine.Sessions;

namespace MaskFormer.Engine.Postprocessing;

/// <summary>Per-query softmax over the K + 1 classes (the last is "no object").</summary>
internal static class ClassProbabilities
{
    /// <summary>Returns [queries, K + 1] probabilities.</summary>
    public static float[] Softmax(ModelOutput output)
    {
        var classes = output.ClassesWithNoObject;
        var probabilities = new float[output.Queries * classes];
        for (var q = 0; q < output.Queries; q++)
        {
            // Shifted by the row's largest logit, as PyTorch's softmax is: TensorPrimitives.SoftMax
            // exponentiates the logits as they are, and a logit above about 88 overflows float32 and
            // makes the whole row NaN where detectron2 gets probabilities.
            var row = probabilities.AsSpan(q * classes, classes);
            var logits = output.ClassLogits.Slice(q * classes, classes);
            TensorPrimitives.Subtract(logits, TensorPrimitives.Max(logits), row);
            TensorPrimitives.SoftMax(row, row);
        }

        return probabilities;
    }
}
