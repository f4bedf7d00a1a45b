using System.Buffers;

namespace MaskFormer.Engine.Preprocessing;

/// <summary>
/// One image's model input: a pooled CHW float32 tensor at the padded size, and the sizes needed to
/// map results back to the original image. Dispose to return the buffer.
/// </summary>
public sealed class ModelInput : IDisposable
{
    private float[]? _tensor;

    internal ModelInput(ResizePlan plan)
    {
        Plan = plan;
        _tensor = EngineArrayPool<float>.Shared.Rent(Length);
    }

    /// <summary>The sizes the image goes through.</summary>
    public ResizePlan Plan { get; }

    /// <summary>Number of floats: 3 × padded height × padded width.</summary>
    public int Length => 3 * Plan.PaddedHeight * Plan.PaddedWidth;

    /// <summary>The tensor, channels first (RGB), rows top to bottom.</summary>
    public Span<float> Tensor => (_tensor ?? throw new ObjectDisposedException(nameof(ModelInput))).AsSpan(0, Length);

    /// <summary>The tensor as memory, for handing to ONNX Runtime without a copy.</summary>
    public Memory<float> TensorMemory => (_tensor ?? throw new ObjectDisposedException(nameof(ModelInput))).AsMemory(0, Length);

    /// <inheritdoc />
    public void Dispose()
    {
        var tensor = Interlocked.Exchange(ref _tensor, null);
        if (tensor is not null)
        {
            EngineArrayPool<float>.Shared.Return(tensor);
        }
    }
}
