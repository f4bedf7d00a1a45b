using Grpc.Core;
using Grpc.Health.V1;

namespace MaskFormer.Cli.Commands;

/// <summary>
/// <c>maskformer health [--wait SECONDS]</c>: asks grpc.health.v1 whether the server is SERVING;
/// with --wait, polls until it is or the time runs out. Exit code 0 only when SERVING.
/// </summary>
internal static class HealthCommand
{
    public static CommandInfo Info { get; } = new(
        "health",
        "is the server SERVING? (exit 0 only when it is)",
        $"""
        usage: maskformer health [--wait SECONDS] [--service NAME] [--server ADDRESS]
        Asks grpc.health.v1 whether the server is SERVING; prints the status. Exit code 0 only when SERVING.
          --wait SECONDS         keep asking until SERVING or the time is up (default 0: ask once); a TLS refusal
                                 (of the server's certificate, or of this client by the server) or the wrong
                                 scheme (http:// or https://) ends it early: waiting cannot change those
          --service NAME         a service name to ask about (default: the whole server)
        {CliApp.ServerHelp}
        """,
        ["wait", "service"],
        (args, output, _, cancellationToken) => RunAsync(args, output, cancellationToken));

    public static async Task<int> RunAsync(CommandArguments args, TextWriter output, CancellationToken cancellationToken)
    {
        var address = args.ServerAddress;
        using var channel = ServerChannel.Open(args);
        var client = new Health.HealthClient(channel);
        var until = DateTime.UtcNow.AddSeconds(args.GetDouble("wait", 0));
        var status = string.Empty;
        RpcException? unreachable = null;
        var closedBefore = false;
        do
        {
            try
            {
                var response = await client.CheckAsync(new HealthCheckRequest { Service = args.Get("service", string.Empty) }, deadline: DateTime.UtcNow.AddSeconds(5), cancellationToken: cancellationToken).ConfigureAwait(false);
                (status, unreachable) = (response.Status.ToString().ToUpperInvariant(), null);
                if (response.Status == HealthCheckResponse.Types.ServingStatus.Serving)
                {
                    await output.WriteLineAsync("SERVING").ConfigureAwait(false);
                    return 0;
                }
            }
            catch (RpcException ex) when (ex.StatusCode is StatusCode.Unavailable or StatusCode.DeadlineExceeded
                || (ex.StatusCode is StatusCode.Internal && ex.Status.DebugException is System.Net.Http.HttpRequestException or IOException))
            {
                unreachable = ex;

                // Retried (what a server still starting gives): a refused connection, a name not resolving
                // yet, no route, a timeout; and its own UNAVAILABLE or NOT_SERVING answers (above).
                // Not retried, since a restart keeps a server's certificate and protocol: a failed TLS
                // handshake, said at once (this client refusing the server's certificate: its CA, its name,
                // its dates; https:// at a cleartext server; with TLS 1.2, the server refusing this client's
                // certificate); a server that ends every new connection before the first call, said after a
                // second try in a row, since a server shutting down ends a new connection once (a TLS server
                // refusing this client's certificate or wanting one, with TLS 1.3; http:// at a TLS server).
                // TlsHintAsync below then says which.
                var closed = RetryingCall.IsConnectionClosedBeforeTheCall(ex.Status);
                if (ClientTls.IsHandshakeRefused(ex.Status.DebugException) || (closed && closedBefore))
                {
                    break;
                }

                closedBefore = closed;
            }

            if (DateTime.UtcNow < until)
            {
                await Task.Delay(250, cancellationToken).ConfigureAwait(false);
            }
        }
        while (DateTime.UtcNow < until);

        // The hint for the last failure only: it may probe the server (TlsProbe), once rather than on every try.
        if (unreachable is not null)
        {
            var hint = await CliApp.TlsHintAsync(args, unreachable, cancellationToken).ConfigureAwait(false);
            status = $"UNREACHABLE: no answer from {address.ToString().TrimEnd('/')} ({CliApp.Reason(unreachable)}){(hint is null ? string.Empty : $". {hint}")}";
        }

        await output.WriteLineAsync(status).ConfigureAwait(false);
        return 1;
    }
}
