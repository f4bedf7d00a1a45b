using System.Buffers;

namespace MaskFormer.Engine.Preprocessing;

/// <summary>
/// One axis of Pillow's <c>Image.resize(..., BILINEAR)</c> on 8-bit images: a triangle filter whose
/// support widens with the scale when shrinking (so shrinking antialiases), coefficients normalised
/// and rounded to 22-bit fixed point, as Pillow's <c>precompute_coeffs</c> and
/// <c>normalize_coeffs_8bpc</c> (libImaging/Resample.c) compute them. HuggingFace image processors and
/// detectron2's <c>ResizeTransform</c> resize 8-bit images this way.
/// </summary>
internal sealed class PilResampleAxis : IDisposable
{
    /// <summary>Pillow's PRECISION_BITS for 8-bit channels: 32 − 8 − 2.</summary>
    internal const int PrecisionBits = 22;

    private int[]? _starts;
    private int[]? _counts;
    private int[]? _coefficients;

    public PilResampleAxis(int inputSize, int outputSize)
    {
        ArgumentOutOfRangeException.ThrowIfLessThan(inputSize, 1);
        ArgumentOutOfRangeException.ThrowIfLessThan(outputSize, 1);
        InputSize = inputSize;
        OutputSize = outputSize;

        // Pillow takes the box edges as C floats, so (in1 - in0) is a float before the division.
        var scale = (double)(float)inputSize / outputSize;
        var filterScale = Math.Max(scale, 1.0);
        var support = filterScale; // the bilinear filter's support is 1
        KernelSize = ((int)Math.Ceiling(support) * 2) + 1;

        _starts = EngineArrayPool<int>.Shared.Rent(outputSize);
        _counts = EngineArrayPool<int>.Shared.Rent(outputSize);
        _coefficients = EngineArrayPool<int>.Shared.Rent(outputSize * KernelSize);
        Span<double> weights = KernelSize <= 256 ? stackalloc double[KernelSize] : new double[KernelSize];
        var inverseFilterScale = 1.0 / filterScale;

        for (var output = 0; output < outputSize; output++)
        {
            var center = (output + 0.5) * scale;
            var min = Math.Max((int)(center - support + 0.5), 0);
            var max = Math.Min((int)(center + support + 0.5), inputSize) - min;
            var total = 0.0;
            for (var x = 0; x < max; x++)
            {
                var w = Triangle((x + min - center + 0.5) * inverseFilterScale);
                weights[x] = w;
                total += w;
            }

            var coefficients = _coefficients.AsSpan(output * KernelSize, KernelSize);
            coefficients.Clear();
            for (var x = 0; x < max; x++)
            {
                var k = total != 0.0 ? weights[x] / total : weights[x];
                coefficients[x] = k < 0
                    ? (int)(-0.5 + (k * (1 << PrecisionBits)))
                    : (int)(0.5 + (k * (1 << PrecisionBits)));
            }

            _starts[output] = min;
            _counts[output] = Math.Max(max, 0);
        }
    }

    public int InputSize { get; }

    public int OutputSize { get; }

    public int KernelSize { get; }

    /// <summary>First input index each output reads.</summary>
    public ReadOnlySpan<int> Starts => _starts.AsSpan(0, OutputSize);

    /// <summary>How many inputs each output reads.</summary>
    public ReadOnlySpan<int> Counts => _counts.AsSpan(0, OutputSize);

    /// <summary>The fixed-point coefficients of output <paramref name="output"/>.</summary>
    public ReadOnlySpan<int> Coefficients(int output) => _coefficients.AsSpan(output * KernelSize, Counts[output]);

    /// <summary>Pillow's <c>clip8</c>: the fixed-point sum rounded down to 8 bits and clamped.</summary>
    public static byte Clip8(int sum) => (byte)Math.Clamp(sum >> PrecisionBits, 0, 255);

    public void Dispose()
    {
        if (_starts is not null)
        {
            EngineArrayPool<int>.Shared.Return(_starts);
            EngineArrayPool<int>.Shared.Return(_counts!);
            EngineArrayPool<int>.Shared.Return(_coefficients!);
            _starts = null;
            _counts = null;
            _coefficients = null;
        }
    }

    private static double Triangle(double x)
    {
        x = Math.Abs(x);
        return x < 1.0 ? 1.0 - x : 0.0;
    }
}
