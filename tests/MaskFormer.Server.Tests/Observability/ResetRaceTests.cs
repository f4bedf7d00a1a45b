using Grpc.Core;
using MaskFormer.Contracts.V1;
using MaskFormer.Server.Diagnostics;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.Logging;

namespace MaskFormer.Server.Tests.Observability;

/// <summary>
/// A client's reset fails the request body with an IOException before Kestrel cancels the call's token:
/// the interceptor (the server's own, from its container) is called with a fake call context, the one
/// fault here that a real call cannot cause on demand (it is a race).
/// </summary>
[Collection(TelemetryTestGroup.Name)]
public sealed class ResetRaceTests
{
    [Fact]
    public async Task Handler_IOExceptionBeforeTheTokenIsCancelled_AnsweredCancelledWithoutAnErrorLine()
    {
        await using var server = await TelemetryServer.StartAsync("reset-race", ["--Logging:LogLevel:Default=Debug"]);
        var interceptor = server.Services.GetRequiredService<CallTelemetryInterceptor>();
        using var aborted = new CancellationTokenSource();
        var context = new FakeCallContext(aborted.Token);

        // The token is cancelled 100 ms after the handler has failed, as Kestrel's thread pool would.
        var failure = await Assert.ThrowsAsync<RpcException>(() => interceptor.UnaryServerHandler<ListModelsRequest, ListModelsResponse>(new ListModelsRequest(), context, (_, _) =>
        {
            aborted.CancelAfter(TimeSpan.FromMilliseconds(100));
            throw new IOException("The client reset the request stream.");
        }));

        Assert.Equal(StatusCode.Cancelled, failure.StatusCode);
        Assert.DoesNotContain(server.Logs.Entries, e => e.Level >= LogLevel.Error);
    }

    [Fact]
    public async Task Handler_IOExceptionWithTheCallAlive_AnsweredInternalAndLoggedOnce()
    {
        await using var server = await TelemetryServer.StartAsync("io-fault", ["--Logging:LogLevel:Default=Debug"]);
        var interceptor = server.Services.GetRequiredService<CallTelemetryInterceptor>();
        var context = new FakeCallContext(CancellationToken.None);

        var failure = await Assert.ThrowsAsync<RpcException>(() => interceptor.UnaryServerHandler<ListModelsRequest, ListModelsResponse>(new ListModelsRequest(), context, (_, _) =>
            throw new IOException("a disk the handler reads failed")));

        Assert.Equal(StatusCode.Internal, failure.StatusCode);
        var errors = server.Logs.Entries.Where(e => e.Level >= LogLevel.Error).ToList();
        Assert.Single(errors);
        Assert.Equal("CallFailed", errors[0].EventId.Name);
    }

    private sealed class FakeCallContext(CancellationToken cancellationToken) : ServerCallContext
    {
        private readonly Metadata _trailers = [];
        private Status _status;

        protected override string MethodCore => "/maskformer.v1.SegmentationService/ListModels";

        protected override string HostCore => "127.0.0.1:5081";

        protected override string PeerCore => "ipv4:127.0.0.1:40000";

        protected override DateTime DeadlineCore => DateTime.MaxValue;

        protected override Metadata RequestHeadersCore => [];

        protected override CancellationToken CancellationTokenCore => cancellationToken;

        protected override Metadata ResponseTrailersCore => _trailers;

        protected override Status StatusCore { get => _status; set => _status = value; }

        protected override WriteOptions? WriteOptionsCore { get; set; }

        protected override AuthContext AuthContextCore => new(null, []);

        protected override ContextPropagationToken CreatePropagationTokenCore(ContextPropagationOptions? options) => throw new NotSupportedException();

        protected override Task WriteResponseHeadersAsyncCore(Metadata responseHeaders) => Task.CompletedTask;
    }
}
