using Grpc.Core;
using MaskFormer.Cli.Commands;

namespace MaskFormer.Cli.Tests.Commands;

public sealed class HealthCommandTests
{
    [Fact]
    public void Reason_HandshakeEndedUnderTheClient_NamesTheConnectionsErrorNotTheDisposedSslStream()
    {
        // As .NET's client reported a TLS server that ended the handshake for want of a client certificate
        // (seen in 3 of 3 runs of `health --wait` by an audit): the innermost exception says nothing.
        var refused = new System.Net.Http.HttpRequestException(
            "The SSL connection could not be established, see inner exception.",
            new IOException("Received an unexpected EOF or 0 bytes from the transport stream.", new ObjectDisposedException("System.Net.Security.SslStream")));
        var error = new RpcException(new Status(StatusCode.Unavailable, "Error starting gRPC call.", refused));

        Assert.Equal("Received an unexpected EOF or 0 bytes from the transport stream.", CliApp.Reason(error));
    }

    [Fact]
    public void Reason_NothingListening_TheSocketsMessage()
    {
        var error = new RpcException(new Status(StatusCode.Unavailable, "Error connecting to subchannel.", new System.Net.Http.HttpRequestException("Connection refused (127.0.0.1:1)", new System.Net.Sockets.SocketException(111))));

        Assert.Equal(new System.Net.Sockets.SocketException(111).Message, CliApp.Reason(error));
    }
}
