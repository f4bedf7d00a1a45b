using System.Buffers;

namespace MaskFormer.Engine.Preprocessing;

/// <summary>
/// One axis of a bilinear resize with half-pixel centres and no antialiasing, the rule of PyTorch's
/// <c>F.interpolate(mode="bilinear", align_corners=False)</c>: source = (target + 0.5) · in/out − 0.5,
/// clamped at 0; the right neighbour is clamped at the last index.
/// </summary>
internal sealed class BilinearAxis : IDisposable
{
    private int[]? _lower;
    private float[]? _weights;

    public BilinearAxis(int inputSize, int outputSize)
    {
        OutputSize = outputSize;
        _lower = EngineArrayPool<int>.Shared.Rent(outputSize);
        _weights = EngineArrayPool<float>.Shared.Rent(outputSize);
        var scale = (float)inputSize / outputSize;
        for (var i = 0; i < outputSize; i++)
        {
            var source = Math.Max(((i + 0.5f) * scale) - 0.5f, 0f);
            var lower = Math.Min((int)source, inputSize - 1);
            _lower[i] = lower;
            _weights[i] = lower < inputSize - 1 ? source - lower : 0f;
        }
    }

    public int OutputSize { get; }

    /// <summary>Index of the lower neighbour for each output.</summary>
    public ReadOnlySpan<int> Lower => _lower.AsSpan(0, OutputSize);

    /// <summary>Weight of the upper neighbour (lower + 1) for each output; the lower gets 1 − weight.</summary>
    public ReadOnlySpan<float> Weights => _weights.AsSpan(0, OutputSize);

    public void Dispose()
    {
        if (_lower is not null)
        {
            EngineArrayPool<int>.Shared.Return(_lower);
            EngineArrayPool<float>.Shared.Return(_weights!);
            _lower = null;
            _weights = null;
        }
    }
}
