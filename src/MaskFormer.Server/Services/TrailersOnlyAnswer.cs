using System.Globalization;
using System.Text;
using Grpc.Core;

namespace MaskFormer.Server.Services;

/// <summary>
/// Answers a gRPC call from a middleware, before gRPC has read its request: the status, message and
/// trailers of an <see cref="RpcException"/> in the one HEADERS frame (a trailers-only answer), as gRPC
/// itself answers a call that fails before its first message, so clients read it the same way.
/// </summary>
internal static class TrailersOnlyAnswer
{
    public static Task WriteAsync(HttpContext context, RpcException error)
    {
        var response = context.Response;
        response.StatusCode = StatusCodes.Status200OK;
        response.ContentType = "application/grpc";
        response.Headers["grpc-status"] = ((int)error.StatusCode).ToString(CultureInfo.InvariantCulture);
        response.Headers["grpc-message"] = PercentEncode(error.Status.Detail);
        foreach (var entry in error.Trailers)
        {
            response.Headers[entry.Key] = entry.IsBinary ? Convert.ToBase64String(entry.ValueBytes) : entry.Value;
        }

        return response.CompleteAsync();
    }

    // grpc-message is percent-encoded: every byte of the UTF-8 text outside printable ASCII, and '%'.
    private static string PercentEncode(string message)
    {
        var text = new StringBuilder(message.Length);
        foreach (var b in Encoding.UTF8.GetBytes(message))
        {
            if (b is >= 0x20 and <= 0x7E and not (byte)'%')
            {
                text.Append((char)b);
            }
            else
            {
                text.Append(CultureInfo.InvariantCulture, $"%{b:X2}");
            }
        }

        return text.ToString();
    }
}
