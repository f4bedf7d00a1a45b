using System.Text;
using Grpc.Core;
using MaskFormer.Contracts.V1;

namespace MaskFormer.Examples;

/// <summary>Names as the other clients print them: the proto's own enum value names and gRPC's status code names.</summary>
internal static class Names
{
    /// <summary>NOT_FOUND for <see cref="StatusCode.NotFound"/>, as gRPC names codes in every language.</summary>
    public static string Code(StatusCode code) => Code((int)code);

    public static string Code(int code)
    {
        var name = Enum.GetName((StatusCode)code);
        if (name is null)
        {
            return code.ToString(System.Globalization.CultureInfo.InvariantCulture);
        }

        var snake = new StringBuilder(name.Length + 4);
        for (var i = 0; i < name.Length; i++)
        {
            if (i > 0 && char.IsUpper(name[i]) && char.IsLower(name[i - 1]))
            {
                snake.Append('_');
            }

            snake.Append(char.ToUpperInvariant(name[i]));
        }

        return snake.ToString();
    }

    /// <summary>The value's name in the .proto (SKIP_REASON_DRAINING), not its C# name (Draining).</summary>
    public static string Of<TEnum>(TEnum value)
        where TEnum : struct, Enum
    {
        var number = Convert.ToInt32(value, System.Globalization.CultureInfo.InvariantCulture);
        return SegmentationReflection.Descriptor.EnumTypes.Single(e => e.ClrType == typeof(TEnum)).FindValueByNumber(number)?.Name
            ?? number.ToString(System.Globalization.CultureInfo.InvariantCulture);
    }
}
