namespace MaskFormer.Cli.Commands;

/// <summary>One sub-command: its name, its help text, the options it takes and what runs it (with standard output, then standard error).</summary>
internal sealed record CommandInfo(
    string Name,
    string Summary,
    string Help,
    IReadOnlyList<string> Options,
    Func<CommandArguments, TextWriter, TextWriter, CancellationToken, Task<int>> RunAsync);
