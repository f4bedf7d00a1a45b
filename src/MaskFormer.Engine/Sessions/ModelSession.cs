using System.Buffers;
using System.Collections.Concurrent;
using System.Numerics.Tensors;
using System.Runtime.InteropServices;
using MaskFormer.Engine.Preprocessing;
using Microsoft.ML.OnnxRuntime;
using Microsoft.ML.OnnxRuntime.Tensors;

namespace MaskFormer.Engine.Sessions;

/// <summary>
/// One ONNX Runtime session of a MaskFormer export: input <c>pixel_values</c> [batch, 3, height, width],
/// outputs <c>class_queries_logits</c> [batch, queries, classes + 1] and <c>masks_queries_logits</c>
/// [batch, queries, height / 4, width / 4]. Not thread-safe: one worker owns it.
/// </summary>
internal sealed class ModelSession : IModelSession
{
    internal const string InputName = "pixel_values";
    internal const string ClassOutputName = "class_queries_logits";
    internal const string MaskOutputName = "masks_queries_logits";

    private static readonly string[] s_outputNames = [ClassOutputName, MaskOutputName];

    // One ONNX Runtime session per batch size in _batchSizes (ascending), or one session that takes every
    // batch as it is when _batchSizes is empty. Each padded session sees one input shape per image size.
    private readonly InferenceSession[] _sessions;
    private readonly int[] _batchSizes;
    private readonly RunOptions _runOptions = new();

    // Output shapes per padded input size, learnt from the first run at that size: later single-image
    // runs write straight into the pooled buffers the post-processing reads (no copy out of ORT's tensors).
    private readonly ConcurrentDictionary<(int Height, int Width), (int Queries, int Classes, int MaskHeight, int MaskWidth)> _outputShapes = new();

    // float16 exports (transformers.js' model_fp16.onnx) take and give float16 tensors; the engine
    // works in float32 and converts at the session's edge.
    private readonly bool _halfInput;

    /// <summary>A session that runs every batch as it comes.</summary>
    public ModelSession(InferenceSession session, SessionPlacement placement, bool shrinkArena = false)
        : this([session], [], placement, shrinkArena)
    {
    }

    /// <summary>
    /// A session that pads every batch to the smallest of <paramref name="batchSizes"/> (ascending) that
    /// holds it and runs it on that size's own ONNX Runtime session (<paramref name="sessions"/>, one per
    /// size); empty sizes and one session: every batch as it comes. Owns the sessions once constructed (a
    /// refused argument leaves them to the caller).
    /// </summary>
    public ModelSession(IReadOnlyList<InferenceSession> sessions, IReadOnlyList<int> batchSizes, SessionPlacement placement, bool shrinkArena = false)
    {
        if (sessions.Count == 0 || (batchSizes.Count > 0 ? batchSizes.Count != sessions.Count : sessions.Count != 1))
        {
            throw new ArgumentException($"{sessions.Count} session(s) for {batchSizes.Count} batch size(s): one per size, or one for batches as they come.", nameof(sessions));
        }

        for (var i = 0; i < batchSizes.Count; i++)
        {
            if (batchSizes[i] < 1 || (i > 0 && batchSizes[i] <= batchSizes[i - 1]))
            {
                throw new ArgumentException($"Batch sizes must be positive and ascending (were {string.Join(", ", batchSizes)}).", nameof(batchSizes));
            }
        }

        _sessions = [.. sessions];
        _batchSizes = [.. batchSizes];
        Placement = placement;
        if (shrinkArena)
        {
            // The CPU arena hands back, at the end of each run, the chunks the run no longer uses.
            _runOptions.AddRunConfigEntry("memory.enable_memory_arena_shrinkage", "cpu:0");
        }

        _halfInput = sessions[0].InputMetadata.TryGetValue(InputName, out var metadata) && metadata.ElementDataType == TensorElementType.Float16;
    }

    public SessionPlacement Placement { get; }

    /// <summary>The batch sizes runs are padded to, ascending, each on its own ONNX Runtime session; empty when a run takes the batch as it is (see InferenceOptions.PadCudaBatches).</summary>
    public IReadOnlyList<int> BatchSizes => _batchSizes;

    /// <summary>The last run: which ONNX Runtime session ran it (index into the batch sizes) and its batch size, padding included (tests).</summary>
    internal (int Session, int Batch) LastRun { get; private set; }

    /// <summary>Runs the model on inputs that share one padded size and returns one output each.</summary>
    public ModelOutput[] Run(IReadOnlyList<ModelInput> inputs)
    {
        var plan = inputs[0].Plan;
        var itemLength = inputs[0].Length;
        var (index, runBatch) = SessionFor(inputs.Count);
        var session = _sessions[index];
        LastRun = (index, runBatch);
        var runLength = checked(itemLength * runBatch);
        long[] shape = [runBatch, 3, plan.PaddedHeight, plan.PaddedWidth];
        float[]? batchBuffer = null;
        try
        {
            Memory<float> memory;
            if (runBatch == 1)
            {
                memory = inputs[0].TensorMemory;
            }
            else
            {
                batchBuffer = EngineArrayPool<float>.Shared.Rent(runLength);
                for (var i = 0; i < inputs.Count; i++)
                {
                    inputs[i].Tensor.CopyTo(batchBuffer.AsSpan(i * itemLength, itemLength));
                }

                // The padding images: zeros (the normalised mean colour); their outputs are dropped.
                batchBuffer.AsSpan(inputs.Count * itemLength, (runBatch - inputs.Count) * itemLength).Clear();
                memory = batchBuffer.AsMemory(0, runLength);
            }

            if (_halfInput)
            {
                return RunHalf(session, memory, shape, inputs.Count);
            }

            using var input = OrtValue.CreateTensorValueFromMemory(OrtMemoryInfo.DefaultInstance, memory, shape);
            if (runBatch == 1 && _outputShapes.TryGetValue((plan.PaddedHeight, plan.PaddedWidth), out var known))
            {
                return [RunInto(session, input, known)];
            }

            using var results = session.Run(_runOptions, [InputName], [input], s_outputNames);
            var outputs = SplitOutputs(results[0], results[1], runBatch, inputs.Count);
            _outputShapes.TryAdd((plan.PaddedHeight, plan.PaddedWidth), (outputs[0].Queries, outputs[0].ClassesWithNoObject, outputs[0].MaskHeight, outputs[0].MaskWidth));
            return outputs;
        }
        finally
        {
            if (batchBuffer is not null)
            {
                EngineArrayPool<float>.Shared.Return(batchBuffer);
            }
        }
    }

    /// <summary>
    /// The session for a batch of <paramref name="count"/> and the size it runs at: the smallest padded size
    /// that holds it; a batch larger than every size (the scheduler makes none) runs as it is on the largest.
    /// </summary>
    private (int Index, int Batch) SessionFor(int count)
    {
        for (var i = 0; i < _batchSizes.Length; i++)
        {
            if (_batchSizes[i] >= count)
            {
                return (i, _batchSizes[i]);
            }
        }

        return (_sessions.Length - 1, count);
    }

    private ModelOutput RunInto(InferenceSession session, OrtValue input, (int Queries, int Classes, int MaskHeight, int MaskWidth) shape)
    {
        var output = new ModelOutput(shape.Queries, shape.Classes, shape.MaskHeight, shape.MaskWidth);
        try
        {
            using var classValue = OrtValue.CreateTensorValueFromMemory(OrtMemoryInfo.DefaultInstance, output.ClassLogitsMemory, [1, shape.Queries, shape.Classes]);
            using var maskValue = OrtValue.CreateTensorValueFromMemory(OrtMemoryInfo.DefaultInstance, output.MaskLogitsMemory, [1, shape.Queries, shape.MaskHeight, shape.MaskWidth]);
            session.Run(_runOptions, [InputName], [input], s_outputNames, [classValue, maskValue]);
            return output;
        }
        catch
        {
            output.Dispose();
            throw;
        }
    }

    private ModelOutput[] RunHalf(InferenceSession session, Memory<float> memory, long[] shape, int kept)
    {
        var half = ArrayPool<Float16>.Shared.Rent(memory.Length);
        try
        {
            TensorPrimitives.ConvertToHalf(memory.Span, MemoryMarshal.Cast<Float16, Half>(half.AsSpan(0, memory.Length)));
            using var input = OrtValue.CreateTensorValueFromMemory(OrtMemoryInfo.DefaultInstance, half.AsMemory(0, memory.Length), shape);
            using var results = session.Run(_runOptions, [InputName], [input], s_outputNames);
            return SplitOutputs(results[0], results[1], (int)shape[0], kept);
        }
        finally
        {
            ArrayPool<Float16>.Shared.Return(half);
        }
    }

    private static void CopyAsSingle(OrtValue value, int offset, Span<float> target)
    {
        if (value.GetTensorTypeAndShape().ElementDataType == TensorElementType.Float16)
        {
            var source = MemoryMarshal.Cast<Float16, Half>(value.GetTensorDataAsSpan<Float16>().Slice(offset, target.Length));
            TensorPrimitives.ConvertToSingle(source, target);
        }
        else
        {
            value.GetTensorDataAsSpan<float>().Slice(offset, target.Length).CopyTo(target);
        }
    }

    /// <summary>The outputs of the first <paramref name="kept"/> images of a run of <paramref name="batch"/>.</summary>
    private static ModelOutput[] SplitOutputs(OrtValue classValue, OrtValue maskValue, int batch, int kept)
    {
        var classShape = classValue.GetTensorTypeAndShape().Shape;
        var maskShape = maskValue.GetTensorTypeAndShape().Shape;
        if (classShape.Length != 3 || maskShape.Length != 4 || classShape[0] != batch || maskShape[0] != batch || classShape[1] != maskShape[1])
        {
            throw new InvalidOperationException($"The model returned shapes [{string.Join(',', classShape)}] and [{string.Join(',', maskShape)}] for a batch of {batch}; expected [batch, queries, classes+1] and [batch, queries, h, w].");
        }

        var (queries, classes, maskHeight, maskWidth) = ((int)classShape[1], (int)classShape[2], (int)maskShape[2], (int)maskShape[3]);
        var outputs = new ModelOutput[kept];
        for (var i = 0; i < kept; i++)
        {
            var output = new ModelOutput(queries, classes, maskHeight, maskWidth);
            CopyAsSingle(classValue, i * output.ClassLogits.Length, output.ClassLogits);
            CopyAsSingle(maskValue, i * output.MaskLogits.Length, output.MaskLogits);
            outputs[i] = output;
        }

        return outputs;
    }

    /// <summary>ONNX Runtime checks the flag between nodes: the run ends with an OnnxRuntimeException.</summary>
    public void Terminate() => _runOptions.Terminate = true;

    public void Dispose()
    {
        _runOptions.Dispose();
        foreach (var session in _sessions)
        {
            session.Dispose();
        }
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

    /// <summary>ONNX Runtime's intra-op threads in the session.</summary>
    public int IntraOpThreads { get; init; }
}
