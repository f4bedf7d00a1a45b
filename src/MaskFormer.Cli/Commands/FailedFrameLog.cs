using Grpc.Core;
using MaskFormer.Contracts.V1;

namespace MaskFormer.Cli.Commands;

/// <summary>
/// Says why frames failed, one line each (to standard error): the frame, the status code and the server's
/// message. Only the first <paramref name="shown"/> are written, so a stream whose every frame fails does
/// not bury the rest of the output; the others are counted (<see cref="WriteNotShown"/>).
/// </summary>
internal sealed class FailedFrameLog(Action<string> writeLine, int shown = 10)
{
    private int _failed;

    public void Write(string frame, FrameError failure)
    {
        if (++_failed <= shown)
        {
            writeLine($"frame {frame} failed: {(StatusCode)failure.Code}: {failure.Message}");
        }
    }

    /// <summary>How many failed frames had no line of their own; nothing when every one had.</summary>
    public void WriteNotShown()
    {
        var notShown = _failed - shown;
        if (notShown > 0)
        {
            writeLine($"{notShown} more failed frame{(notShown == 1 ? string.Empty : "s")} not shown (the summary counts them all)");
        }
    }
}
