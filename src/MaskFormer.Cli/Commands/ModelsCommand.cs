using MaskFormer.Contracts.V1;

namespace MaskFormer.Cli.Commands;

/// <summary><c>maskformer models</c>: lists the served models, their labels and devices.</summary>
internal static class ModelsCommand
{
    public static CommandInfo Info { get; } = new(
        "models",
        "the served models, their labels and devices",
        $"""
        usage: maskformer models [--server ADDRESS]
        Lists the served models: name, version, tasks, devices (with any CPU fallback) and labels.
        {CliApp.ServerHelp}
        """,
        [],
        (args, output, _, cancellationToken) => RunAsync(args, output, cancellationToken));

    public static async Task<int> RunAsync(CommandArguments args, TextWriter output, CancellationToken cancellationToken)
    {
        using var channel = ServerChannel.Open(args);
        var client = new SegmentationService.SegmentationServiceClient(channel);
        var response = await RetryingCall.CallAsync(deadline => client.ListModelsAsync(new ListModelsRequest(), deadline: deadline, cancellationToken: cancellationToken), TimeSpan.FromSeconds(30), cancellationToken).ConfigureAwait(false);
        foreach (var model in response.Models)
        {
            await output.WriteLineAsync($"{model.Name} {model.Version} ({model.ModelType}, {model.NumQueries} queries){(model.IsDefault ? " [default]" : string.Empty)}").ConfigureAwait(false);
            await output.WriteLineAsync($"  tasks: {string.Join(", ", model.SupportedTasks)}").ConfigureAwait(false);
            foreach (var device in model.Devices)
            {
                var fallback = device.FellBackToCpu ? $" (fell back to CPU: {device.FallbackReason})" : string.Empty;
                await output.WriteLineAsync($"  device {device.Name}: {device.Sessions} session(s) on {device.ExecutionProvider}{fallback}").ConfigureAwait(false);
            }

            foreach (var label in model.Labels)
            {
                await output.WriteLineAsync($"  {label.Id,3} {label.Name}{(label.IsThing ? " (thing)" : " (stuff)")}").ConfigureAwait(false);
            }
        }

        return 0;
    }
}
