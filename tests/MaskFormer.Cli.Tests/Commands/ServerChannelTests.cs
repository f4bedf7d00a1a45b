using MaskFormer.Cli.Commands;

namespace MaskFormer.Cli.Tests.Commands;

public sealed class ServerChannelTests
{
    [Fact]
    public void CreateHandler_StreamWindow_HoldsALargeAnswerWhole()
    {
        // A 1920x1080 answer with 100 instance masks is about 3.2 MB: with a window at least that large the
        // client sends no stream WINDOW_UPDATE mid-answer, the race that loses Kestrel responses.
        using var handler = ServerChannel.CreateHandler();

        Assert.Equal(16 << 20, handler.InitialHttp2StreamWindowSize);
        Assert.True(handler.EnableMultipleHttp2Connections);
    }

    [Fact]
    public void CreateOptions_ReceiveLimit_NoneOfTheClientsOwn()
    {
        // The .NET client's default refuses answers over 4 MB and blames the server; the server bounds them.
        var options = ServerChannel.CreateOptions();

        Assert.Null(options.MaxReceiveMessageSize);
        options.HttpHandler!.Dispose();
    }

    [Fact]
    public void Open_Address_ChannelForThatAddress()
    {
        using var channel = ServerChannel.Open(new Uri("http://127.0.0.1:5099"));

        Assert.Equal("127.0.0.1:5099", channel.Target);
    }
}
