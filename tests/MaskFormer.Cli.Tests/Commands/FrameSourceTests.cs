using System.Net;
using System.Net.Sockets;
using MaskFormer.Cli.Commands;

namespace MaskFormer.Cli.Tests.Commands;

public sealed class FrameSourceTests : IDisposable
{
    private readonly string _folder = Directory.CreateTempSubdirectory("maskformer-frames-").FullName;

    [Theory]
    [InlineData("nothing")]
    [InlineData("chain")]
    [InlineData("loop")]
    public async Task OpenAsync_FolderWithABrokenLink_RefusesItNamingTheLinkAndItsTarget(string kind)
    {
        var link = Path.Combine(_folder, "frame_001.png");
        var target = kind switch
        {
            "nothing" => Path.Combine(_folder, "removed.png"),
            "chain" => Path.Combine(_folder, "other.bin"),
            _ => Path.Combine(_folder, "back.bin"),
        };
        File.Copy(Path.Combine(RepositoryPaths.TinyShapes, "clip", "frame_000.png"), Path.Combine(_folder, "frame_000.png"));
        File.CreateSymbolicLink(link, target);
        if (kind == "chain")
        {
            File.CreateSymbolicLink(target, Path.Combine(_folder, "removed.png"));
        }
        else if (kind == "loop")
        {
            File.CreateSymbolicLink(target, link);
        }

        var refused = await Assert.ThrowsAsync<IOException>(() => FrameSource.OpenAsync(_folder, null, CancellationToken.None));

        Assert.Equal($"{link} is a broken symbolic link (to {target})", refused.Message);
    }

    [Fact]
    public async Task OpenAsync_LinksToAFrameAndToAFolder_SendsTheFrameAndLeavesOutTheFolder()
    {
        File.Copy(Path.Combine(RepositoryPaths.TinyShapes, "clip", "frame_000.png"), Path.Combine(_folder, "frame_000.png"));
        File.CreateSymbolicLink(Path.Combine(_folder, "frame_001.png"), "frame_000.png");
        Directory.CreateSymbolicLink(Path.Combine(_folder, "frame_002.png"), Directory.CreateDirectory(Path.Combine(_folder, "folder")).FullName);

        await using var source = await FrameSource.OpenAsync(_folder, null, CancellationToken.None);

        Assert.Equal(2, source.Count);
        var first = await source.NextAsync(CancellationToken.None);
        var second = await source.NextAsync(CancellationToken.None);
        Assert.Equal(["frame_000", "frame_001"], [first!.Value.Name, second!.Value.Name]);
        Assert.Equal(first.Value.Image.Encoded, second.Value.Image.Encoded);
        Assert.Null(await source.NextAsync(CancellationToken.None));
    }

    [Fact]
    public async Task OpenAsync_FrameOf2GiBOrMore_RefusesItNamingIt()
    {
        // Sparse: no disk used.
        var huge = Path.Combine(_folder, "frame_001.png");
        File.Copy(Path.Combine(RepositoryPaths.TinyShapes, "clip", "frame_000.png"), Path.Combine(_folder, "frame_000.png"));
        using (var file = new FileStream(huge, FileMode.CreateNew))
        {
            file.SetLength(3L << 30);
        }

        var refused = await Assert.ThrowsAsync<IOException>(() => FrameSource.OpenAsync(_folder, null, CancellationToken.None));

        Assert.StartsWith($"{huge} is {3L << 30} bytes", refused.Message, StringComparison.Ordinal);
    }

    [Fact]
    public async Task RunAsync_StreamFolderWithABrokenLink_ExitsOneBeforeConnecting()
    {
        var link = Path.Combine(_folder, "frame_001.png");
        var target = Path.Combine(_folder, "removed.png");
        File.Copy(Path.Combine(RepositoryPaths.TinyShapes, "clip", "frame_000.png"), Path.Combine(_folder, "frame_000.png"));
        File.CreateSymbolicLink(link, target);

        // Listening, never accepting: a connection the command opened would wait in its queue.
        using var listener = new TcpListener(IPAddress.Loopback, 0);
        listener.Start();
        using var output = new StringWriter();
        using var error = new StringWriter();

        var code = await CliApp.RunAsync(["stream", _folder, "--server", $"127.0.0.1:{((IPEndPoint)listener.LocalEndpoint).Port}", "--out", Path.Combine(_folder, "overlays")], output, error, CancellationToken.None);

        Assert.True(code == 1, $"exit code {code}: {output} {error}");
        Assert.Equal($"maskformer stream: {link} is a broken symbolic link (to {target})", error.ToString().Trim());
        Assert.False(listener.Pending(), "the command connected to the server");
        Assert.False(Directory.Exists(Path.Combine(_folder, "overlays")), "the command wrote overlays");
    }

    public void Dispose() => Directory.Delete(_folder, recursive: true);
}
