using System.Numerics.Tensors;
using System.Runtime.CompilerServices;
using System.Runtime.InteropServices;
using System.Runtime.Intrinsics;
using MaskFormer.Engine.Preprocessing;
using MaskFormer.Engine.Sessions;

namespace MaskFormer.Engine.Postprocessing;

/// <summary>
/// Produces rows of mask logits at the original image size, as detectron2's reference would after
/// <c>F.interpolate</c> to the padded size, cropping and <c>sem_seg_postprocess</c>, one output row at
/// a time so no full-resolution tensor of all queries is ever held.
/// </summary>
internal sealed class MaskUpsampler
{
    private readonly ModelOutput _output;
    private readonly ComposedAxis _rows;
    private readonly ComposedAxis _columns;
    private readonly AxisGeometry _rowGeometry;
    private readonly AxisGeometry _columnGeometry;

    public MaskUpsampler(ModelOutput output, ResizePlan plan)
    {
        if (output.MaskHeight * 4 != plan.PaddedHeight || output.MaskWidth * 4 != plan.PaddedWidth)
        {
            throw new InvalidOperationException($"Mask logits are {output.MaskHeight}x{output.MaskWidth}, expected a quarter of the padded input {plan.PaddedHeight}x{plan.PaddedWidth}.");
        }

        _output = output;
        _rowGeometry = AxisGeometry.For(output.MaskHeight, plan.PaddedHeight, plan.ResizedHeight, plan.OriginalHeight);
        _columnGeometry = AxisGeometry.For(output.MaskWidth, plan.PaddedWidth, plan.ResizedWidth, plan.OriginalWidth);
        _rows = _rowGeometry.Axis;
        _columns = _columnGeometry.Axis;
    }

    /// <summary>The rows' map with its tiles and blocks, shared by every image of this size.</summary>
    public AxisGeometry RowGeometry => _rowGeometry;

    /// <summary>The columns' map with its tiles and blocks, shared by every image of this size.</summary>
    public AxisGeometry ColumnGeometry => _columnGeometry;

    public int Width => _columns.OutputSize;

    public int Height => _rows.OutputSize;

    /// <summary>Floats of scratch space <see cref="ComputeRow"/> needs.</summary>
    public int ScratchLength => _output.MaskWidth;

    public ModelOutput Output => _output;

    public ComposedAxis Rows => _rows;

    public ComposedAxis Columns => _columns;

    /// <summary>Writes query <paramref name="query"/>'s mask logits for output row <paramref name="y"/>.</summary>
    public void ComputeRow(int query, int y, Span<float> row, Span<float> scratch)
    {
        var blended = BlendRow(query, y, scratch);
        var indices = _columns.Indices;
        var weights = _columns.Weights;
        for (var x = 0; x < row.Length; x++)
        {
            row[x] = Pixel(blended, x, indices, weights);
        }
    }

    /// <summary>
    /// Writes the logits of output row <paramref name="y"/> at columns <paramref name="xs"/> only,
    /// bit for bit what <see cref="ComputeRow"/> gives there. Runs of consecutive columns are
    /// computed eight at a time with the same float32 operations in the same order.
    /// </summary>
    public void ComputePixels(int query, int y, ReadOnlySpan<int> xs, Span<float> values, Span<float> scratch)
    {
        var blended = BlendRow(query, y, scratch);
        var k = 0;
        while (k < xs.Length)
        {
            var start = k;
            k++;
            while (k < xs.Length && xs[k] == xs[k - 1] + 1)
            {
                k++;
            }

            Interpolate(blended, xs[start], values.Slice(start, k - start));
        }
    }

    /// <summary>
    /// Writes query <paramref name="query"/>'s logits on row <paramref name="gridRow"/> of the resized
    /// grid (the crop of the first resize), at every grid column. Each output pixel is a convex blend
    /// of the 2×2 grid points around it, so these bound it.
    /// </summary>
    public void ComputeGridRow(int query, int gridRow, Span<float> values, Span<float> scratch) =>
        GridPoints(BlendGridRow(query, gridRow, scratch), 0, values);

    /// <summary>
    /// Grid columns [<paramref name="from"/>, from + values.Length) of a blended row (<see cref="BlendGridRow"/>,
    /// or <see cref="BlendRow"/> for the grid values under an output row), as <see cref="GridPoint"/> gives them.
    /// </summary>
    public void GridPoints(ReadOnlySpan<float> blended, int from, Span<float> values)
    {
        ArgumentOutOfRangeException.ThrowIfNegative(from);
        var taps = new GridTaps(_columns, blended, from + values.Length, _output.MaskWidth);
        var c = 0;

        // Eight grid columns at a time from a window of eight mask columns (ComposedAxis.GridWindowStarts).
        if (Vector256.IsHardwareAccelerated)
        {
            ref var target = ref MemoryMarshal.GetReference(values);
            for (; c + Vector256<float>.Count <= values.Length; c += Vector256<float>.Count)
            {
                var start = Unsafe.Add(ref taps.Windows, from + c);
                if (start < 0)
                {
                    for (var k = c; k < c + Vector256<float>.Count; k++)
                    {
                        values[k] = GridPoint(blended, from + k);
                    }

                    continue;
                }

                GridVector(taps, start, from + c).StoreUnsafe(ref target, (nuint)c);
            }
        }

        for (; c < values.Length; c++)
        {
            values[c] = GridPoint(blended, from + c);
        }
    }

    /// <summary>
    /// Folds query <paramref name="query"/>'s logits on grid row <paramref name="gridRow"/> (the values
    /// <see cref="ComputeGridRow"/> writes, bit for bit) into running extremes per grid column: they
    /// replace <paramref name="low"/> and <paramref name="high"/> when <paramref name="first"/>, else
    /// lower and raise them by <typeparamref name="TMin"/> and <typeparamref name="TMax"/>.
    /// Each vector of eight grid columns reads both its taps from one window of eight mask values
    /// (<see cref="ComposedAxis.GridWindowStarts"/>), and the row is never stored.
    /// </summary>
    public void FoldGridRow<TMin, TMax>(int query, int gridRow, Span<float> low, Span<float> high, bool first, Span<float> scratch)
        where TMin : IExtreme
        where TMax : IExtreme
    {
        var blended = BlendGridRow(query, gridRow, scratch);
        ArgumentOutOfRangeException.ThrowIfLessThan(high.Length, low.Length, nameof(high));
        var taps = new GridTaps(_columns, blended, low.Length, _output.MaskWidth);
        var c = 0;
        if (Vector256.IsHardwareAccelerated)
        {
            ref var lows = ref MemoryMarshal.GetReference(low);
            ref var highs = ref MemoryMarshal.GetReference(high);
            for (; c + Vector256<float>.Count <= low.Length; c += Vector256<float>.Count)
            {
                var start = Unsafe.Add(ref taps.Windows, c);
                if (start < 0)
                {
                    for (var k = c; k < c + Vector256<float>.Count; k++)
                    {
                        FoldGridPoint<TMin, TMax>(blended, k, low, high, first);
                    }

                    continue;
                }

                var values = GridVector(taps, start, c);
                var at = (nuint)c;
                if (first)
                {
                    values.StoreUnsafe(ref lows, at);
                    values.StoreUnsafe(ref highs, at);
                }
                else
                {
                    TMin.Of(Vector256.LoadUnsafe(ref lows, at), values).StoreUnsafe(ref lows, at);
                    TMax.Of(Vector256.LoadUnsafe(ref highs, at), values).StoreUnsafe(ref highs, at);
                }
            }
        }

        for (; c < low.Length; c++)
        {
            FoldGridPoint<TMin, TMax>(blended, c, low, high, first);
        }
    }

    /// <summary>One query's mask row at resized-grid row <paramref name="gridRow"/>: its two mask rows blended at the row's weight, in scratch.</summary>
    public Span<float> BlendGridRow(int query, int gridRow, Span<float> scratch)
    {
        var maskWidth = _output.MaskWidth;
        var plane = Plane(query);
        var blended = scratch[..maskWidth];
        var lower = _rows.GridLower[gridRow];
        var weight = _rows.GridWeights[gridRow];
        var upper = Math.Min(lower + 1, _output.MaskHeight - 1);
        var low = plane.Slice(lower * maskWidth, maskWidth);
        var high = plane.Slice(upper * maskWidth, maskWidth);

        // TensorPrimitives.Multiply, then MultiplyAdd ((x * y) + z, not fused), written out: on a row
        // of a few dozen values their calls cost more than the arithmetic.
        var c = 0;
        if (Vector256.IsHardwareAccelerated)
        {
            for (; c + Vector256<float>.Count <= maskWidth; c += Vector256<float>.Count)
            {
                var first = Vector256.Create(low.Slice(c, Vector256<float>.Count)) * (1f - weight);
                ((Vector256.Create(high.Slice(c, Vector256<float>.Count)) * weight) + first).CopyTo(blended.Slice(c, Vector256<float>.Count));
            }
        }

        for (; c < maskWidth; c++)
        {
            blended[c] = (high[c] * weight) + (low[c] * (1f - weight));
        }

        return blended;
    }

    /// <summary>One query's mask logits, [maskHeight, maskWidth].</summary>
    public ReadOnlySpan<float> Plane(int query) => _output.MaskLogits.Slice(query * _output.MaskHeight * _output.MaskWidth, _output.MaskHeight * _output.MaskWidth);

    /// <summary>
    /// Output columns [<paramref name="x0"/>, x0 + values.Length) from a row of <see cref="BlendRow"/>,
    /// bit for bit what <see cref="ComputeRow"/> gives there: eight columns at a time read their four
    /// taps from one window of eight mask values (<see cref="ComposedAxis.WindowStarts"/>) with the same
    /// float32 operations in the same order; columns without a window are computed one by one.
    /// </summary>
    public void Interpolate(ReadOnlySpan<float> blended, int x0, Span<float> values) => Interpolate<AllTaps>(blended, x0, values);

    /// <summary>
    /// <see cref="Interpolate"/> with the vectors' last two taps left out, for a column axis whose last
    /// two taps weigh nothing (<see cref="ComposedAxis.TwoTaps"/>: the second resize keeps the grid) and
    /// finite blended rows: a zero-weight tap adds ±0, which changes only the sign of a zero result, so the
    /// values are <see cref="ComputeRow"/>'s up to that sign, at half the multiply-shuffle-adds. For
    /// callers that only compare values with 0 and take sigmoids (the same at +0 and −0).
    /// </summary>
    public void InterpolateTwoTaps(ReadOnlySpan<float> blended, int x0, Span<float> values) => Interpolate<FirstTwoTaps>(blended, x0, values);

    private void Interpolate<TTaps>(ReadOnlySpan<float> blended, int x0, Span<float> values)
        where TTaps : ITapCount
    {
        // Checked once here, so that the vectors' loads and stores go unchecked: every window lies within
        // a blended row (ComposedAxis.FillWindows) and every column within the axis.
        ArgumentOutOfRangeException.ThrowIfNegative(x0);
        ArgumentOutOfRangeException.ThrowIfGreaterThan(x0 + values.Length, _columns.OutputSize, nameof(values));
        ArgumentOutOfRangeException.ThrowIfLessThan(blended.Length, _output.MaskWidth, nameof(blended));
        var (indices, weights) = (_columns.Indices, _columns.Weights);
        var taps = new WindowTaps(_columns, blended);
        ref var target = ref MemoryMarshal.GetReference(values);
        var p = 0;

        // Sixteen columns a step from a wide window where the core has 512-bit vectors (the same
        // float32 operations per lane), then eight at a time for the rest.
        if (Vector512.IsHardwareAccelerated)
        {
            ref var wide = ref MemoryMarshal.GetArrayDataReference(_columns.WideWindowStarts);
            for (; p + Vector512<float>.Count <= values.Length; p += Vector512<float>.Count)
            {
                var start = Unsafe.Add(ref wide, x0 + p);
                if (start < 0)
                {
                    break;
                }

                WideWindowVector<TTaps>(taps, (nuint)(x0 + p), start).StoreUnsafe(ref target, (nuint)p);
            }
        }

        if (Vector256.IsHardwareAccelerated)
        {
            ref var windows = ref MemoryMarshal.GetArrayDataReference(_columns.WindowStarts);

            // Two vectors a step where both have a window: their shuffles and adds interleave.
            for (; p + (2 * Vector256<float>.Count) <= values.Length; p += 2 * Vector256<float>.Count)
            {
                var x = x0 + p;
                var (first, second) = (Unsafe.Add(ref windows, x), Unsafe.Add(ref windows, x + Vector256<float>.Count));
                if ((first | second) < 0)
                {
                    break;
                }

                var low = WindowVector<TTaps>(taps, (nuint)x, first);
                var high = WindowVector<TTaps>(taps, (nuint)(x + Vector256<float>.Count), second);
                low.StoreUnsafe(ref target, (nuint)p);
                high.StoreUnsafe(ref target, (nuint)(p + Vector256<float>.Count));
            }

            for (; p + Vector256<float>.Count <= values.Length; p += Vector256<float>.Count)
            {
                var x = x0 + p;
                var start = Unsafe.Add(ref windows, x);
                if (start >= 0)
                {
                    WindowVector<TTaps>(taps, (nuint)x, start).StoreUnsafe(ref target, (nuint)p);
                    continue;
                }

                for (var k = p; k < p + Vector256<float>.Count; k++)
                {
                    values[k] = Pixel(blended, x0 + k, indices, weights);
                }
            }

            // The last columns as one vector that overlaps the one before: the same values again.
            var last = values.Length - Vector256<float>.Count;
            if (p < values.Length && last >= 0 && Unsafe.Add(ref windows, x0 + last) >= 0)
            {
                WindowVector<TTaps>(taps, (nuint)(x0 + last), Unsafe.Add(ref windows, x0 + last)).StoreUnsafe(ref target, (nuint)last);
                p = values.Length;
            }
        }

        for (; p < values.Length; p++)
        {
            values[p] = Pixel(blended, x0 + p, indices, weights);
        }
    }

    // Output columns [x, x + 8) from the window of eight blended mask values at `start`: four
    // multiply-shuffle-adds, Pixel's float32 operations in Pixel's order.
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    private static Vector256<float> WindowVector<TTaps>(WindowTaps taps, nuint x, int start)
        where TTaps : ITapCount
    {
        var window = Vector256.LoadUnsafe(ref taps.Blended, (nuint)start);
        var origin = Vector256.Create(start);
        var at = x;
        var sum = Vector256.LoadUnsafe(ref taps.Weights, at) * Vector256.ShuffleNative(window, Vector256.LoadUnsafe(ref taps.Indices, at) - origin);
        at += taps.Stride;
        sum += Vector256.LoadUnsafe(ref taps.Weights, at) * Vector256.ShuffleNative(window, Vector256.LoadUnsafe(ref taps.Indices, at) - origin);
        if (TTaps.Four)
        {
            at += taps.Stride;
            sum += Vector256.LoadUnsafe(ref taps.Weights, at) * Vector256.ShuffleNative(window, Vector256.LoadUnsafe(ref taps.Indices, at) - origin);
            at += taps.Stride;
            sum += Vector256.LoadUnsafe(ref taps.Weights, at) * Vector256.ShuffleNative(window, Vector256.LoadUnsafe(ref taps.Indices, at) - origin);
        }

        return sum;
    }

    // WindowVector's sixteen-lane twin: output columns [x, x + 16) from the wide window at `start`.
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    private static Vector512<float> WideWindowVector<TTaps>(WindowTaps taps, nuint x, int start)
        where TTaps : ITapCount
    {
        var window = Vector512.LoadUnsafe(ref taps.Blended, (nuint)start);
        var origin = Vector512.Create(start);
        var at = x;
        var sum = Vector512.LoadUnsafe(ref taps.Weights, at) * Vector512.ShuffleNative(window, Vector512.LoadUnsafe(ref taps.Indices, at) - origin);
        at += taps.Stride;
        sum += Vector512.LoadUnsafe(ref taps.Weights, at) * Vector512.ShuffleNative(window, Vector512.LoadUnsafe(ref taps.Indices, at) - origin);
        if (TTaps.Four)
        {
            at += taps.Stride;
            sum += Vector512.LoadUnsafe(ref taps.Weights, at) * Vector512.ShuffleNative(window, Vector512.LoadUnsafe(ref taps.Indices, at) - origin);
            at += taps.Stride;
            sum += Vector512.LoadUnsafe(ref taps.Weights, at) * Vector512.ShuffleNative(window, Vector512.LoadUnsafe(ref taps.Indices, at) - origin);
        }

        return sum;
    }

    /// <summary>
    /// The column axis' taps and a blended row as references, held in registers across a row's vectors
    /// instead of read from the axis' arrays at each (their loads are unchecked: see Interpolate).
    /// </summary>
    private readonly ref struct WindowTaps
    {
        public readonly ref int Indices;
        public readonly ref float Weights;
        public readonly ref float Blended;
        public readonly nuint Stride;

        public WindowTaps(ComposedAxis columns, ReadOnlySpan<float> blended)
        {
            Indices = ref MemoryMarshal.GetArrayDataReference(columns.TapIndices);
            Weights = ref MemoryMarshal.GetArrayDataReference(columns.TapWeights);
            Blended = ref MemoryMarshal.GetReference(blended);
            Stride = (nuint)columns.OutputSize;
        }
    }

    private void FoldGridPoint<TMin, TMax>(ReadOnlySpan<float> blended, int c, Span<float> low, Span<float> high, bool first)
        where TMin : IExtreme
        where TMax : IExtreme
    {
        var value = GridPoint(blended, c);
        (low[c], high[c]) = first ? (value, value) : (TMin.Of(low[c], value), TMax.Of(high[c], value));
    }

    /// <summary>Grid column <paramref name="c"/> of a blended grid row (<see cref="BlendGridRow"/>): its two mask columns at the column's weight.</summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public float GridPoint(ReadOnlySpan<float> blended, int c)
    {
        var left = _columns.GridLower[c];
        var w = _columns.GridWeights[c];
        return ((1f - w) * blended[left]) + (w * blended[Math.Min(left + 1, blended.Length - 1)]);
    }

    // Grid columns [c, c + 8) as GridPoint gives them, bit for bit: both taps from the window of eight
    // mask values at `start` (ComposedAxis.GridWindowStarts), the same float32 operations in order.
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    private static Vector256<float> GridVector(GridTaps taps, int start, int c)
    {
        var window = Vector256.LoadUnsafe(ref taps.Blended, (nuint)start);
        var offsets = Vector256.LoadUnsafe(ref taps.Lower, (nuint)c) - Vector256.Create(start);
        var w = Vector256.LoadUnsafe(ref taps.Weights, (nuint)c);
        return ((Vector256<float>.One - w) * Vector256.ShuffleNative(window, offsets)) + (w * Vector256.ShuffleNative(window, offsets + Vector256<int>.One));
    }

    /// <summary>
    /// The column axis' grid taps and a blended row as references for GridVector's unchecked loads, checked
    /// once: grid columns up to <c>end</c> lie on the axis, and the row holds the mask's width, where every
    /// window lies (ComposedAxis.GridWindowStarts).
    /// </summary>
    private readonly ref struct GridTaps
    {
        public readonly ref int Windows;
        public readonly ref int Lower;
        public readonly ref float Weights;
        public readonly ref float Blended;

        public GridTaps(ComposedAxis columns, ReadOnlySpan<float> blended, int end, int maskWidth)
        {
            ArgumentOutOfRangeException.ThrowIfGreaterThan(end, columns.GridWindowStarts.Length, nameof(end));
            ArgumentOutOfRangeException.ThrowIfLessThan(blended.Length, maskWidth, nameof(blended));
            Windows = ref MemoryMarshal.GetArrayDataReference(columns.GridWindowStarts);
            Lower = ref MemoryMarshal.GetArrayDataReference(columns.GridLower);
            Weights = ref MemoryMarshal.GetArrayDataReference(columns.GridWeights);
            Blended = ref MemoryMarshal.GetReference(blended);
        }
    }

    private static float Pixel(ReadOnlySpan<float> blended, int x, int[] indices, float[] weights)
    {
        var i = x * ComposedAxis.Taps;
        return (weights[i] * blended[indices[i]]) + (weights[i + 1] * blended[indices[i + 1]])
            + (weights[i + 2] * blended[indices[i + 2]]) + (weights[i + 3] * blended[indices[i + 3]]);
    }

    /// <summary>
    /// Blends the mask rows of output row <paramref name="y"/> into <paramref name="scratch"/>; the
    /// result feeds <see cref="Interpolate"/> for any columns of that row.
    /// </summary>
    public Span<float> BlendRow(int query, int y, Span<float> scratch)
    {
        var maskWidth = _output.MaskWidth;
        var plane = _output.MaskLogits.Slice(query * _output.MaskHeight * maskWidth, _output.MaskHeight * maskWidth);
        var blended = scratch[..maskWidth];

        // From +0, each tap with a weight: (row * weight) + blended, as TensorPrimitives.MultiplyAdd
        // (not fused) gives it, written out: on a row of a few dozen values its calls cost more than the
        // arithmetic. The taps with a weight are listed once per axis (ComposedAxis.NonZeroCounts): picked
        // out per call, their branches cost a short row more than its arithmetic.
        var taps = _rows.NonZeroCounts[y];
        ReadOnlySpan<int> indices = _rows.NonZeroIndices.AsSpan(y * ComposedAxis.Taps, taps);
        ReadOnlySpan<float> tapWeights = _rows.NonZeroWeights.AsSpan(y * ComposedAxis.Taps, taps);
        Span<int> starts = stackalloc int[ComposedAxis.Taps];
        for (var k = 0; k < taps; k++)
        {
            starts[k] = indices[k] * maskWidth;
        }

        var c = 0;
        if (taps >= 2 && (Vector512.IsHardwareAccelerated || Vector256.IsHardwareAccelerated))
        {
            // Two to four mask rows (two where the second resize keeps the grid, up to four where it
            // upsamples): the weights stay in registers and the loads go unchecked (every row lies in the
            // plane). The same operations as the loops below, +0 included, in tap order.
            ref var first = ref MemoryMarshal.GetReference(plane.Slice(starts[0], maskWidth));
            ref var second = ref MemoryMarshal.GetReference(plane.Slice(starts[1], maskWidth));
            ref var third = ref MemoryMarshal.GetReference(plane.Slice(starts[taps > 2 ? 2 : 1], maskWidth));
            ref var fourth = ref MemoryMarshal.GetReference(plane.Slice(starts[taps > 3 ? 3 : 1], maskWidth));
            ref var target = ref MemoryMarshal.GetReference(blended);
            var (firstWeight, secondWeight) = (tapWeights[0], tapWeights[1]);
            var (thirdWeight, fourthWeight) = (taps > 2 ? tapWeights[2] : 0f, taps > 3 ? tapWeights[3] : 0f);
            if (Vector512.IsHardwareAccelerated)
            {
                for (; c + Vector512<float>.Count <= maskWidth; c += Vector512<float>.Count)
                {
                    var at = (nuint)c;
                    var sum = (Vector512.LoadUnsafe(ref first, at) * firstWeight) + Vector512<float>.Zero;
                    sum = (Vector512.LoadUnsafe(ref second, at) * secondWeight) + sum;
                    if (taps > 2)
                    {
                        sum = (Vector512.LoadUnsafe(ref third, at) * thirdWeight) + sum;
                        if (taps > 3)
                        {
                            sum = (Vector512.LoadUnsafe(ref fourth, at) * fourthWeight) + sum;
                        }
                    }

                    sum.StoreUnsafe(ref target, at);
                }
            }

            // Eight at a time: all of the row on a core without 512-bit vectors, its last few on one with.
            for (; c + Vector256<float>.Count <= maskWidth; c += Vector256<float>.Count)
            {
                var at = (nuint)c;
                var sum = (Vector256.LoadUnsafe(ref first, at) * firstWeight) + Vector256<float>.Zero;
                sum = (Vector256.LoadUnsafe(ref second, at) * secondWeight) + sum;
                if (taps > 2)
                {
                    sum = (Vector256.LoadUnsafe(ref third, at) * thirdWeight) + sum;
                    if (taps > 3)
                    {
                        sum = (Vector256.LoadUnsafe(ref fourth, at) * fourthWeight) + sum;
                    }
                }

                sum.StoreUnsafe(ref target, at);
            }
        }

        if (Vector512.IsHardwareAccelerated)
        {
            for (; c + Vector512<float>.Count <= maskWidth; c += Vector512<float>.Count)
            {
                var sum = Vector512<float>.Zero;
                for (var k = 0; k < taps; k++)
                {
                    sum = (Vector512.Create(plane.Slice(starts[k] + c, Vector512<float>.Count)) * tapWeights[k]) + sum;
                }

                sum.CopyTo(blended.Slice(c, Vector512<float>.Count));
            }
        }

        if (Vector256.IsHardwareAccelerated)
        {
            for (; c + Vector256<float>.Count <= maskWidth; c += Vector256<float>.Count)
            {
                var sum = Vector256<float>.Zero;
                for (var k = 0; k < taps; k++)
                {
                    sum = (Vector256.Create(plane.Slice(starts[k] + c, Vector256<float>.Count)) * tapWeights[k]) + sum;
                }

                sum.CopyTo(blended.Slice(c, Vector256<float>.Count));
            }
        }

        for (; c < maskWidth; c++)
        {
            var sum = 0f;
            for (var k = 0; k < taps; k++)
            {
                sum = (plane[starts[k] + c] * tapWeights[k]) + sum;
            }

            blended[c] = sum;
        }

        return blended;
    }
}
