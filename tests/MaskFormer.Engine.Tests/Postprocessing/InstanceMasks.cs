using MaskFormer.Engine.Postprocessing;

namespace MaskFormer.Engine.Tests.Postprocessing;

/// <summary>Gives back the pooled masks of the instances a test made.</summary>
internal static class InstanceMasks
{
    public static void DisposeAll(params IEnumerable<InstanceMask>[] lists)
    {
        foreach (var instance in lists.SelectMany(list => list))
        {
            instance.Dispose();
        }
    }
}
