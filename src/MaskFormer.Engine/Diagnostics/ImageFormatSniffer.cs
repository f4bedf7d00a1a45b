namespace MaskFormer.Engine.Diagnostics;

/// <summary>Names an encoded image's format from its signature, for the decode-failure metric (bounded label set).</summary>
internal static class ImageFormatSniffer
{
    public static string Sniff(ImageSource source)
    {
        if (source.RawLayout is not null)
        {
            return "raw";
        }

        var bytes = source.Data.Span;
        return bytes switch
        {
            [0x89, (byte)'P', (byte)'N', (byte)'G', ..] => "png",
            [0xFF, 0xD8, ..] => "jpeg",
            [(byte)'G', (byte)'I', (byte)'F', ..] => "gif",
            [(byte)'B', (byte)'M', ..] => "bmp",
            [(byte)'R', (byte)'I', (byte)'F', (byte)'F', _, _, _, _, (byte)'W', (byte)'E', (byte)'B', (byte)'P', ..] => "webp",
            [(byte)'I', (byte)'I', 42, 0, ..] or [(byte)'M', (byte)'M', 0, 42, ..] => "tiff",
            [] => "empty",
            _ => "unknown",
        };
    }
}
