namespace MaskFormer.Testing;

/// <summary>A bounded wait for something another thread makes true: polled, then asserted, so a wait that runs out fails with its reason.</summary>
internal static class Poll
{
    public static async Task UntilAsync(Func<bool> condition, string failure, TimeSpan? timeout = null, TimeSpan? interval = null)
    {
        var step = interval ?? TimeSpan.FromMilliseconds(50);
        var limit = timeout ?? TimeSpan.FromSeconds(60);
        for (var waited = TimeSpan.Zero; waited < limit && !condition(); waited += step)
        {
            await Task.Delay(step);
        }

        Assert.True(condition(), failure);
    }
}
