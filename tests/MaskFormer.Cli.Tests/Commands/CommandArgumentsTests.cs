using MaskFormer.Cli.Commands;

namespace MaskFormer.Cli.Tests.Commands;

public sealed class CommandArgumentsTests
{
    [Theory]
    [InlineData("127.0.0.1:5099", "http://127.0.0.1:5099/")]
    [InlineData("http://localhost:5099", "http://localhost:5099/")]
    [InlineData("https://segment.example:443", "https://segment.example/")]
    [InlineData("http://segment.example", "http://segment.example:80/")]
    [InlineData("https://segment.example", "https://segment.example:443/")]
    [InlineData("[::1]:5081", "http://[::1]:5081/")]
    [InlineData("https://[::1]:5081", "https://[::1]:5081/")]
    public void ServerAddress_HostPortOrUrl_IsAUrl(string given, string expected)
    {
        var args = new CommandArguments(["--server", given]);

        Assert.Equal(new Uri(expected), args.ServerAddress);
    }

    [Fact]
    public void ServerAddress_FromTheSharedEnvironmentVariable_WhenNoOptionGiven()
    {
        var before = Environment.GetEnvironmentVariable(CommandArguments.AddressVariable);
        try
        {
            Environment.SetEnvironmentVariable("MASKFORMER_ADDRESS", "127.0.0.1:5231");
            Assert.Equal(new Uri("http://127.0.0.1:5231/"), new CommandArguments([]).ServerAddress);
            Assert.Equal(new Uri("http://10.0.0.1:1/"), new CommandArguments(["--server=10.0.0.1:1"]).ServerAddress);

            Environment.SetEnvironmentVariable("MASKFORMER_ADDRESS", null);
            Assert.Equal(new Uri("http://127.0.0.1:5081/"), new CommandArguments([]).ServerAddress);
        }
        finally
        {
            Environment.SetEnvironmentVariable(CommandArguments.AddressVariable, before);
        }
    }

    [Theory]
    [InlineData("127.0.0.1")]
    [InlineData("localhost")]
    [InlineData("localhost/")]
    [InlineData("[::1]")]
    [InlineData("::1")]
    public void ServerAddress_HostWithoutAPort_IsAUsageErrorSayingSo(string given)
    {
        var error = Assert.Throws<UsageException>(() => new CommandArguments(["--server", given]).ServerAddress);

        Assert.Equal(
            $"--server (or MASKFORMER_ADDRESS) takes host:port or http(s)://host[:port]; {given} has no port (the service listens on 5081 unless told otherwise)",
            error.Message);
    }

    [Theory]
    [InlineData("127.0.0.1:", "")]
    [InlineData("127.0.0.1:abc", "abc")]
    [InlineData("127.0.0.1:0", "0")]
    [InlineData("127.0.0.1:70000", "70000")]
    [InlineData("127.0.0.1:-1", "-1")]
    [InlineData("[::1]:", "")]
    [InlineData("[::1]:abc", "abc")]
    [InlineData("http://127.0.0.1:", "")]
    [InlineData("http://127.0.0.1:abc", "abc")]
    [InlineData("http://127.0.0.1:0", "0")]
    [InlineData("https://127.0.0.1:70000/", "70000")]
    [InlineData("https://[::1]:0", "0")]
    public void ServerAddress_PortNotFrom1To65535_IsAUsageErrorSayingSo(string given, string port)
    {
        var error = Assert.Throws<UsageException>(() => new CommandArguments(["--server", given]).ServerAddress);

        Assert.Equal(
            $"--server (or MASKFORMER_ADDRESS) takes host:port or http(s)://host[:port]; {given} has port \"{port}\", which is not a number from 1 to 65535",
            error.Message);
    }

    [Theory]
    [InlineData("127.0.0.1:1", "http://127.0.0.1:1/")]
    [InlineData("127.0.0.1:65535", "http://127.0.0.1:65535/")]
    [InlineData("https://[::1]:65535/", "https://[::1]:65535/")]
    public void ServerAddress_PortAtTheEndsOfTheRange_IsAUrl(string given, string expected)
    {
        Assert.Equal(new Uri(expected), new CommandArguments(["--server", given]).ServerAddress);
    }

    [Theory]
    [InlineData("ftp://x", "ftp")]
    [InlineData("ftp://127.0.0.1:5081", "ftp")]
    [InlineData("grpc://127.0.0.1:5081", "grpc")]
    [InlineData("unix:///tmp/maskformer.sock", "unix")]
    [InlineData("HTTP://127.0.0.1:5081", "HTTP")]
    [InlineData("://127.0.0.1:5081", "")]
    public void ServerAddress_SchemeNotHttpOrHttps_IsAUsageErrorSayingSo(string given, string scheme)
    {
        var error = Assert.Throws<UsageException>(() => new CommandArguments(["--server", given]).ServerAddress);

        Assert.Equal(
            $"--server (or MASKFORMER_ADDRESS) takes host:port or http(s)://host[:port]; {given} has scheme \"{scheme}\", which is not http or https",
            error.Message);
    }

    [Theory]
    [InlineData("http://127.0.0.1:5081/api", "/api")]
    [InlineData("127.0.0.1:5081/x", "/x")]
    [InlineData("https://[::1]:5081/a/b/", "/a/b")]
    [InlineData("http://segment.example/api", "/api")]
    [InlineData("127.0.0.1/x", "/x")]
    [InlineData("127.0.0.1:5081/grpc://x", "/grpc://x")]
    public void ServerAddress_WithAPath_IsAUsageErrorSayingSo(string given, string path)
    {
        var error = Assert.Throws<UsageException>(() => new CommandArguments(["--server", given]).ServerAddress);

        Assert.Equal(
            $"--server (or MASKFORMER_ADDRESS) takes host:port or http(s)://host[:port]; {given} has path \"{path}\", which a gRPC address cannot have",
            error.Message);
    }

    [Theory]
    [InlineData(":5081")]
    [InlineData("http://:5081")]
    [InlineData("https://:443/")]
    [InlineData("[]:5081")]
    [InlineData("http://")]
    [InlineData(":abc")]
    public void ServerAddress_NoHost_IsAUsageErrorSayingSo(string given)
    {
        var error = Assert.Throws<UsageException>(() => new CommandArguments(["--server", given]).ServerAddress);

        Assert.Equal($"--server (or MASKFORMER_ADDRESS) takes host:port or http(s)://host[:port]; {given} has no host", error.Message);
    }

    [Theory]
    [InlineData("http://::1:5081", "::1:5081")]
    [InlineData("https://::1", "::1")]
    [InlineData("http://fe80::1/", "fe80::1")]
    [InlineData("http://[::1", "[::1")]
    public void ServerAddress_UrlWithAnUnbracketedIPv6Host_IsAUsageErrorSayingSo(string given, string host)
    {
        // In the shared words, not Uri's own; the Python, Node and Go examples took "::1:5081" for a host and added port 80.
        var error = Assert.Throws<UsageException>(() => new CommandArguments(["--server", given]).ServerAddress);

        Assert.Equal($"--server (or MASKFORMER_ADDRESS) takes host:port or http(s)://host[:port]; {given} has host \"{host}\": an IPv6 host goes in brackets ([::1]:5081)", error.Message);
    }

    [Fact]
    public void Constructor_SwitchBeforeAPath_LeavesThePathPositional()
    {
        var args = new CommandArguments(["--panoptic", "clip/", "--out", "o", "--no-pacing", "-h"]);

        Assert.Equal(["clip/"], args.Positional);
        Assert.True(args.Has("panoptic") && args.Has("no-pacing") && args.WantsHelp);
        Assert.Equal("o", args.Get("out", "."));
    }

    [Fact]
    public void Constructor_OptionWithoutValue_IsAFormatError()
    {
        Assert.Throws<FormatException>(() => new CommandArguments(["image.png", "--out"]));
    }

    [Fact]
    public void Unknown_MisspelledOption_IsNamed()
    {
        var args = new CommandArguments(["image.png", "--ot", "dir", "--server", "x:1"]);

        Assert.Equal(["--ot"], args.Unknown(["out"]));
    }
}
