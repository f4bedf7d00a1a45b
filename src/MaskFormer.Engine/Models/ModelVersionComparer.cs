namespace MaskFormer.Engine.Models;

/// <summary>
/// Orders model versions oldest first: numerically, as Triton orders its integer version folders
/// (<c>10</c> after <c>9</c>), and dotted numeric versions part by part (<c>1.10</c> after <c>1.9</c>;
/// <c>1.2</c> before <c>1.2.1</c>). A part that is not a number sorts after every number and among
/// such parts by ordinal text, so the order is total and never depends on the file system.
/// </summary>
public sealed class ModelVersionComparer : IComparer<string?>
{
    /// <summary>The one instance.</summary>
    public static ModelVersionComparer Instance { get; } = new();

    private ModelVersionComparer()
    {
    }

    /// <inheritdoc />
    public int Compare(string? x, string? y)
    {
        if (ReferenceEquals(x, y))
        {
            return 0;
        }

        if (x is null || y is null)
        {
            return x is null ? -1 : 1;
        }

        var left = x.Split('.');
        var right = y.Split('.');
        for (var i = 0; i < Math.Min(left.Length, right.Length); i++)
        {
            var order = ComparePart(left[i], right[i]);
            if (order != 0)
            {
                return order;
            }
        }

        var byLength = left.Length.CompareTo(right.Length);
        return byLength != 0 ? byLength : string.CompareOrdinal(x, y);
    }

    private static int ComparePart(string a, string b)
    {
        var aNumber = IsNumber(a);
        var bNumber = IsNumber(b);
        if (aNumber && bNumber)
        {
            // By value without parsing, so no version is too long: leading zeros off, then the longer
            // number is the larger, then digit by digit.
            var aDigits = a.TrimStart('0');
            var bDigits = b.TrimStart('0');
            var byLength = aDigits.Length.CompareTo(bDigits.Length);
            return byLength != 0 ? byLength : string.CompareOrdinal(aDigits, bDigits);
        }

        return aNumber != bNumber ? (aNumber ? -1 : 1) : string.CompareOrdinal(a, b);
    }

    private static bool IsNumber(string part) => part.Length > 0 && part.All(char.IsAsciiDigit);

    /// <summary>The newest of <paramref name="candidates"/> by <paramref name="version"/>, or null.</summary>
    public static T? Newest<T>(IEnumerable<T> candidates, Func<T, string> version)
        where T : class => candidates.OrderByDescending(version, Instance).FirstOrDefault();
}
