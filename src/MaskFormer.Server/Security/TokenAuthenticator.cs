using System.Security.Cryptography;
using System.Text;
using Microsoft.Extensions.Logging.Abstractions;
using Microsoft.Extensions.Options;

namespace MaskFormer.Server.Security;

/// <summary>
/// Bearer tokens from a file and/or an environment variable. Only their SHA-256 hashes are kept, and a
/// presented token's hash is compared with every one in constant time, so neither timing nor a memory
/// dump of this object reveals a token. The file is re-read on the next call after it changes (resolved
/// path, time and size, as <see cref="CertificateReloader"/> checks the certificate), so tokens are added
/// and revoked without a restart; the environment's tokens are fixed for the process's life.
/// </summary>
internal sealed partial class TokenAuthenticator
{
    private readonly SecurityOptions _options;
    private readonly ILogger _logger;
    private readonly byte[][] _fixedHashes;
    private readonly Lock _gate = new();
    private volatile byte[][] _hashes;
    private string _stamp = "";

    public TokenAuthenticator(IOptions<SecurityOptions> options, ILogger<TokenAuthenticator>? logger = null)
    {
        _options = options.Value;
        _logger = logger ?? (ILogger)NullLogger.Instance;
        var tokens = new List<string>();
        if (_options.TokensEnvironmentVariable.Length > 0)
        {
            var value = Environment.GetEnvironmentVariable(_options.TokensEnvironmentVariable) ?? "";
            tokens.AddRange(value.Split(',', StringSplitOptions.TrimEntries | StringSplitOptions.RemoveEmptyEntries));
        }

        _fixedHashes = [.. tokens.Select(Hash)];
        _hashes = _fixedHashes;
        if (_options.TokensFile.Length > 0)
        {
            _stamp = FileStamp.Of(_options.TokensFile);
            _hashes = [.. _fixedHashes, .. ReadFile(_options.TokensFile).Select(Hash)];
        }
    }

    /// <summary>
    /// Whether tokens are configured. Fixed at start: a tokens file emptied later refuses every call
    /// rather than turning authentication off.
    /// </summary>
    public bool Enabled => _options.TokensConfigured;

    /// <summary>The tokens accepted now.</summary>
    public int Count => Current.Length;

    public bool IsValid(string token)
    {
        var presented = Hash(token);
        var match = false;
        foreach (var hash in Current)
        {
            match |= CryptographicOperations.FixedTimeEquals(presented, hash);
        }

        return match;
    }

    private byte[][] Current
    {
        get
        {
            if (_options.TokensFile.Length == 0)
            {
                return _hashes;
            }

            var stamp = FileStamp.Of(_options.TokensFile);
            if (stamp == Volatile.Read(ref _stamp))
            {
                return _hashes;
            }

            lock (_gate)
            {
                if (stamp != _stamp)
                {
                    try
                    {
                        var fromFile = ReadFile(_options.TokensFile);
                        _hashes = [.. _fixedHashes, .. fromFile.Select(Hash)];
                        _stamp = stamp;
                        LogReloaded(_logger, fromFile.Count);
                    }
                    catch (Exception ex) when (ex is IOException or UnauthorizedAccessException)
                    {
                        // Gone or unreadable: keep the tokens loaded last until the file changes again.
                        _stamp = stamp;
                        LogReloadFailed(_logger, ex.GetType().Name);
                    }
                }

                return _hashes;
            }
        }
    }

    private static List<string> ReadFile(string path) =>
        [.. File.ReadAllLines(path).Select(l => l.Trim()).Where(l => l.Length > 0 && !l.StartsWith('#'))];

    private static byte[] Hash(string token) => SHA256.HashData(Encoding.UTF8.GetBytes(token));

    [LoggerMessage(EventId = 403, Level = LogLevel.Information, Message = "Bearer tokens file changed: {Count} token(s) from the file now accepted.")]
    private static partial void LogReloaded(ILogger logger, int count);

    [LoggerMessage(EventId = 404, Level = LogLevel.Warning, Message = "Bearer tokens file changed but could not be read ({Error}); the tokens loaded last stay in force.")]
    private static partial void LogReloadFailed(ILogger logger, string error);
}
