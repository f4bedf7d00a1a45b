using System.Buffers;
using MaskFormer.Engine.Preprocessing;
using Microsoft.ML.OnnxRuntime;

namespace MaskFormer.Engine.Sessions;

/// <summary>
/// One ONNX Runtime session of a MaskFormer export: input <c>pixel_values</c> [batch, 3, height, width],
/// outputs <c>class_queries_logits</c> [batch, queries, classes + 1] and <c>masks_queries_logits</c>
/// [batch, queries, height / 4, width / 4]. Not thread-safe: one worker owns it.
/// </summary>
internal sealed class ModelSession : IDisposable
{
    internal const string InputName = "pixel_values";
    internal const string ClassOutputName = "class_queries_logits";
    internal const string MaskOutputName = "masks_queries_logits";

    private static readonly string[] s_outputNames = [ClassOutputName, MaskOutputName];
    private readonly InferenceSession _session;
    private readonly RunOptions _runOptions = new();

    public ModelSession(InferenceSession session, SessionPlacement placement)
    {
        _session = session;
        Placement = placement;
    }

    public SessionPlacement Placement { get; }

    /// <summary>Runs the model on inputs that share one padded size and returns one output each.</summary>
    public ModelOutput[] Run(IReadOnlyList<ModelInput> inputs)
    {
        var plan = inputs[0].Plan;
        var itemLength = inputs[0].Length;
        long[] shape = [inputs.Count, 3, plan.PaddedHeight, plan.PaddedWidth];
        float[]? batchBuffer = null;
        try
        {
            Memory<float> memory;
            if (inputs.Count == 1)
            {
                memory = inputs[0].TensorMemory;
            }
            else
            {
                batchBuffer = ArrayPool<float>.Shared.Rent(itemLength * inputs.Count);
                for (var i = 0; i < inputs.Count; i++)
                {
                    inputs[i].Tensor.CopyTo(batchBuffer.AsSpan(i * itemLength, itemLength));
                }

                memory = batchBuffer.AsMemory(0, itemLength * inputs.Count);
            }

            using var input = OrtValue.CreateTensorValueFromMemory(OrtMemoryInfo.DefaultInstance, memory, shape);
            using var results = _session.Run(_runOptions, [InputName], [input], s_outputNames);
            return SplitOutputs(results[0], results[1], inputs.Count);
        }
        finally
        {
            if (batchBuffer is not null)
            {
                ArrayPool<float>.Shared.Return(batchBuffer);
            }
        }
    }

    private static ModelOutput[] SplitOutputs(OrtValue classValue, OrtValue maskValue, int batch)
    {
        var classShape = classValue.GetTensorTypeAndShape().Shape;
        var maskShape = maskValue.GetTensorTypeAndShape().Shape;
        if (classShape.Length != 3 || maskShape.Length != 4 || classShape[0] != batch || maskShape[0] != batch || classShape[1] != maskShape[1])
        {
            throw new InvalidOperationException($"The model returned shapes [{string.Join(',', classShape)}] and [{string.Join(',', maskShape)}] for a batch of {batch}; expected [batch, queries, classes+1] and [batch, queries, h, w].");
        }

        var (queries, classes, maskHeight, maskWidth) = ((int)classShape[1], (int)classShape[2], (int)maskShape[2], (int)maskShape[3]);
        var classData = classValue.GetTensorDataAsSpan<float>();
        var maskData = maskValue.GetTensorDataAsSpan<float>();
        var outputs = new ModelOutput[batch];
        for (var i = 0; i < batch; i++)
        {
            var output = new ModelOutput(queries, classes, maskHeight, maskWidth);
            classData.Slice(i * output.ClassLogits.Length, output.ClassLogits.Length).CopyTo(output.ClassLogits);
            maskData.Slice(i * output.MaskLogits.Length, output.MaskLogits.Length).CopyTo(output.MaskLogits);
            outputs[i] = output;
        }

        return outputs;
    }

    public void Dispose()
    {
        _runOptions.Dispose();
        _session.Dispose();
    }
}

/// <summary>Where a session runs, and whether that is where it was asked to run.</summary>
/// <param name="Requested">The configured device.</param>
/// <param name="ExecutionProvider">The provider in use: "CUDAExecutionProvider" or "CPUExecutionProvider".</param>
/// <param name="FallbackReason">Why the configured device could not be used, or null.</param>
public sealed record SessionPlacement(DeviceSpec Requested, string ExecutionProvider, string? FallbackReason)
{
    /// <summary>True when a CUDA device was asked for and the CPU is used instead.</summary>
    public bool FellBackToCpu => FallbackReason is not null;

    /// <summary>The device actually used.</summary>
    public string ActualDevice => FellBackToCpu || !Requested.IsCuda ? "cpu" : Requested.ToString();
}
