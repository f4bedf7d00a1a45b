using Grpc.Health.V1;
using Grpc.Net.Client;

namespace MaskFormer.Cli.Commands;

/// <summary>
/// <c>maskformer health [--wait SECONDS]</c>: asks grpc.health.v1 whether the server is SERVING;
/// with --wait, polls until it is or the time runs out. Exit code 0 only when SERVING.
/// </summary>
internal static class HealthCommand
{
    public static async Task<int> RunAsync(CommandArguments args, TextWriter output, CancellationToken cancellationToken)
    {
        using var channel = GrpcChannel.ForAddress(args.ServerAddress);
        var client = new Health.HealthClient(channel);
        var until = DateTime.UtcNow.AddSeconds(args.GetDouble("wait", 0));
        var status = "UNREACHABLE";
        do
        {
            try
            {
                var response = await client.CheckAsync(new HealthCheckRequest { Service = args.Get("service", string.Empty) }, deadline: DateTime.UtcNow.AddSeconds(5), cancellationToken: cancellationToken).ConfigureAwait(false);
                status = response.Status.ToString();
                if (response.Status == HealthCheckResponse.Types.ServingStatus.Serving)
                {
                    await output.WriteLineAsync("SERVING").ConfigureAwait(false);
                    return 0;
                }
            }
            catch (Grpc.Core.RpcException ex) when (ex.StatusCode is Grpc.Core.StatusCode.Unavailable or Grpc.Core.StatusCode.DeadlineExceeded)
            {
                status = "UNREACHABLE";
            }

            if (DateTime.UtcNow < until)
            {
                await Task.Delay(250, cancellationToken).ConfigureAwait(false);
            }
        }
        while (DateTime.UtcNow < until);

        await output.WriteLineAsync(status).ConfigureAwait(false);
        return 1;
    }
}
