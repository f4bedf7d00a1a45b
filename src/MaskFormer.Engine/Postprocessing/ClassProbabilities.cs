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
            TensorPrimitives.SoftMax(output.ClassLogits.Slice(q * classes, classes), probabilities.AsSpan(q * classes, classes));
        }

        return probabilities;
    }
}
