using MaskFormer.Examples;

// MaskFormer Serve's C# client example: `segment IMAGE` (a unary call) and `stream FOLDER` (SegmentStream).
// Exit codes as the Python, Node and Go examples: 0 ok, 1 the call failed, 2 usage, connection or file errors
// (an image that cannot be read, an --out folder that cannot be written);
// 130 on Ctrl+C.
using var interrupted = new CancellationTokenSource();
Console.CancelKeyPress += (_, e) =>
{
    e.Cancel = true;
    interrupted.Cancel();
};

var usage = $"""
    {SegmentCommand.Usage}
    {StreamCommand.Usage}
    and for both:
    {Connection.Usage}
    """;
try
{
    return args switch
    {
        ["--help" or "-h" or "help", ..] => Help(),

        // `segment --help` as a user types it (and as the other examples take it), not an unknown option.
        ["segment" or "stream", .. var rest] when rest.Contains("--help") || rest.Contains("-h") => Help(),
        ["segment", .. var rest] => await SegmentCommand.RunAsync(rest, interrupted.Token),
        ["stream", .. var rest] => await StreamCommand.RunAsync(rest, interrupted.Token),
        _ => throw new UsageException("give a command: segment or stream"),
    };
}
catch (UsageException ex)
{
    await Console.Error.WriteLineAsync($"error: {ex.Message}\n{usage}");
    return 2;
}
catch (ConnectionException ex)
{
    await Console.Error.WriteLineAsync($"error: {ex.Message}");
    return 2;
}
catch (Exception ex) when (ex is IOException or UnauthorizedAccessException && !interrupted.IsCancellationRequested)
{
    // A file that cannot be written (--out): named, without a stack trace.
    await Console.Error.WriteLineAsync($"error: {ex.Message}");
    return 2;
}
catch (Exception ex) when (interrupted.IsCancellationRequested && ex is OperationCanceledException or Grpc.Core.RpcException)
{
    // Ctrl+C: the exit status a shell gives a command ended by SIGINT, without a stack trace (as the other examples).
    return 130;
}

int Help()
{
    Console.WriteLine(usage);
    return 0;
}
