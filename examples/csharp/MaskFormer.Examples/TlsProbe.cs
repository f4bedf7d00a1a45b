using System.Net.Security;
using System.Net.Sockets;
using System.Security.Authentication;
using System.Security.Cryptography;
using System.Security.Cryptography.X509Certificates;

namespace MaskFormer.Examples;

/// <summary>
/// A TLS handshake of the example's own with an address, made only after a call failed (as the CLI's
/// src/MaskFormer.Cli/Commands/TlsProbe.cs): whether the server answers a ClientHello with TLS (a record:
/// handshake 0x16 or alert 0x15, then major version 3) or something else (an HTTP/2 frame), and how the
/// certificate it shows fares in this client's own check, which the call's error does not say.
/// </summary>
internal static class TlsProbe
{
    private static readonly TimeSpan s_timeout = TimeSpan.FromSeconds(2);

    /// <summary>
    /// What the server at <paramref name="address"/> answers; its certificate is checked with
    /// <paramref name="policy"/> (the call's: MASKFORMER_CA_CERT's roots; null, the system's) and the host name.
    /// </summary>
    public static async Task<TlsAnswer> AnswerAsync(Uri address, X509ChainPolicy? policy, CancellationToken cancellationToken)
    {
        using var timeout = CancellationTokenSource.CreateLinkedTokenSource(cancellationToken);
        timeout.CancelAfter(s_timeout);
        FirstBytes? answer = null;
        SslPolicyErrors? certificateErrors = null;
        X509Certificate2? shown = null;
        try
        {
            using var tcp = new TcpClient();
            await tcp.ConnectAsync(address.IdnHost, address.Port, timeout.Token);
            answer = new FirstBytes(tcp.GetStream());
            await using var tls = new SslStream(answer);

            // Refusing every certificate ends the handshake as soon as the server has shown its own, after the
            // platform has checked it as the call's handshake did; the probe sends no certificate of its own.
            var options = new SslClientAuthenticationOptions
            {
                TargetHost = address.IdnHost,
                CertificateChainPolicy = policy,
                RemoteCertificateValidationCallback = (_, certificate, _, errors) =>
                {
                    certificateErrors = certificate is null ? null : errors;
                    return false;
                },

                // Where the platform checks the server's certificate only once the handshake is done (OpenSSL,
                // on Linux), a server that wants a client certificate refuses this probe's handshake before:
                // the certificate it showed when it asked for this client's is checked here instead.
                LocalCertificateSelectionCallback = (_, _, _, remote, _) =>
                {
                    shown ??= remote is null ? null : X509CertificateLoader.LoadCertificate(remote.GetRawCertData());
                    return null!;
                },
            };
            await tls.AuthenticateAsClientAsync(options, timeout.Token);
        }
        catch (Exception ex) when (ex is IOException or SocketException or AuthenticationException or OperationCanceledException or ObjectDisposedException)
        {
            // Refused, as meant, or no TLS there, or no answer.
        }

        using (shown)
        {
            certificateErrors ??= shown is null ? null : Check(shown, policy, address.IdnHost);
        }

        return new TlsAnswer(answer?.IsTls, certificateErrors);
    }

    // As SslStream checks a server's certificate: a chain to the policy's roots (the system's when null) for
    // server authentication, and the host name.
    private static SslPolicyErrors Check(X509Certificate2 certificate, X509ChainPolicy? policy, string host)
    {
        using var chain = new X509Chain();
        chain.ChainPolicy = policy?.Clone() ?? new X509ChainPolicy { RevocationMode = X509RevocationMode.NoCheck };
        chain.ChainPolicy.ApplicationPolicy.Add(new Oid("1.3.6.1.5.5.7.3.1"));
        var errors = chain.Build(certificate) ? SslPolicyErrors.None : SslPolicyErrors.RemoteCertificateChainErrors;
        return certificate.MatchesHostname(host) ? errors : errors | SslPolicyErrors.RemoteCertificateNameMismatch;
    }

    // The stream under the probe's SslStream, keeping the first two bytes the server sent.
    private sealed class FirstBytes(Stream inner) : Stream
    {
        private readonly byte[] _first = new byte[2];
        private int _count;

        public bool? IsTls => _count < _first.Length ? null : _first[0] is 0x16 or 0x15 && _first[1] == 0x03;

        public override bool CanRead => true;

        public override bool CanSeek => false;

        public override bool CanWrite => true;

        public override long Length => throw new NotSupportedException();

        public override long Position { get => throw new NotSupportedException(); set => throw new NotSupportedException(); }

        public override async ValueTask<int> ReadAsync(Memory<byte> buffer, CancellationToken cancellationToken = default)
        {
            var read = await inner.ReadAsync(buffer, cancellationToken);
            Keep(buffer.Span[..read]);
            return read;
        }

        public override Task<int> ReadAsync(byte[] buffer, int offset, int count, CancellationToken cancellationToken) =>
            ReadAsync(buffer.AsMemory(offset, count), cancellationToken).AsTask();

        public override int Read(byte[] buffer, int offset, int count)
        {
            var read = inner.Read(buffer, offset, count);
            Keep(buffer.AsSpan(offset, read));
            return read;
        }

        public override ValueTask WriteAsync(ReadOnlyMemory<byte> buffer, CancellationToken cancellationToken = default) => inner.WriteAsync(buffer, cancellationToken);

        public override Task WriteAsync(byte[] buffer, int offset, int count, CancellationToken cancellationToken) => inner.WriteAsync(buffer, offset, count, cancellationToken);

        public override void Write(byte[] buffer, int offset, int count) => inner.Write(buffer, offset, count);

        public override Task FlushAsync(CancellationToken cancellationToken) => inner.FlushAsync(cancellationToken);

        public override void Flush() => inner.Flush();

        public override long Seek(long offset, SeekOrigin origin) => throw new NotSupportedException();

        public override void SetLength(long value) => throw new NotSupportedException();

        protected override void Dispose(bool disposing)
        {
            if (disposing)
            {
                inner.Dispose();
            }

            base.Dispose(disposing);
        }

        private void Keep(ReadOnlySpan<byte> read)
        {
            var kept = Math.Min(read.Length, _first.Length - _count);
            read[..kept].CopyTo(_first.AsSpan(_count));
            _count += kept;
        }
    }
}

/// <summary>
/// What a server answered <see cref="TlsProbe"/>: whether it speaks TLS (null: no answer), and the errors this
/// client's check found in the certificate it showed (<see cref="SslPolicyErrors.None"/>: it passes; null:
/// none was shown).
/// </summary>
internal sealed record TlsAnswer(bool? IsTls, SslPolicyErrors? CertificateErrors);
