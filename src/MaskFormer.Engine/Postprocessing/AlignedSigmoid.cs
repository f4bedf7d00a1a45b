using System.Diagnostics;
using System.Numerics.Tensors;
using System.Runtime.CompilerServices;

namespace MaskFormer.Engine.Postprocessing;

/// <summary>
/// <c>TensorPrimitives.Sigmoid</c>, entered with the stack pointer at one chosen offset within a 64-byte
/// line. On the development machine (AMD EPYC, AVX-512) the same call took 0.7 or 2.2 ns a value
/// depending only on that offset (a 16-byte shift of the caller's stack flips it), most likely its
/// float64-widening exp spilling vectors to stack slots aligned to 16 bytes that then straddle cache
/// lines. Where the stack sits differs per call chain and per process (the main thread's stack is
/// randomised): that was most of the run-to-run spread of post-processing timings. Same results, bit
/// for bit: only the stack moves.
/// </summary>
/// <remarks>
/// Which offset is fast depends on the JIT's frame layout (runtime version, instruction set), so the
/// first call times the four 16-byte offsets on a short buffer (about a millisecond) and keeps the fastest.
/// </remarks>
internal static class AlignedSigmoid
{
    private const int CalibrationLength = 2048;
    private const int CalibrationCalls = 8;

    private static readonly Lock s_calibration = new();
    private static int s_offset = -1;

    /// <summary>The offset (0, 16, 32 or 48) the calls use; -1 before the first call.</summary>
    public static int Offset => Volatile.Read(ref s_offset);

    /// <summary>Writes the sigmoid of each of <paramref name="values"/> into <paramref name="sigmoids"/>, as <c>TensorPrimitives.Sigmoid</c>.</summary>
    public static void Compute(ReadOnlySpan<float> values, Span<float> sigmoids)
    {
        var offset = Volatile.Read(ref s_offset);
        Compute(values, sigmoids, offset >= 0 ? offset : Calibrate());
    }

    /// <summary>The same at a given offset (0, 16, 32 or 48): for the calibration and the tests.</summary>
    [MethodImpl(MethodImplOptions.NoInlining)]
    internal static void Compute(ReadOnlySpan<float> values, Span<float> sigmoids, int offset)
    {
        // The probe's address and this frame's size fix where the library's frames land below it, so
        // padding the stack until the probe sits at `offset` in its line places them the same way on
        // every call, from any caller and thread.
        byte probe = 0;
        var pad = ((int)Unsafe.ByteOffset(ref Unsafe.NullRef<byte>(), ref probe) - offset) & 48;
        Span<byte> padding = stackalloc byte[pad + 16];
        padding[0] = probe;
        TensorPrimitives.Sigmoid(values, sigmoids);
        if (padding[0] != probe)
        {
            // Never: a use of the padding after the call, so that it stays.
            throw new UnreachableException();
        }
    }

    // Once per process: threads that arrive while it runs wait for its answer rather than time the
    // offsets at the same moment, on the same cores, and disturb each other's timings.
    private static int Calibrate()
    {
        lock (s_calibration)
        {
            return s_offset >= 0 ? s_offset : TimeOffsets();
        }
    }

    private static int TimeOffsets()
    {
        var values = new float[CalibrationLength];
        var sigmoids = new float[CalibrationLength];
        for (var i = 0; i < values.Length; i++)
        {
            values[i] = ((i % 97) * 0.1f) - 5f;
        }

        var fastest = new long[4];
        Array.Fill(fastest, long.MaxValue);
        for (var round = 0; round < 3; round++)
        {
            for (var o = 0; o < fastest.Length; o++)
            {
                Compute(values, sigmoids, 16 * o);
                var start = Stopwatch.GetTimestamp();
                for (var call = 0; call < CalibrationCalls; call++)
                {
                    Compute(values, sigmoids, 16 * o);
                }

                fastest[o] = Math.Min(fastest[o], Stopwatch.GetTimestamp() - start);
            }
        }

        var offset = 16 * Array.IndexOf(fastest, fastest.Min());
        Volatile.Write(ref s_offset, offset);
        return offset;
    }
}
