using Grpc.Core;
using Grpc.Health.V1;
using MaskFormer.Server.Hosting;
using MaskFormer.Server.Tests.Observability;
using Microsoft.Extensions.Logging;

namespace MaskFormer.Server.Tests;

/// <summary>
/// What the server logs about certificates at the level it runs with (Warning, as the fixture's server and
/// a production one's default filters for Microsoft.* leave it): a server certificate out of date or near
/// its end.
/// </summary>
[Collection(ServerTestGroup.Name)]
public sealed class TlsLogTests(SecureServerFixture fixture) : IClassFixture<SecureServerFixture>
{
    private const string CertificateReloader = "MaskFormer.Server.Security.CertificateReloader";

    [Theory]
    [InlineData(-20, -1)]
    [InlineData(24, 48)]
    public async Task Handshake_CertificateSwappedInOutOfDate_WarnsNamingTheFileAndItsDates(int fromHours, int untilHours)
    {
        var now = WholeSeconds(DateTimeOffset.UtcNow);
        var (notBefore, notAfter) = (now.AddHours(fromHours), now.AddHours(untilHours));
        var subject = $"CN=out-of-date-{fromHours}";
        fixture.WriteServerCertificate(subject, notBefore, notAfter);
        try
        {
            // The client refuses it; the server has loaded it by then.
            Assert.False(await HandshakeAsync());

            var warning = Assert.Single(fixture.Logs.Entries, e => e.Category == CertificateReloader && e.Message.Contains(subject, StringComparison.Ordinal));
            Assert.Equal(LogLevel.Warning, warning.Level);
            Assert.Contains(fixture.ServerCertificatePath, warning.Message, StringComparison.Ordinal);
            Assert.Contains($"valid from {notBefore.UtcDateTime:u} until {notAfter.UtcDateTime:u}", warning.Message, StringComparison.Ordinal);
        }
        finally
        {
            fixture.WriteServerCertificate("CN=renewed");
            Assert.True(await HandshakeAsync());
        }
    }

    [Fact]
    public async Task Start_CertificateNearItsEnd_WarnsBeforeAnyHandshake()
    {
        var now = WholeSeconds(DateTimeOffset.UtcNow);
        var notAfter = now.AddHours(2);
        var (certificate, key) = fixture.WriteServerPem("near-end", notBefore: now.AddHours(-20), notAfter: notAfter);
        var logs = new CapturedLogs();

        await using (await StartAsync(certificate, key, logs))
        {
            var warning = Assert.Single(logs.Entries, e => e.Category == CertificateReloader);
            Assert.Equal(LogLevel.Warning, warning.Level);
            Assert.Contains(certificate, warning.Message, StringComparison.Ordinal);
            Assert.Contains($"expires at {notAfter.UtcDateTime:u}", warning.Message, StringComparison.Ordinal);
        }
    }

    [Fact]
    public async Task Start_CertificateWithMostOfItsValidityLeft_NoWarning()
    {
        var (certificate, key) = fixture.WriteServerPem("week-left");
        var logs = new CapturedLogs();

        await using (await StartAsync(certificate, key, logs))
        {
            Assert.DoesNotContain(logs.Entries, e => e.Category == CertificateReloader);
        }
    }

    private static DateTimeOffset WholeSeconds(DateTimeOffset time) => new(time.Ticks - (time.Ticks % TimeSpan.TicksPerSecond), TimeSpan.Zero);

    // A health check over a new connection with the fixture's client certificate; false when it failed.
    private async Task<bool> HandshakeAsync()
    {
        using var channel = fixture.Channel(withClientCertificate: true);
        try
        {
            await new Grpc.Health.V1.Health.HealthClient(channel).CheckAsync(new HealthCheckRequest(), deadline: DateTime.UtcNow.AddSeconds(30));
            return true;
        }
        catch (RpcException)
        {
            return false;
        }
    }

    private static async Task<Microsoft.AspNetCore.Builder.WebApplication> StartAsync(string certificate, string key, CapturedLogs logs)
    {
        var app = ServerApp.Build(
        [
            "--Kestrel:Endpoints:Grpc:Url=https://127.0.0.1:0",
            $"--MaskFormer:Models:Path={RepositoryPaths.Models}",
            "--Logging:LogLevel:Default=Warning",
            "--MaskFormer:Inference:WarmUp=false",
            $"--MaskFormer:Security:CertificatePath={certificate}",
            $"--MaskFormer:Security:KeyPath={key}",
        ], builder => builder.Logging.AddProvider(logs));
        await app.StartAsync();
        return app;
    }
}
