using Grpc.Core;
using MaskFormer.Contracts.V1;

namespace MaskFormer.Server.Tests.BadInputs;

/// <summary>
/// The catalogue of bad inputs in RELIABILITY.md, each sent to the real server over gRPC: the status is
/// exact, INVALID_ARGUMENT names the field in a BadRequest, no message carries more than a few hundred
/// characters of what the client sent, and the server keeps serving.
/// </summary>
[Collection(ServerTestGroup.Name)]
public sealed class BadInputCatalogueTests(ServerFixture server)
{
    private const int MaxMessageLength = 1024;

    public static TheoryData<string> Names() => [.. BadInputCatalogue.All.Select(c => c.Name)];

    [Theory]
    [MemberData(nameof(Names))]
    public async Task BadInput_AnsweredWithItsDocumentedStatus(string name)
    {
        var input = BadInputCatalogue.All.Single(c => c.Name == name);

        if (input.Request is not null)
        {
            await UnaryAsync(input);
        }
        else
        {
            await StreamAsync(input);
        }

        // The server is still serving.
        var ok = await server.Client.SegmentAsync(new SegmentRequest { Image = SegmentTests.EncodedImage(HeldOutSet.ImageFiles[0]) }, deadline: DateTime.UtcNow.AddMinutes(1));
        Assert.True(ok.Width > 0);
    }

    [Fact]
    public void Catalogue_HasAtLeastSixtyCases_EachDocumentedInReliabilityMd()
    {
        var document = File.ReadAllText(Path.Combine(RepositoryPaths.Root, "RELIABILITY.md"));
        var missing = BadInputCatalogue.All.Select(Row).Where(row => !document.Contains(row, StringComparison.Ordinal)).ToList();

        Assert.True(BadInputCatalogue.All.Count >= 60, $"{BadInputCatalogue.All.Count} cases");
        Assert.Equal(BadInputCatalogue.All.Count, BadInputCatalogue.All.Select(c => c.Name).Distinct().Count());
        Assert.True(missing.Count == 0, "RELIABILITY.md lacks these rows:\n" + string.Join('\n', missing));
    }

    internal static string Row(BadInput input) =>
        $"| `{input.Name}` | {input.What} | {(input.Expected == StatusCode.OK ? "OK" : StatusName(input.Expected))} | {(input.Field is null ? string.Empty : $"`{input.Field}`")} |";

    private static string StatusName(StatusCode code) => code switch
    {
        StatusCode.InvalidArgument => "INVALID_ARGUMENT",
        StatusCode.NotFound => "NOT_FOUND",
        StatusCode.ResourceExhausted => "RESOURCE_EXHAUSTED",
        _ => code.ToString().ToUpperInvariant(),
    };

    private async Task UnaryAsync(BadInput input)
    {
        var call = server.Client.SegmentAsync(input.Request!(), deadline: DateTime.UtcNow.AddMinutes(1));
        if (input.Expected == StatusCode.OK)
        {
            var response = await call.ResponseAsync;
            input.Check?.Invoke(response);
            return;
        }

        var error = await Assert.ThrowsAsync<RpcException>(() => call.ResponseAsync);
        Assert.Equal(input.Expected, error.StatusCode);
        Assert.InRange(error.Status.Detail.Length, 1, MaxMessageLength);
        if (input.Expected == StatusCode.InvalidArgument)
        {
            var violation = Assert.Single(error.GetRpcStatus()!.GetDetail<Google.Rpc.BadRequest>().FieldViolations);
            Assert.Equal(input.Field, violation.Field);
        }
    }

    private async Task StreamAsync(BadInput input)
    {
        using var call = server.Client.SegmentStream(deadline: DateTime.UtcNow.AddMinutes(1));
        var messages = input.Stream!().ToList();
        foreach (var message in messages)
        {
            await call.RequestStream.WriteAsync(message);
        }

        await call.RequestStream.CompleteAsync();
        if (input.EndsCall)
        {
            // Every frame sent before the message that ends the call is answered first.
            var answered = new List<SegmentStreamResponse>();
            var error = await Assert.ThrowsAsync<RpcException>(async () =>
            {
                await foreach (var answer in call.ResponseStream.ReadAllAsync())
                {
                    answered.Add(answer);
                }
            });
            Assert.Equal(input.Expected, error.StatusCode);
            var before = messages.TakeWhile(m => m.MessageCase != SegmentStreamRequest.MessageOneofCase.None).Where(m => m.Frame is not null).Select(m => m.Frame.FrameId);
            Assert.Equal(before, answered.Where(a => a.Result is not null).Select(a => a.FrameId));
            return;
        }

        var answers = await call.ResponseStream.ReadAllAsync().ToArrayAsync();
        Assert.Equal(2, answers.Length);
        Assert.Equal((int)input.Expected, answers[0].Error?.Code);
        Assert.InRange(answers[0].Error!.Message.Length, 1, MaxMessageLength);
        if (input.Field is not null)
        {
            // The same BadRequest a unary call would carry, naming the config's field.
            var status = Google.Rpc.Status.Parser.ParseFrom(answers[0].Error.StatusDetails);
            var violation = Assert.Single(Assert.Single(status.Details).Unpack<Google.Rpc.BadRequest>().FieldViolations);
            Assert.Equal(input.Field, violation.Field);
        }

        Assert.NotNull(answers[1].Result);
    }
}
