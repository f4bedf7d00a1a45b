namespace MaskFormer.Fuzz;

/// <summary>Which library exceptions the decoder turned into INVALID_ARGUMENT, for the replay report.</summary>
internal static class Stats
{
    public static Dictionary<string, int> InnerExceptions { get; } = [];

    public static void Record(Exception? inner)
    {
        var name = inner?.GetType().Name ?? "(checked before decoding)";
        InnerExceptions[name] = InnerExceptions.GetValueOrDefault(name) + 1;
    }
}
