using System.Security.Cryptography.X509Certificates;
using Grpc.Core;
using Grpc.Health.V1;
using MaskFormer.Server.Hosting;
using MaskFormer.Server.Tests.Observability;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.Logging;

namespace MaskFormer.Server.Tests;

/// <summary>
/// What the server logs about certificates at the level it runs with (Warning, as the fixture's server and
/// a production one's default filters for Microsoft.* leave it): a server certificate out of date or near
/// its end, a client certificate refused.
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
    public async Task Running_CertificateAndClientCaCrossNearExpiryThenExpire_EachWarnedOnceAsItCrosses()
    {
        // 80 days of validity, 30 left at start: near its end (under 14 days) 16 days on, out of date 30 days on.
        // Nothing is read anew: no handshake, no file change; only the clock moves, an hour at a time.
        var clock = new ManualClock(WholeSeconds(DateTimeOffset.UtcNow));
        var start = clock.GetUtcNow();
        var (notBefore, notAfter) = (start.AddDays(-50), start.AddDays(30));
        using var ca = SecureServerFixture.CreateCa("CN=crossing CA", notBefore, notAfter);
        var caPath = Path.Combine(Path.GetDirectoryName(fixture.CaPath)!, "crossing-ca.pem");
        await File.WriteAllTextAsync(caPath, ca.ExportCertificatePem());

        // Issued by that CA, whose dates it shares (the fixture's CA is younger); no handshake needs it to be a server's.
        using var issued = SecureServerFixture.IssueClient(ca, "CN=crossing", notBefore, notAfter);
        var (certificate, key) = fixture.WriteClientPem("crossing", issued);
        var logs = new CapturedLogs();

        await using (await StartAsync(certificate, key, logs, clock, $"--MaskFormer:Security:ClientCaPath={caPath}"))
        {
            Assert.Empty(Warnings());

            AdvanceHourly(TimeSpan.FromDays(20));
            Assert.Collection(
                Warnings(),
                e => Assert.Equal((408, $"expires at {notAfter.UtcDateTime:u}"), (e.EventId.Id, Expiry(e))),
                e => Assert.Equal((412, $"expires at {notAfter.UtcDateTime:u}"), (e.EventId.Id, Expiry(e))));

            AdvanceHourly(TimeSpan.FromDays(11));
            Assert.Equal([408, 412, 407, 411], Warnings().Select(e => e.EventId.Id));
            Assert.All(Warnings().Skip(2), e => Assert.Contains($"valid from {notBefore.UtcDateTime:u} until {notAfter.UtcDateTime:u}", e.Message, StringComparison.Ordinal));
            Assert.Contains(certificate, Warnings()[2].Message, StringComparison.Ordinal);
            Assert.Contains("CN=crossing CA", Warnings()[3].Message, StringComparison.Ordinal);
        }

        List<LogEntry> Warnings() => [.. logs.Entries.Where(e => e.Level == LogLevel.Warning && e.Category.StartsWith("MaskFormer.Server.Security.", StringComparison.Ordinal))];

        void AdvanceHourly(TimeSpan span)
        {
            for (var passed = TimeSpan.Zero; passed < span; passed += TimeSpan.FromHours(1))
            {
                clock.Advance(TimeSpan.FromHours(1));
            }
        }

        static string Expiry(LogEntry entry) => entry.Message[entry.Message.IndexOf("expires at ", StringComparison.Ordinal)..][..(11 + 20)];
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

    [Fact]
    public async Task Handshake_ExpiredClientCertificate_WarnsWithTheReasonAndTheSubject()
    {
        // Issued by the CA the server trusts: only its dates are wrong, and the client is told nothing.
        var now = WholeSeconds(DateTimeOffset.UtcNow);
        using var expired = SecureServerFixture.IssueClient(fixture.Ca, "CN=expired-client", now.AddHours(-12), now.AddHours(-1));

        Assert.False(await HandshakeAsync(expired));

        var warning = await SingleRefusalAsync(expired);
        Assert.Equal(LogLevel.Warning, warning.Level);
        Assert.Contains("CN=expired-client", warning.Message, StringComparison.Ordinal);
        Assert.Contains("NotTimeValid", warning.Message, StringComparison.Ordinal);
        Assert.Contains($"until {now.AddHours(-1).UtcDateTime:u}", warning.Message, StringComparison.Ordinal);
    }

    [Fact]
    public async Task Handshake_ExpiredClientCertificateRefusedThreeTimes_CountedThreeTimesLoggedOnce()
    {
        // Refusals with this reason come only from this collection's tests, which run one at a time.
        var now = WholeSeconds(DateTimeOffset.UtcNow);
        using var expired = SecureServerFixture.IssueClient(fixture.Ca, "CN=expired-counted", now.AddHours(-12), now.AddHours(-1));
        var before = await fixture.RefusalsCountedAsync("not_time_valid");

        for (var i = 0; i < 3; i++)
        {
            Assert.False(await HandshakeAsync(expired));
        }

        Assert.Equal(before + 3, await fixture.RefusalsCountedAsync("not_time_valid", before + 3));
        Assert.Contains("NotTimeValid", (await SingleRefusalAsync(expired)).Message, StringComparison.Ordinal);
    }

    [Fact]
    public async Task Handshake_NoClientCertificateTwice_RefusedCountedTwiceAndWarnedOnceWithTheAddress()
    {
        var before = await fixture.RefusalsCountedAsync("no_certificate");

        for (var i = 0; i < 2; i++)
        {
            // Still refused by the TLS layer (SecurityTests.Call_WithoutClientCertificate_Rejected: no gRPC status).
            using var channel = fixture.Channel(withClientCertificate: false);
            var error = await Assert.ThrowsAsync<RpcException>(async () => await new Grpc.Health.V1.Health.HealthClient(channel).CheckAsync(new HealthCheckRequest(), deadline: DateTime.UtcNow.AddSeconds(30)));
            Assert.Contains(error.StatusCode, new[] { StatusCode.Unavailable, StatusCode.Internal });
        }

        Assert.Equal(before + 2, await fixture.RefusalsCountedAsync("no_certificate", before + 2));
        var warning = Assert.Single(fixture.Logs.Entries, e => e.EventId.Id == 410);
        Assert.Equal(LogLevel.Warning, warning.Level);
        Assert.Contains("127.0.0.1 presented no client certificate", warning.Message, StringComparison.Ordinal);
    }

    [Fact]
    public async Task Handshake_SameRefusedCertificateAgainAndAgain_WarnedOnce()
    {
        using var stranger = SecureServerFixture.IssueByStranger("http://127.0.0.1:9/ca.crt");

        for (var i = 0; i < 3; i++)
        {
            Assert.False(await HandshakeAsync(stranger));
        }

        var warning = await SingleRefusalAsync(stranger);
        Assert.Contains("CN=stranger", warning.Message, StringComparison.Ordinal);
        Assert.Contains("issued by CN=Stranger CA", warning.Message, StringComparison.Ordinal);
    }

    // The one entry naming the certificate's thumbprint, once the server has written it (it refuses the
    // certificate as the client's call fails, so it is there at once or nearly).
    private async Task<LogEntry> SingleRefusalAsync(X509Certificate2 certificate)
    {
        for (var waited = 0; waited < 50 && !fixture.Logs.Entries.Any(Names); waited++)
        {
            await Task.Delay(100);
        }

        return Assert.Single(fixture.Logs.Entries, Names);

        bool Names(LogEntry entry) => entry.Message.Contains(certificate.Thumbprint, StringComparison.Ordinal);
    }

    private static DateTimeOffset WholeSeconds(DateTimeOffset time) => new(time.Ticks - (time.Ticks % TimeSpan.TicksPerSecond), TimeSpan.Zero);

    // A health check over a new connection with this client certificate (default: the fixture's); false when it failed.
    private async Task<bool> HandshakeAsync(X509Certificate2? clientCertificate = null)
    {
        using var channel = clientCertificate is null ? fixture.Channel(withClientCertificate: true) : fixture.Channel(clientCertificate);
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

    private static async Task<Microsoft.AspNetCore.Builder.WebApplication> StartAsync(string certificate, string key, CapturedLogs logs, params string[] extra) =>
        await StartAsync(certificate, key, logs, clock: null, extra);

    private static async Task<Microsoft.AspNetCore.Builder.WebApplication> StartAsync(string certificate, string key, CapturedLogs logs, TimeProvider? clock, params string[] extra)
    {
        var app = ServerApp.Build(
        [
            "--Kestrel:Endpoints:Grpc:Url=https://127.0.0.1:0",
            $"--MaskFormer:Models:Path={RepositoryPaths.Models}",
            "--Logging:LogLevel:Default=Warning",
            "--MaskFormer:Inference:WarmUp=false",
            $"--MaskFormer:Security:CertificatePath={certificate}",
            $"--MaskFormer:Security:KeyPath={key}",
            .. extra,
        ], builder =>
        {
            builder.Logging.AddProvider(logs);
            if (clock is not null)
            {
                builder.Services.AddSingleton(clock);
            }
        });
        await app.StartAsync();
        return app;
    }
}
