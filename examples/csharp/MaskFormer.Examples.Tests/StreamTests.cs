using System.Text.RegularExpressions;

namespace MaskFormer.Examples.Tests;

public sealed partial class StreamTests
{
    [Fact]
    public async Task Stream_Clip_AnswersEveryFrameOnceInOrderWithTracks()
    {
        using var folder = new TemporaryFolder();

        var run = await Example.RunAsync(["stream", Example.Clip, "--out", folder.Path, "--server", Example.Address]);

        Assert.True(run.ExitCode == 0, run.ToString());
        var frames = FrameLines(run.Output);
        Assert.Equal(Enumerable.Range(1, 16), frames.Select(f => f.Id));
        Assert.All(frames, f => Assert.Equal($"frame_{f.Id - 1:000}.png", f.Name));
        Assert.All(frames, f => Assert.StartsWith("result in ", f.Outcome, StringComparison.Ordinal));

        // Every panoptic thing segment carries a non-zero track id (label#track).
        Assert.All(frames, f => Assert.Matches(@"things: (\S+#[1-9]\d*)( \S+#[1-9]\d*)*;", f.Outcome));
        Assert.DoesNotContain("reconnected", run.Output, StringComparison.Ordinal);

        // Deltas (the default): the first result is complete, some later ones deltas, and every rebuilt frame
        // equals the complete answer of a stream without deltas, which took more bytes.
        Assert.EndsWith(" [complete]", frames[0].Outcome, StringComparison.Ordinal);
        Assert.Contains(frames, f => f.Outcome.Contains(" [delta: ", StringComparison.Ordinal));
        Assert.Contains("\ncheck: 16 of 16 rebuilt frames equal the complete answers\n", run.Output, StringComparison.Ordinal);
        var bytes = Assert.Single(run.Output.Split('\n'), l => l.StartsWith("bytes: ", StringComparison.Ordinal));
        Assert.Matches(@"^bytes: [\d,]+ with deltas, [\d,]+ without \(\d+\.\d % saved\)$", bytes);
        Assert.DoesNotContain("(-", bytes, StringComparison.Ordinal);
        Assert.EndsWith("sent 16, results 16, errors 0, skipped 0\n", run.Output, StringComparison.Ordinal);

        // --out: each result's files, as segment writes them.
        Assert.Equal(32, Directory.GetFiles(folder.Path, "frame_0??.*").Length);
        Assert.Equal(16, Directory.GetFiles(folder.Path, "frame_0??.json").Length);
    }

    [Fact]
    public async Task Stream_AllThreeTasksWithDeltas_RebuildsToExactlyTheCompleteAnswers()
    {
        var run = await Example.RunAsync(["stream", Example.Clip, "--tasks", "semantic,instance,panoptic", "--server", Example.Address]);

        Assert.True(run.ExitCode == 0, run.ToString());
        Assert.Equal(Enumerable.Range(1, 16), FrameLines(run.Output).Select(f => f.Id));
        Assert.Contains("\ncheck: 16 of 16 rebuilt frames equal the complete answers\n", run.Output, StringComparison.Ordinal);
        Assert.Contains(" [delta: ", run.Output, StringComparison.Ordinal);
    }

    [Fact]
    public async Task Stream_NoDelta_StreamsCompleteResultsAndChecksNothing()
    {
        var run = await Example.RunAsync(["stream", Example.Clip, "--no-delta", "--server", Example.Address]);

        Assert.True(run.ExitCode == 0, run.ToString());
        Assert.Contains("complete results)", run.Output, StringComparison.Ordinal);
        Assert.Equal(Enumerable.Range(1, 16), FrameLines(run.Output).Select(f => f.Id));
        Assert.DoesNotContain("[delta", run.Output, StringComparison.Ordinal);
        Assert.DoesNotContain("check:", run.Output, StringComparison.Ordinal);
        Assert.EndsWith("sent 16, results 16, errors 0, skipped 0\n", run.Output, StringComparison.Ordinal);
    }

    [Fact]
    public async Task Stream_UnknownModel_ReportsNotFoundForEveryFrameAndExits1()
    {
        var run = await Example.RunAsync(["stream", Example.Clip, "--model", "no-such-model", "--server", Example.Address]);

        Assert.True(run.ExitCode == 1, run.ToString());
        var frames = FrameLines(run.Output);
        Assert.Equal(Enumerable.Range(1, 16), frames.Select(f => f.Id));
        Assert.All(frames, f => Assert.Equal("ERROR NOT_FOUND: Model 'no-such-model' is not served.", f.Outcome));
        Assert.EndsWith("sent 16, results 0, errors 16, skipped 0\n", run.Output, StringComparison.Ordinal);
        Assert.DoesNotContain("check:", run.Output, StringComparison.Ordinal);
    }

    [Fact]
    public async Task Stream_BrokenSymbolicLinkNamedLikeAFrame_IsRefusedNamingItBeforeSending()
    {
        using var folder = new TemporaryFolder();
        File.Copy(Example.HeldoutImage, Path.Combine(folder.Path, "a.png"));
        var link = Path.Combine(folder.Path, "b.png");
        File.CreateSymbolicLink(link, Path.Combine(folder.Path, "gone.png"));

        // Nothing listens at the address: a stream that sent anything would fail to connect (exit 2) instead.
        var run = await Example.RunAsync(["stream", folder.Path, "--server", $"127.0.0.1:{Example.FreePort()}"]);

        Assert.True(run.ExitCode == 1, run.ToString());
        Assert.Contains($"error: cannot read {folder.Path}: {link} is a broken symbolic link (to {Path.Combine(folder.Path, "gone.png")})", run.Errors, StringComparison.Ordinal);
        Assert.Empty(run.Output);
    }

    [Fact]
    public async Task Stream_OutFolderThatCannotBeMade_Exits2NamingItBeforeStreaming()
    {
        using var scratch = new TemporaryFolder();
        var file = Path.Combine(scratch.Path, "a-file");
        await File.WriteAllTextAsync(file, "");
        var folder = Path.Combine(file, "out");

        var run = await Example.RunAsync(["stream", Example.Clip, "--out", folder, "--server", Example.Address]);

        Assert.True(run.ExitCode == 2, run.ToString());
        Assert.StartsWith($"error: cannot write into {folder}: ", run.Errors, StringComparison.Ordinal);
        Assert.DoesNotContain("   at ", run.Errors, StringComparison.Ordinal);
        Assert.Empty(FrameLines(run.Output));
    }

    [Fact]
    public async Task Stream_CtrlC_EndsWith130AndNoStackTrace()
    {
        using var example = Example.Start(["stream", Example.Clip, "--interval", "1", "--server", Example.Address]);
        using var ending = new Ending(example);
        var errors = example.StandardError.ReadToEndAsync();
        var output = new System.Text.StringBuilder();
        while (await example.StandardOutput.ReadLineAsync() is { } line)
        {
            output.AppendLine(line);
            if (line.StartsWith("frame 1 ", StringComparison.Ordinal))
            {
                break;
            }
        }

        Assert.False(example.HasExited, $"the stream ended before Ctrl+C:\n{output}");
        using (var interrupt = System.Diagnostics.Process.Start("kill", ["-INT", example.Id.ToString(System.Globalization.CultureInfo.InvariantCulture)]))
        {
            await interrupt.WaitForExitAsync();
        }

        using var timeout = new CancellationTokenSource(TimeSpan.FromSeconds(30));
        await example.WaitForExitAsync(timeout.Token);
        Assert.True(example.ExitCode == 130, $"exit {example.ExitCode}\n{output}{await example.StandardOutput.ReadToEndAsync()}\n{await errors}");
        Assert.DoesNotContain("   at ", await errors, StringComparison.Ordinal);
    }

    /// <summary>The "frame N NAME: OUTCOME" lines, in the order printed.</summary>
    internal static List<(int Id, string Name, string Outcome)> FrameLines(string output) =>
        [.. FrameLine().Matches(output).Select(m => (int.Parse(m.Groups[1].Value, System.Globalization.CultureInfo.InvariantCulture), m.Groups[2].Value, m.Groups[3].Value))];

    [GeneratedRegex(@"^frame (\d+) (\S+): (.*)$", RegexOptions.Multiline)]
    private static partial Regex FrameLine();
}
