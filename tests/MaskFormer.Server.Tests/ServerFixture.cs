using Grpc.Health.V1;
using Grpc.Net.Client;
using MaskFormer.Contracts.V1;
using MaskFormer.Server.Hosting;
using Microsoft.AspNetCore.Builder;
using Microsoft.AspNetCore.Hosting.Server;
using Microsoft.AspNetCore.Hosting.Server.Features;
using Microsoft.Extensions.DependencyInjection;

namespace MaskFormer.Server.Tests;

/// <summary>
/// The real server on a real Kestrel socket (HTTP/2 cleartext on a free loopback port), serving the
/// committed model, shared by the tests of a collection.
/// </summary>
public sealed class ServerFixture : IAsyncLifetime
{
    private WebApplication? _app;

    public GrpcChannel Channel { get; private set; } = null!;

    public Uri Address { get; private set; } = null!;

    public SegmentationService.SegmentationServiceClient Client { get; private set; } = null!;

    public IServiceProvider Services => _app!.Services;

    /// <summary>Extra configuration, as command-line style "--Key=Value" arguments.</summary>
    internal static string[] Arguments(params string[] extra) =>
    [
        "--Kestrel:Endpoints:Grpc:Url=http://127.0.0.1:0",
        $"--MaskFormer:Models:Path={RepositoryPaths.Models}",
        "--Logging:LogLevel:Default=Warning",
        .. extra,
    ];

    public async Task InitializeAsync()
    {
        (_app, Address) = await StartAsync(Arguments());
        Channel = GrpcChannel.ForAddress(Address);
        Client = new SegmentationService.SegmentationServiceClient(Channel);
        await WaitUntilServingAsync(Channel);
    }

    public async Task DisposeAsync()
    {
        Channel.Dispose();
        if (_app is not null)
        {
            await _app.StopAsync();
            await _app.DisposeAsync();
        }
    }

    internal static async Task<(WebApplication App, Uri Address)> StartAsync(string[] args, Action<WebApplicationBuilder>? configure = null)
    {
        var app = ServerApp.Build(args, configure);
        await app.StartAsync();
        return (app, new Uri(GrpcAddress(app)));
    }

    /// <summary>The gRPC listener's address: not the metrics listener's, when one is configured.</summary>
    internal static string GrpcAddress(WebApplication app)
    {
        var metricsPort = app.Services.GetService<MetricsEndpoint>()?.BoundPort;
        return app.Services.GetRequiredService<IServer>().Features.Get<IServerAddressesFeature>()!.Addresses.First(address => metricsPort is null || new Uri(address).Port != metricsPort);
    }

    /// <summary>The metrics listener's address.</summary>
    internal static Uri MetricsAddress(WebApplication app) => new($"http://127.0.0.1:{app.Services.GetRequiredService<MetricsEndpoint>().BoundPort}/metrics");

    internal static async Task WaitUntilServingAsync(GrpcChannel channel)
    {
        var health = new Grpc.Health.V1.Health.HealthClient(channel);
        var until = DateTime.UtcNow.AddSeconds(120);
        while (true)
        {
            var response = await health.CheckAsync(new HealthCheckRequest(), deadline: DateTime.UtcNow.AddSeconds(10));
            if (response.Status == HealthCheckResponse.Types.ServingStatus.Serving)
            {
                return;
            }

            if (DateTime.UtcNow > until)
            {
                throw new TimeoutException("The server did not report SERVING within 120 s.");
            }

            await Task.Delay(100);
        }
    }
}

[CollectionDefinition(Name)]
public sealed class ServerTestGroup : ICollectionFixture<ServerFixture>
{
    public const string Name = "server";
}
