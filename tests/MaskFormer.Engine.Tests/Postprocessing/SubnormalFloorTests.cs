using MaskFormer.Engine.Postprocessing;

namespace MaskFormer.Engine.Tests.Postprocessing;

public sealed class SubnormalFloorTests
{
    // Long enough for the vector loop and a tail, with every kind of value in both.
    private static readonly float[] s_values =
    [
        0f, -0f, 1e-45f, 1e-40f, float.Epsilon, 1.1754944e-38f, 1e-30f, 8.6e-19f, SubnormalFloor.Tiny, 1e-18f,
        0.5f, 1f, float.NaN, float.PositiveInfinity, 3e-20f, 2e-10f, 1e-41f, float.NaN, 0.25f,
    ];

    [Fact]
    public void Tiny_SquaredIsStillNormal()
    {
        Assert.True(float.IsNormal(SubnormalFloor.Tiny * SubnormalFloor.Tiny));
        Assert.Equal(SubnormalFloor.Tiny, MathF.Pow(2, -60));
    }

    [Fact]
    public void Down_ValuesBelowTinyBecomeZero_OthersAndNaNStay()
    {
        var values = s_values.ToArray();

        SubnormalFloor.Down(values);

        for (var i = 0; i < values.Length; i++)
        {
            var want = s_values[i] < SubnormalFloor.Tiny ? 0f : s_values[i];
            Assert.True(BitConverter.SingleToInt32Bits(want) == BitConverter.SingleToInt32Bits(values[i]), $"value {i} ({s_values[i]:R}): expected {want:R}, got {values[i]:R}");
            Assert.True(values[i] <= s_values[i] || float.IsNaN(s_values[i]), $"value {i} rose");
        }
    }

    [Fact]
    public void Up_ValuesBelowTinyBecomeTiny_OthersAndNaNStay()
    {
        var values = s_values.ToArray();

        SubnormalFloor.Up(values);

        for (var i = 0; i < values.Length; i++)
        {
            var want = s_values[i] < SubnormalFloor.Tiny ? SubnormalFloor.Tiny : s_values[i];
            Assert.True(BitConverter.SingleToInt32Bits(want) == BitConverter.SingleToInt32Bits(values[i]), $"value {i} ({s_values[i]:R}): expected {want:R}, got {values[i]:R}");
            Assert.True(values[i] >= s_values[i] || float.IsNaN(s_values[i]), $"value {i} fell");
        }
    }
}
