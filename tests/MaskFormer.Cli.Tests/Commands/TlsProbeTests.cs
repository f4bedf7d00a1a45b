using System.Net;
using System.Net.Sockets;
using MaskFormer.Cli.Commands;

namespace MaskFormer.Cli.Tests.Commands;

// Against a real TLS server: CliTlsTests (Server.Tests), which start one, and ClientTlsTests (Tls12Server).
public sealed class TlsProbeTests
{
    [Fact]
    public async Task SpeaksTls_ServerAnsweringInCleartext_False()
    {
        using var listener = new TcpListener(IPAddress.Loopback, 0);
        listener.Start();
        var server = AnswerAsync(listener, "HTTP/1.1 400 Bad Request\r\nConnection: close\r\n\r\n"u8.ToArray());

        var speaksTls = await TlsProbe.SpeaksTlsAsync(Address(listener), CancellationToken.None);

        await server;
        Assert.False(speaksTls);
    }

    [Fact]
    public async Task SpeaksTls_ServerClosingWithoutAWord_Unknown()
    {
        using var listener = new TcpListener(IPAddress.Loopback, 0);
        listener.Start();
        var server = AnswerAsync(listener, []);

        var speaksTls = await TlsProbe.SpeaksTlsAsync(Address(listener), CancellationToken.None);

        await server;
        Assert.Null(speaksTls);
    }

    [Fact]
    public async Task SpeaksTls_NothingListening_Unknown()
    {
        using var listener = new TcpListener(IPAddress.Loopback, 0);
        listener.Start();
        var address = Address(listener);
        listener.Stop();

        Assert.Null(await TlsProbe.SpeaksTlsAsync(address, CancellationToken.None));
    }

    private static Uri Address(TcpListener listener) => new($"https://127.0.0.1:{((IPEndPoint)listener.LocalEndpoint).Port}");

    // Reads the ClientHello's first bytes, writes the answer, closes.
    private static async Task AnswerAsync(TcpListener listener, byte[] answer)
    {
        using var client = await listener.AcceptTcpClientAsync();
        var stream = client.GetStream();
        var hello = new byte[5];
        await stream.ReadExactlyAsync(hello);
        Assert.Equal(0x16, hello[0]);
        await stream.WriteAsync(answer);
    }
}
