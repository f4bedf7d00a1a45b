using System.Net.Security;
using System.Net.Sockets;
using System.Security.Authentication;
using System.Security.Cryptography;
using System.Security.Cryptography.X509Certificates;

namespace MaskFormer.Cli.Commands;

/// <summary>
/// Whether the server at an address speaks TLS, from the first bytes it answers a TLS ClientHello with: a
/// TLS record (handshake 0x16 or alert 0x15, then major version 3) or anything else (an HTTP/2 frame, an
/// HTTP/1.1 status line). Made only after a call failed, to tell a cleartext client at a TLS port, or a TLS
/// client at a cleartext port, what to change: the call's own error does not say (a TLS server ends a
/// cleartext connection without a word; a cleartext answer to a ClientHello is "a corrupted frame").
/// </summary>
internal static class TlsProbe
{
    /// <summary>How long the probe waits for the connection and the answer.</summary>
    public static readonly TimeSpan Timeout = TimeSpan.FromSeconds(2);

    /// <summary>True: TLS; false: something else; null: no answer (nothing listening, closed at once, silent, cancelled).</summary>
    public static async Task<bool?> SpeaksTlsAsync(Uri address, CancellationToken cancellationToken) =>
        (await AnswerAsync(address, null, cancellationToken).ConfigureAwait(false)).IsTls;

    /// <summary>
    /// What the server answered: <see cref="TlsAnswer.IsTls"/> as <see cref="SpeaksTlsAsync"/>, and how the
    /// certificate it showed fares in this client's own check (<paramref name="policy"/>, as the client's
    /// --ca-cert sets it; null: the system's roots), with the host name. Where the platform checks that
    /// certificate only once the handshake is done (OpenSSL, on Linux), a server that wants a client certificate
    /// refuses the probe's handshake before: the certificate it showed when it asked for this client's is
    /// checked instead, with the same rules.
    /// </summary>
    public static async Task<TlsAnswer> AnswerAsync(Uri address, X509ChainPolicy? policy, CancellationToken cancellationToken)
    {
        using var timeout = CancellationTokenSource.CreateLinkedTokenSource(cancellationToken);
        timeout.CancelAfter(Timeout);
        using var tcp = new TcpClient();
        FirstBytes? answer = null;
        SslPolicyErrors? certificateErrors = null;
        X509Certificate2? shownWhenAsking = null;
        try
        {
            await tcp.ConnectAsync(address.IdnHost, address.Port, timeout.Token).ConfigureAwait(false);
            answer = new FirstBytes(tcp.GetStream());
            await using var ssl = new SslStream(answer);

            // Refusing every certificate ends the handshake as soon as the server has shown its own, after
            // the platform has checked it as the client's own handshake does.
            var options = new SslClientAuthenticationOptions
            {
                TargetHost = address.IdnHost,
                CertificateChainPolicy = policy,
                RemoteCertificateValidationCallback = (_, certificate, _, errors) =>
                {
                    certificateErrors = certificate is null ? null : errors;
                    return false;
                },

                // Sends none: a server that wants one then ends the handshake, on Linux before the check above.
                LocalCertificateSelectionCallback = (_, _, _, remote, _) =>
                {
                    shownWhenAsking ??= remote is null ? null : X509CertificateLoader.LoadCertificate(remote.GetRawCertData());
                    return null!;
                },
            };
            await ssl.AuthenticateAsClientAsync(options, timeout.Token).ConfigureAwait(false);
        }
        catch (Exception ex) when (ex is IOException or SocketException or AuthenticationException or OperationCanceledException or ObjectDisposedException)
        {
        }

        using (shownWhenAsking)
        {
            certificateErrors ??= shownWhenAsking is null ? null : Check(shownWhenAsking, policy, address.IdnHost);
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
            var read = await inner.ReadAsync(buffer, cancellationToken).ConfigureAwait(false);
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
