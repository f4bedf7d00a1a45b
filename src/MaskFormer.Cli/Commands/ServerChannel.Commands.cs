using Grpc.Net.Client;

namespace MaskFormer.Cli.Commands;

// Apart from ServerChannel.cs, which the benchmarks compile too: this half needs the CLI's own types.
internal static partial class ServerChannel
{
    /// <summary>A channel to the command's server (<see cref="CommandArguments.ServerAddress"/>) with its TLS settings (<see cref="ClientTls"/>).</summary>
    public static GrpcChannel Open(CommandArguments args)
    {
        var address = args.ServerAddress;
        return GrpcChannel.ForAddress(address, CreateOptions(ClientTls.From(args, address).Apply));
    }
}
