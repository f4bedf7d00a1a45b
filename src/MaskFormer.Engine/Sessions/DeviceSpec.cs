using System.Globalization;

namespace MaskFormer.Engine.Sessions;

/// <summary>A configured device: "cpu", or "cuda:N".</summary>
public readonly record struct DeviceSpec(bool IsCuda, int DeviceId)
{
    /// <summary>The CPU.</summary>
    public static DeviceSpec Cpu => new(false, 0);

    /// <summary>Parses "cpu", "cuda" (device 0) or "cuda:N".</summary>
    public static bool TryParse(string? text, out DeviceSpec device)
    {
        device = Cpu;
        if (string.Equals(text, "cpu", StringComparison.OrdinalIgnoreCase))
        {
            return true;
        }

        if (string.Equals(text, "cuda", StringComparison.OrdinalIgnoreCase))
        {
            device = new DeviceSpec(true, 0);
            return true;
        }

        if (text is not null && text.StartsWith("cuda:", StringComparison.OrdinalIgnoreCase)
            && int.TryParse(text.AsSpan(5), NumberStyles.None, CultureInfo.InvariantCulture, out var id))
        {
            device = new DeviceSpec(true, id);
            return true;
        }

        return false;
    }

    /// <inheritdoc />
    public override string ToString() => IsCuda ? string.Create(CultureInfo.InvariantCulture, $"cuda:{DeviceId}") : "cpu";
}
