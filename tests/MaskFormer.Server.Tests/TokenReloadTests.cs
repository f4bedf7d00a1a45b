using Grpc.Core;
using Grpc.Net.Client;
using MaskFormer.Contracts.V1;

namespace MaskFormer.Server.Tests;

/// <summary>
/// Bearer tokens re-read from their file without a restart, over real HTTP/2: the file laid out as a
/// Kubernetes secret volume mounts it (tokens → ..data/tokens, ..data → a timestamped folder), updated
/// by rewriting it in place and by swapping the ..data symlink as the kubelet does.
/// </summary>
public sealed class TokenReloadTests : IAsyncLifetime
{
    private const string First = "first-token-0123456789";
    private const string Added = "added-token-9876543210";
    private readonly string _dir = Directory.CreateTempSubdirectory("maskformer-tokens-").FullName;
    private Microsoft.AspNetCore.Builder.WebApplication _app = null!;
    private GrpcChannel _channel = null!;

    public async Task InitializeAsync()
    {
        WriteVersion("..2026_12_02_first", First);
        File.CreateSymbolicLink(Path.Combine(_dir, "..data"), "..2026_12_02_first");
        File.CreateSymbolicLink(Path.Combine(_dir, "tokens"), Path.Combine("..data", "tokens"));
        Uri address;
        (_app, address) = await ServerFixture.StartAsync(ServerFixture.Arguments(
            "--MaskFormer:Inference:WarmUp=false",
            $"--MaskFormer:Security:TokensFile={Path.Combine(_dir, "tokens")}"));
        _channel = GrpcChannel.ForAddress(address);
    }

    public async Task DisposeAsync()
    {
        _channel.Dispose();
        await _app.StopAsync();
        await _app.DisposeAsync();
        Directory.Delete(_dir, recursive: true);
    }

    [Fact]
    public async Task Call_TokenAddedThenRemovedInTheFile_AcceptedThenRejectedWithoutRestart()
    {
        Assert.Equal(StatusCode.OK, await ListModelsAsync(First));
        Assert.Equal(StatusCode.Unauthenticated, await ListModelsAsync(Added));

        // Added: the file rewritten in place (its time and size change).
        File.WriteAllText(Path.Combine(_dir, "..2026_12_02_first", "tokens"), $"# rotated\n{First}\n{Added}\n");
        Assert.Equal(StatusCode.OK, await ListModelsAsync(Added));
        Assert.Equal(StatusCode.OK, await ListModelsAsync(First));

        // Removed: a new secret version and the ..data symlink swapped atomically, as the kubelet does.
        WriteVersion("..2026_12_02_second", Added);
        File.CreateSymbolicLink(Path.Combine(_dir, "..data_tmp"), "..2026_12_02_second");
        await RenameOverAsync(Path.Combine(_dir, "..data_tmp"), Path.Combine(_dir, "..data"));
        Assert.Equal(StatusCode.Unauthenticated, await ListModelsAsync(First));
        Assert.Equal(StatusCode.OK, await ListModelsAsync(Added));

        // Emptied: every call is refused; authentication does not turn itself off.
        File.WriteAllText(Path.Combine(_dir, "..2026_12_02_second", "tokens"), "# none\n");
        Assert.Equal(StatusCode.Unauthenticated, await ListModelsAsync(Added));
        Assert.Equal(StatusCode.Unauthenticated, await ListModelsAsync(null));
    }

    [Fact]
    public async Task Call_TokensFileGone_KeepsTheTokensLoadedLastUntilItComesBack()
    {
        Assert.Equal(StatusCode.OK, await ListModelsAsync(First));

        // The file itself gone (a key removed from the secret takes its link away): every call used to
        // fail UNKNOWN. Then a target that is gone behind its link.
        File.Delete(Path.Combine(_dir, "tokens"));
        Assert.Equal(StatusCode.OK, await ListModelsAsync(First));
        Assert.Equal(StatusCode.Unauthenticated, await ListModelsAsync(Added));
        File.CreateSymbolicLink(Path.Combine(_dir, "tokens"), Path.Combine("..data", "tokens"));
        File.Delete(Path.Combine(_dir, "..2026_12_02_first", "tokens"));
        Assert.Equal(StatusCode.OK, await ListModelsAsync(First));

        File.WriteAllText(Path.Combine(_dir, "..2026_12_02_first", "tokens"), $"{Added}\n");
        Assert.Equal(StatusCode.OK, await ListModelsAsync(Added));
        Assert.Equal(StatusCode.Unauthenticated, await ListModelsAsync(First));
    }

    // rename(2) of a symlink over another; File.Move follows a link to a folder and refuses.
    private static async Task RenameOverAsync(string source, string target)
    {
        using var mv = System.Diagnostics.Process.Start(new System.Diagnostics.ProcessStartInfo("mv", ["-T", source, target]))!;
        await mv.WaitForExitAsync();
        Assert.Equal(0, mv.ExitCode);
    }

    private void WriteVersion(string folder, string token)
    {
        Directory.CreateDirectory(Path.Combine(_dir, folder));
        File.WriteAllText(Path.Combine(_dir, folder, "tokens"), $"{token}\n");
    }

    private async Task<StatusCode> ListModelsAsync(string? token)
    {
        try
        {
            await new SegmentationService.SegmentationServiceClient(_channel).ListModelsAsync(
                new ListModelsRequest(), token is null ? [] : SecureServerFixture.Bearer(token), deadline: DateTime.UtcNow.AddSeconds(30));
            return StatusCode.OK;
        }
        catch (RpcException ex)
        {
            return ex.StatusCode;
        }
    }
}
