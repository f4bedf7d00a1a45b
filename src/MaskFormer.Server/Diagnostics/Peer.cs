namespace MaskFormer.Server.Diagnostics;

/// <summary>Splits gRPC's peer ("ipv4:127.0.0.1:5000", "ipv6:[::1]:5000") and host ("localhost:5081") strings.</summary>
internal static class Peer
{
    public static bool TryParse(string? value, out string address, out int port, bool hostOnly = false)
    {
        address = string.Empty;
        port = 0;
        if (string.IsNullOrEmpty(value))
        {
            return false;
        }

        var text = value;
        if (!hostOnly)
        {
            var scheme = text.IndexOf(':', StringComparison.Ordinal);
            if (scheme < 0)
            {
                return false;
            }

            text = text[(scheme + 1)..];
        }

        var colon = text.LastIndexOf(':');
        var bracket = text.LastIndexOf(']');
        if (colon > bracket && int.TryParse(text.AsSpan(colon + 1), out port))
        {
            address = text[..colon].Trim('[', ']');
        }
        else
        {
            address = text.Trim('[', ']');
        }

        return address.Length > 0;
    }
}
