using System.Globalization;
using MaskFormer.Contracts.V1;

namespace MaskFormer.Cli.Commands;

/// <summary>
/// The stream's latency contract from <c>--target-fps N</c>, <c>--max-age D</c> and
/// <c>--allow-downscale</c>; null when none is given.
/// </summary>
internal static class LatencyArguments
{
    public static LatencyContract? Parse(CommandArguments args)
    {
        if (!args.Has("target-fps") && !args.Has("max-age") && !args.Has("allow-downscale"))
        {
            return null;
        }

        var fps = args.GetDouble("target-fps", 0);
        if (fps is < 0 or > 1000)
        {
            throw new UsageException($"--target-fps {fps}: give a rate between 0 and 1000 frames per second.");
        }

        return new LatencyContract
        {
            TargetFps = (float)fps,
            MaxAgeMs = args.Has("max-age") ? ParseMilliseconds(args.Get("max-age", "0")) : 0,
            AllowDownscale = args.Has("allow-downscale"),
        };
    }

    /// <summary>"100ms", "0.1s" or a bare number of milliseconds; at most 60 s.</summary>
    public static uint ParseMilliseconds(string text)
    {
        var (number, factor) = text.EndsWith("ms", StringComparison.Ordinal) ? (text[..^2], 1.0)
            : text.EndsWith('s') ? (text[..^1], 1000.0)
            : (text, 1.0);
        return double.TryParse(number, NumberStyles.Float, CultureInfo.InvariantCulture, out var value) && double.IsFinite(value) && value * factor is >= 0 and <= 60_000
            ? (uint)Math.Round(value * factor)
            : throw new UsageException($"--max-age {text}: give a duration such as 100ms or 0.5s, at most 60s.");
    }
}
