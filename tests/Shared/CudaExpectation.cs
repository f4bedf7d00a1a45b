namespace MaskFormer.Testing;

/// <summary>
/// Tests of the CUDA path accept either outcome where they run: CUDA where it works, the CPU fallback and
/// its reason where it does not (CI has no GPU). On a machine meant to have a working GPU,
/// MASKFORMER_EXPECT_CUDA=1 turns every fallback into a failure, so a broken CUDA provider cannot pass
/// as "no GPU here".
/// </summary>
internal static class CudaExpectation
{
    public const string Variable = "MASKFORMER_EXPECT_CUDA";

    public static bool Required => Environment.GetEnvironmentVariable(Variable) == "1";

    /// <summary>Called on the fallback branch: fails it when CUDA is expected.</summary>
    public static void FallbackAllowed(string? reason) =>
        Assert.False(Required, $"{Variable}=1, but CUDA was not used: {reason}");
}
