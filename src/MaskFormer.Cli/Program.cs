using MaskFormer.Cli;

using var cancellation = new CancellationTokenSource();
// The first Ctrl+C stops the command, which keeps what it wrote (a stream's video is finished with the
// frames drawn); a second ends the process at once.
Console.CancelKeyPress += (_, e) =>
{
    e.Cancel = !cancellation.IsCancellationRequested;
    cancellation.Cancel();
};

return await CliApp.RunAsync(args, Console.Out, Console.Error, cancellation.Token);
