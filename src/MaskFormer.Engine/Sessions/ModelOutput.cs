using System.Buffers;

namespace MaskFormer.Engine.Sessions;

/// <summary>
/// One image's raw model outputs in pooled buffers (a single image's run writes straight into them, a
/// batch's outputs are copied out per image): class logits
/// [queries, classes + 1] and mask logits [queries, maskHeight, maskWidth]. Dispose to return them.
/// </summary>
public sealed class ModelOutput : IDisposable
{
    private float[]? _classLogits;
    private float[]? _maskLogits;

    /// <summary>Allocates pooled buffers for the given shape.</summary>
    public ModelOutput(int queries, int classesWithNoObject, int maskHeight, int maskWidth)
    {
        Queries = queries;
        ClassesWithNoObject = classesWithNoObject;
        MaskHeight = maskHeight;
        MaskWidth = maskWidth;
        _classLogits = EngineArrayPool<float>.Shared.Rent(queries * classesWithNoObject);
        _maskLogits = EngineArrayPool<float>.Shared.Rent(queries * maskHeight * maskWidth);
    }

    /// <summary>Number of queries.</summary>
    public int Queries { get; }

    /// <summary>Number of classes including the trailing "no object".</summary>
    public int ClassesWithNoObject { get; }

    /// <summary>Mask logits height (padded input height / 4 for MaskFormer).</summary>
    public int MaskHeight { get; }

    /// <summary>Mask logits width.</summary>
    public int MaskWidth { get; }

    /// <summary>[queries, classes + 1], row-major.</summary>
    public Span<float> ClassLogits => (_classLogits ?? throw new ObjectDisposedException(nameof(ModelOutput))).AsSpan(0, Queries * ClassesWithNoObject);

    /// <summary>[queries, maskHeight, maskWidth], row-major.</summary>
    public Span<float> MaskLogits => (_maskLogits ?? throw new ObjectDisposedException(nameof(ModelOutput))).AsSpan(0, Queries * MaskHeight * MaskWidth);

    /// <summary>The class logits as memory, for ONNX Runtime to write into.</summary>
    internal Memory<float> ClassLogitsMemory => (_classLogits ?? throw new ObjectDisposedException(nameof(ModelOutput))).AsMemory(0, Queries * ClassesWithNoObject);

    /// <summary>The mask logits as memory, for ONNX Runtime to write into.</summary>
    internal Memory<float> MaskLogitsMemory => (_maskLogits ?? throw new ObjectDisposedException(nameof(ModelOutput))).AsMemory(0, Queries * MaskHeight * MaskWidth);

    /// <inheritdoc />
    public void Dispose()
    {
        var classLogits = Interlocked.Exchange(ref _classLogits, null);
        if (classLogits is not null)
        {
            EngineArrayPool<float>.Shared.Return(classLogits);
            EngineArrayPool<float>.Shared.Return(_maskLogits!);
            _maskLogits = null;
        }
    }
}
