using System.Security.Cryptography.X509Certificates;
using MaskFormer.Server.Security;
using MaskFormer.Server.Tests.Observability;
using Microsoft.Extensions.Logging;

namespace MaskFormer.Server.Tests;

/// <summary>The rate limit on refused client certificates' warnings, on a clock of the test's (TlsLogTests: over real handshakes).</summary>
public sealed class ClientCertificateRefusalsTests : IDisposable
{
    private readonly CapturedLogs _logs = new();
    private readonly ILoggerFactory _loggers;
    private readonly ManualTime _time = new();
    private readonly ClientCertificateRefusals _refusals;

    public ClientCertificateRefusalsTests()
    {
        _loggers = LoggerFactory.Create(logging => logging.AddProvider(_logs));
        _refusals = new ClientCertificateRefusals(_time, _loggers.CreateLogger<ClientCertificateRefusals>());
    }

    public void Dispose() => _loggers.Dispose();

    [Fact]
    public void Refused_SameCertificateWithinAMinute_LoggedOnceThenAgainWithTheCountUnlogged()
    {
        using var certificate = SecureServerFixture.CreateCa("CN=looping-client");

        for (var i = 0; i < 5; i++)
        {
            _refusals.Refused(certificate, X509ChainStatusFlags.UntrustedRoot);
            _time.Advance(TimeSpan.FromSeconds(10));
        }

        var first = Assert.Single(_logs.Entries);
        Assert.Equal(LogLevel.Warning, first.Level);
        Assert.Contains("CN=looping-client", first.Message, StringComparison.Ordinal);
        Assert.Contains("UntrustedRoot", first.Message, StringComparison.Ordinal);

        _time.Advance(ClientCertificateRefusals.Window);
        _refusals.Refused(certificate, X509ChainStatusFlags.UntrustedRoot);

        Assert.Equal(2, _logs.Entries.Count);
        Assert.Contains("4 refusal(s) before this one went unlogged", _logs.Entries.Last().Message, StringComparison.Ordinal);
    }

    [Fact]
    public void Refused_ManyCertificatesWithinAMinute_AtMostTheLimitLogged()
    {
        var certificates = Enumerable.Range(0, ClientCertificateRefusals.MaxPerWindow + 5).Select(i => SecureServerFixture.CreateCa($"CN=minted-{i}")).ToList();

        foreach (var certificate in certificates)
        {
            _refusals.Refused(certificate, X509ChainStatusFlags.UntrustedRoot);
        }

        Assert.Equal(ClientCertificateRefusals.MaxPerWindow, _logs.Entries.Count);
        certificates.ForEach(c => c.Dispose());
    }

    private sealed class ManualTime : TimeProvider
    {
        private DateTimeOffset _now = new(2026, 12, 6, 0, 0, 0, TimeSpan.Zero);

        public override DateTimeOffset GetUtcNow() => _now;

        public void Advance(TimeSpan by) => _now += by;
    }
}
