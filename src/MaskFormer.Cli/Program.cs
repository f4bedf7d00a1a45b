using Grpc.Core;
using MaskFormer.Cli.Commands;

using var cancellation = new CancellationTokenSource();
Console.CancelKeyPress += (_, e) =>
{
    e.Cancel = true;
    cancellation.Cancel();
};

var command = args.FirstOrDefault();
var arguments = new CommandArguments(args.Skip(1));
try
{
    return command switch
    {
        "segment" => await SegmentCommand.RunAsync(arguments, Console.Out, cancellation.Token),
        "models" => await ModelsCommand.RunAsync(arguments, Console.Out, cancellation.Token),
        "stream" => await StreamCommand.RunAsync(arguments, cancellation.Token),
        "health" => await HealthCommand.RunAsync(arguments, Console.Out, cancellation.Token),
        _ => await PrintUsageAsync(),
    };
}
catch (RpcException ex)
{
    await Console.Error.WriteLineAsync($"maskformer: the server answered {ex.StatusCode}: {ex.Status.Detail}");
    return 1;
}
catch (Exception ex) when (ex is IOException or UnauthorizedAccessException or FormatException)
{
    await Console.Error.WriteLineAsync($"maskformer: {ex.Message}");
    return 1;
}

static async Task<int> PrintUsageAsync()
{
    await Console.Error.WriteLineAsync($"""
        usage:
          {SegmentCommand.Usage}
          {StreamCommand.Usage}
          maskformer models [--server URL]
          maskformer health [--server URL] [--wait SECONDS]
        The server address defaults to $MASKFORMER_SERVER or http://127.0.0.1:5081.
        """);
    return 2;
}
