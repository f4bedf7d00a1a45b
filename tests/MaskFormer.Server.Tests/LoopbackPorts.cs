using System.Net;
using System.Net.Sockets;

namespace MaskFormer.Server.Tests;

internal static class LoopbackPorts
{
    /// <summary>A loopback port nothing listens on: one the system gave and took back.</summary>
    public static int Free()
    {
        using var listener = new TcpListener(IPAddress.Loopback, 0);
        listener.Start();
        var port = ((IPEndPoint)listener.LocalEndpoint).Port;
        listener.Stop();
        return port;
    }
}
