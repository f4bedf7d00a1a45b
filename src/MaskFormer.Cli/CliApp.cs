using System.ComponentModel;
using System.Net.Http;
using Grpc.Core;
using MaskFormer.Cli.Commands;

namespace MaskFormer.Cli;

/// <summary>
/// Dispatches "maskformer COMMAND ...": help on request (exit 0), usage errors (exit 2), the
/// failures a user can act on (server unreachable, bad file, missing ffmpeg) as one line (exit 1),
/// and Ctrl+C (exit 130, as a shell reports SIGINT).
/// </summary>
internal static class CliApp
{
    public const string ServerHelp = $"""
          --server ADDRESS       the server, host:port or http(s)://host[:port] (default ${CommandArguments.AddressVariable}, else {CommandArguments.DefaultAddress});
                                 host:port and http:// are cleartext, https:// is TLS; a URL without a port takes its scheme's (80, 443);
                                 an IPv6 host goes in brackets ([::1]:5081); a host alone, no host, a port not from 1 to 65535, a path
                                 or a scheme other than http(s) is refused (exit 2)

        """ + ClientTls.Help;

    public static IReadOnlyList<CommandInfo> Commands { get; } =
    [
        SegmentCommand.Info,
        StreamCommand.Info,
        ModelsCommand.Info,
        HealthCommand.Info,
    ];

    public static async Task<int> RunAsync(string[] args, TextWriter output, TextWriter error, CancellationToken cancellationToken)
    {
        var name = args.FirstOrDefault();
        if (name is null)
        {
            await error.WriteLineAsync(Overview()).ConfigureAwait(false);
            return 2;
        }

        if (name is "-h" or "--help" or "help")
        {
            var topic = args.Skip(1).FirstOrDefault();
            var about = Commands.FirstOrDefault(c => c.Name == topic);
            await output.WriteLineAsync(about is null ? Overview() : about.Help).ConfigureAwait(false);
            return 0;
        }

        if (name == "--version")
        {
            await output.WriteLineAsync(typeof(CliApp).Assembly.GetName().Version?.ToString(3)).ConfigureAwait(false);
            return 0;
        }

        var command = Commands.FirstOrDefault(c => c.Name == name);
        if (command is null)
        {
            await error.WriteLineAsync($"maskformer: unknown command '{name}'.{Environment.NewLine}{Overview()}").ConfigureAwait(false);
            return 2;
        }

        CommandArguments arguments;
        try
        {
            arguments = new CommandArguments(args.Skip(1));
        }
        catch (FormatException ex)
        {
            await error.WriteLineAsync($"maskformer {name}: {ex.Message}{Environment.NewLine}{command.Help}").ConfigureAwait(false);
            return 2;
        }

        if (arguments.WantsHelp)
        {
            await output.WriteLineAsync(command.Help).ConfigureAwait(false);
            return 0;
        }

        if (arguments.Unknown(command.Options).FirstOrDefault() is { } unknown)
        {
            await error.WriteLineAsync($"maskformer {name}: unknown option {unknown}.{Environment.NewLine}{command.Help}").ConfigureAwait(false);
            return 2;
        }

        try
        {
            return await command.RunAsync(arguments, output, error, cancellationToken).ConfigureAwait(false);
        }
        catch (RpcException ex) when (IsUnreachable(ex))
        {
            await error.WriteLineAsync($"maskformer {name}: {await UnreachableAsync(ex, arguments, cancellationToken).ConfigureAwait(false)}").ConfigureAwait(false);
            return 1;
        }
        catch (Exception ex) when (Describe(ex, arguments) is { } message)
        {
            await error.WriteLineAsync($"maskformer {name}: {message}").ConfigureAwait(false);
            return ex switch
            {
                UsageException => 2,
                OperationCanceledException or RpcException { StatusCode: StatusCode.Cancelled } => 130,
                _ => 1,
            };
        }
    }

    public static string Overview() => $"""
        maskformer: a client for MaskFormer Serve.
        usage: maskformer COMMAND [ARGUMENTS] [--server ADDRESS]
        {string.Join(Environment.NewLine, Commands.Select(c => $"  {c.Name,-8} {c.Summary}"))}
        Run 'maskformer COMMAND --help' for a command's options.
        The server address is --server, else ${CommandArguments.AddressVariable}, else {CommandArguments.DefaultAddress}: host:port or http(s)://host[:port] (https:// for TLS).
        With ${ServerChannel.TokenVariable} set, every call carries it as a bearer token.
        For an https:// server with a private CA or mutual TLS: --ca-cert, --client-cert and --client-key (or ${ClientTls.CaVariable}, ${ClientTls.CertificateVariable}, ${ClientTls.KeyVariable}).
        """;

    // A user can act on these; anything else is a bug and keeps its stack trace.
    private static string? Describe(Exception ex, CommandArguments arguments)
    {
        switch (ex)
        {
            case UsageException or FormatException or IOException or UnauthorizedAccessException or InvalidDataException:
                return ex.Message;
            case SixLabors.ImageSharp.ImageFormatException:
                return $"an image could not be read ({ex.Message}).";
            case Win32Exception:
                return $"a program could not be started ({ex.Message}); is ffmpeg installed?";
            case OperationCanceledException:
            case RpcException { StatusCode: StatusCode.Cancelled }:
                return "cancelled.";
            case RpcException rpc:
                return $"the server at {SafeAddress(arguments)} answered {rpc.StatusCode}: {rpc.Status.Detail}";
            default:
                return null;
        }
    }

    private static bool IsUnreachable(RpcException ex) =>
        ex.StatusCode is StatusCode.Unavailable or StatusCode.DeadlineExceeded or StatusCode.Internal
        && ex.Status.DebugException is HttpRequestException or IOException or System.Net.Sockets.SocketException;

    private static async Task<string> UnreachableAsync(RpcException ex, CommandArguments arguments, CancellationToken cancellationToken)
    {
        var at = SafeAddress(arguments);
        var overTls = at.StartsWith("https://", StringComparison.Ordinal) ? " over TLS" : string.Empty;
        return await TlsHintAsync(arguments, ex, cancellationToken).ConfigureAwait(false) is { } hint
            ? $"cannot reach the server at {at}{overTls} ({Reason(ex)}). {hint}"
            : $"cannot reach the server at {at} ({Reason(ex)}). Start it, or point --server or ${CommandArguments.AddressVariable} at it.";
    }

    /// <summary>
    /// What to check after a call failed at or just after connecting, from the command's address and TLS
    /// settings (<see cref="ClientTls.HintAsync"/>); null when neither is the question.
    /// </summary>
    internal static async Task<string?> TlsHintAsync(CommandArguments arguments, RpcException ex, CancellationToken cancellationToken)
    {
        Uri address;
        ClientTls tls;
        try
        {
            address = arguments.ServerAddress;
            tls = ClientTls.From(arguments, address);
        }
        catch (UsageException)
        {
            return null;
        }

        return await tls.HintAsync(address, ex.Status.DebugException, cancellationToken).ConfigureAwait(false);
    }

    /// <summary>
    /// Why a call could not reach the server: the innermost exception says most ("Connection refused", a
    /// certificate error), except the SslStream .NET disposes under a handshake the server ended
    /// (ObjectDisposedException), which says nothing.
    /// </summary>
    internal static string Reason(RpcException ex)
    {
        var reason = ex.Status.DebugException?.Message ?? ex.Status.Detail;
        for (var inner = ex.Status.DebugException; inner is not null; inner = inner.InnerException)
        {
            if (inner is not ObjectDisposedException)
            {
                reason = inner.Message;
            }
        }

        return reason;
    }

    private static string SafeAddress(CommandArguments arguments)
    {
        try
        {
            return arguments.ServerAddress.ToString().TrimEnd('/');
        }
        catch (UsageException)
        {
            return "(no valid address)";
        }
    }
}

/// <summary>A mistake in how the command was called; reported with exit code 2.</summary>
internal sealed class UsageException(string message) : Exception(message);
