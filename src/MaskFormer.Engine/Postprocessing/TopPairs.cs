namespace MaskFormer.Engine.Postprocessing;

/// <summary>
/// The k best (query, class) pairs of the class probabilities without "no object", best first, ties
/// by query then class: what sorting every pair and taking k gives (torch's <c>topk</c> over the
/// flattened [queries, classes] scores), found with a heap of k so the other pairs cost a compare each.
/// </summary>
internal static class TopPairs
{
    // probabilities: [queries, classes + 1], the last class of each query "no object".
    public static (int Query, int Label, float Probability)[] Select(ReadOnlySpan<float> probabilities, int queries, int classes, int k)
    {
        var pairs = queries * classes;
        k = Math.Min(k, pairs);
        if (k <= 0)
        {
            return [];
        }

        // Flattened pair indices, the worst kept pair at the root.
        var heap = EngineArrayPool<int>.Shared.Rent(k);
        try
        {
            var count = 0;
            for (var i = 0; i < pairs; i++)
            {
                if (count < k)
                {
                    heap[count] = i;
                    SiftUp(heap, count++, probabilities, classes);
                }
                else if (Better(i, heap[0], probabilities, classes))
                {
                    heap[0] = i;
                    SiftDown(heap, count, probabilities, classes);
                }
            }

            // Taking the worst off the heap fills the result from the back.
            var top = new (int Query, int Label, float Probability)[count];
            for (var n = count; n > 0; n--)
            {
                var i = heap[0];
                top[n - 1] = (i / classes, i % classes, Probability(probabilities, i, classes));
                heap[0] = heap[n - 1];
                SiftDown(heap, n - 1, probabilities, classes);
            }

            return top;
        }
        finally
        {
            EngineArrayPool<int>.Shared.Return(heap);
        }
    }

    private static float Probability(ReadOnlySpan<float> probabilities, int pair, int classes) =>
        probabilities[pair + (pair / classes)];

    // Higher probability first (float.CompareTo: NaN below everything, as the sort's comparer), then
    // the lower flattened index (query, then class).
    private static bool Better(int a, int b, ReadOnlySpan<float> probabilities, int classes)
    {
        var order = Probability(probabilities, a, classes).CompareTo(Probability(probabilities, b, classes));
        return order > 0 || (order == 0 && a < b);
    }

    private static void SiftUp(int[] heap, int at, ReadOnlySpan<float> probabilities, int classes)
    {
        while (at > 0)
        {
            var parent = (at - 1) / 2;
            if (!Better(heap[parent], heap[at], probabilities, classes))
            {
                return;
            }

            (heap[parent], heap[at]) = (heap[at], heap[parent]);
            at = parent;
        }
    }

    private static void SiftDown(int[] heap, int count, ReadOnlySpan<float> probabilities, int classes)
    {
        var at = 0;
        while (true)
        {
            var (left, worst) = ((2 * at) + 1, at);
            if (left < count && Better(heap[worst], heap[left], probabilities, classes))
            {
                worst = left;
            }

            if (left + 1 < count && Better(heap[worst], heap[left + 1], probabilities, classes))
            {
                worst = left + 1;
            }

            if (worst == at)
            {
                return;
            }

            (heap[worst], heap[at]) = (heap[at], heap[worst]);
            at = worst;
        }
    }
}
