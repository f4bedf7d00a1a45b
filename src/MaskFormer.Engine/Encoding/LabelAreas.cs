using MaskFormer.Engine.Postprocessing;

namespace MaskFormer.Engine.Encoding;

/// <summary>Pixels per id of a label map, counted by runs (a label map's rows are a few long runs).</summary>
public static class LabelAreas
{
    /// <summary>Adds each id's pixel count to <paramref name="areas"/>; ids past its end are skipped.</summary>
    public static void Count(LabelMap map, Span<long> areas)
    {
        ArgumentNullException.ThrowIfNull(map);
        for (var y = 0; y < map.Height; y++)
        {
            ReadOnlySpan<ushort> row = map.Row(y);
            for (var x = 0; x < row.Length;)
            {
                var id = row[x];
                var next = row[(x + 1)..].IndexOfAnyExcept(id);
                var run = next < 0 ? row.Length - x : next + 1;
                if (id < areas.Length)
                {
                    areas[id] += run;
                }

                x += run;
            }
        }
    }
}
