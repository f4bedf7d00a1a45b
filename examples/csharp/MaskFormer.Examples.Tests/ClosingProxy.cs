using System.Buffers.Binary;
using System.Net;
using System.Net.Sockets;

namespace MaskFormer.Examples.Tests;

/// <summary>
/// A fault no real server causes on demand: a server that closes a new connection before its first call, as
/// a server shutting down does to one it had just accepted. A TCP proxy in front of the live server: the
/// first connection (the example's connection check) is passed through, with an HTTP/2 GOAWAY added before
/// its first call's trailers, so that the next call needs a new connection; the next
/// <c>closedConnections</c> connections are closed once the client has sent its preface; later ones are
/// passed through.
/// </summary>
internal sealed class ClosingProxy : IDisposable
{
    private const int FrameHeaderSize = 9;
    private const byte HeadersFrame = 0x1;
    private const byte GoAwayFrame = 0x7;
    private const byte EndStream = 0x1;

    // The client's connection preface, then its SETTINGS frame's header.
    private const int ClientPrefaceSize = 24 + FrameHeaderSize;

    private readonly TcpListener _listener = new(IPAddress.Loopback, 0);
    private readonly string _server;
    private readonly int _closedConnections;
    private readonly CancellationTokenSource _stop = new();
    private readonly Task _accepting;
    private int _connections;

    public ClosingProxy(string server, int closedConnections)
    {
        // The live server's host:port, as MASKFORMER_ADDRESS may give it with its scheme.
        _server = server.Contains("://", StringComparison.Ordinal) ? new Uri(server).Authority : server;
        _closedConnections = closedConnections;
        _listener.Start();
        _accepting = AcceptAsync();
    }

    public string Address => $"127.0.0.1:{((IPEndPoint)_listener.LocalEndpoint).Port}";

    /// <summary>Connections accepted so far.</summary>
    public int Connections => Volatile.Read(ref _connections);

    public void Dispose()
    {
        _stop.Cancel();
        _listener.Stop();
        try
        {
            _accepting.Wait(TimeSpan.FromSeconds(10));
        }
        catch (AggregateException)
        {
            // Stopped.
        }

        _stop.Dispose();
    }

    private async Task AcceptAsync()
    {
        var connections = new List<Task>();
        try
        {
            while (!_stop.IsCancellationRequested)
            {
                var client = await _listener.AcceptTcpClientAsync(_stop.Token);
                var index = Interlocked.Increment(ref _connections);
                connections.Add(index == 1 || index - 1 > _closedConnections ? PassAsync(client, goAwayAfterFirstCall: index == 1) : CloseAsync(client));
            }
        }
        catch (Exception ex) when (ex is OperationCanceledException or SocketException or ObjectDisposedException)
        {
            // Stopped.
        }

        await Task.WhenAll(connections).ContinueWith(t => _ = t.Exception, TaskScheduler.Default);
    }

    // Reads the client's preface, so that nothing it sent is left unread (which would reset the connection
    // rather than close it), then closes: .NET's client sees the HTTP/2 connection closed before its call.
    private async Task CloseAsync(TcpClient client)
    {
        using (client)
        {
            var stream = client.GetStream();
            var preface = new byte[ClientPrefaceSize];
            await stream.ReadExactlyAsync(preface, _stop.Token);
            var settings = new byte[(preface[24] << 16) | (preface[25] << 8) | preface[26]];
            await stream.ReadExactlyAsync(settings, _stop.Token);
            client.Client.Shutdown(SocketShutdown.Send);
        }
    }

    private async Task PassAsync(TcpClient client, bool goAwayAfterFirstCall)
    {
        using (client)
        using (var server = new TcpClient())
        {
            var colon = _server.LastIndexOf(':');
            await server.ConnectAsync(_server[..colon], int.Parse(_server[(colon + 1)..], System.Globalization.CultureInfo.InvariantCulture), _stop.Token);
            using var done = CancellationTokenSource.CreateLinkedTokenSource(_stop.Token);
            var up = CopyAsync(client.GetStream(), server.GetStream(), done.Token);
            var down = goAwayAfterFirstCall ? CopyWithGoAwayAsync(server.GetStream(), client.GetStream(), done.Token) : CopyAsync(server.GetStream(), client.GetStream(), done.Token);
            await Task.WhenAny(up, down);
            await done.CancelAsync();
            await Task.WhenAll(up, down).ContinueWith(t => _ = t.Exception, TaskScheduler.Default);
        }
    }

    private static async Task CopyAsync(NetworkStream from, NetworkStream to, CancellationToken cancellationToken)
    {
        var buffer = new byte[64 << 10];
        int read;
        while ((read = await from.ReadAsync(buffer, cancellationToken)) > 0)
        {
            await to.WriteAsync(buffer.AsMemory(0, read), cancellationToken);
        }
    }

    // The server's frames one by one, and a GOAWAY (NO_ERROR, last stream 1) before the trailers of stream 1:
    // what a server shutting down sends, so the client opens its next call on a new connection.
    private static async Task CopyWithGoAwayAsync(NetworkStream from, NetworkStream to, CancellationToken cancellationToken)
    {
        var header = new byte[FrameHeaderSize];
        var sent = false;
        while (true)
        {
            await from.ReadExactlyAsync(header, cancellationToken);
            var length = (header[0] << 16) | (header[1] << 8) | header[2];
            var streamId = BinaryPrimitives.ReadInt32BigEndian(header.AsSpan(5)) & 0x7FFFFFFF;
            var payload = new byte[length];
            await from.ReadExactlyAsync(payload, cancellationToken);
            if (!sent && streamId == 1 && header[3] == HeadersFrame && (header[4] & EndStream) != 0)
            {
                byte[] goAway = [0, 0, 8, GoAwayFrame, 0, 0, 0, 0, 0, 0, 0, 0, 1, 0, 0, 0, 0];
                await to.WriteAsync(goAway, cancellationToken);
                sent = true;
            }

            await to.WriteAsync(header, cancellationToken);
            await to.WriteAsync(payload, cancellationToken);
        }
    }
}
