using Grpc.Net.Client;

namespace MaskFormer.Examples;

/// <summary>The connection options both commands take: --server, --connect-timeout, --wait-for-server.</summary>
internal sealed record Connection(string Address, TimeSpan Timeout, bool WaitForServer)
{
    public const string Usage = """
          --server ADDRESS            host:port or http(s)://host[:port], https:// for TLS (default $MASKFORMER_ADDRESS, else 127.0.0.1:5081);
                                      a URL without a port takes its scheme's (80, 443), an IPv6 host goes in brackets ([::1]:5081);
                                      a host alone, no host, a port not from 1 to 65535, a path or a scheme other than
                                      http(s) is refused (exit 2)
          --connect-timeout SECONDS   the longest wait for a connection (default 15)
          --wait-for-server           try a failed connection again until --connect-timeout (the last try at it)
                                      instead of failing at once
                                      (not a refused certificate or the wrong scheme: waiting cannot change those)
        """;

    public static readonly string[] Options = ["server", "connect-timeout"];
    public static readonly string[] Flags = ["wait-for-server"];

    public static Connection From(CommandLine line) =>
        new(ServerConnection.Address(line), TimeSpan.FromSeconds(line.Seconds("connect-timeout", 15)), line.Has("wait-for-server"));

    /// <summary>A channel a server answers on; <see cref="ConnectionException"/> (exit 2) when there is none.</summary>
    public Task<GrpcChannel> OpenAsync(CancellationToken cancellationToken) => ServerConnection.ConnectAsync(Address, Timeout, WaitForServer, cancellationToken);
}
