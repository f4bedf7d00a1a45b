using System.Security.Cryptography;
using System.Text;
using Microsoft.Extensions.Options;

namespace MaskFormer.Server.Security;

/// <summary>
/// Bearer tokens from a file and/or an environment variable. Only their SHA-256 hashes are kept, and a
/// presented token's hash is compared with every one in constant time, so neither timing nor a memory
/// dump of this object reveals a token.
/// </summary>
internal sealed class TokenAuthenticator
{
    private readonly byte[][] _hashes;

    public TokenAuthenticator(IOptions<SecurityOptions> options)
    {
        var o = options.Value;
        var tokens = new List<string>();
        if (o.TokensFile.Length > 0)
        {
            tokens.AddRange(File.ReadAllLines(o.TokensFile).Select(l => l.Trim()).Where(l => l.Length > 0 && !l.StartsWith('#')));
        }

        if (o.TokensEnvironmentVariable.Length > 0)
        {
            var value = Environment.GetEnvironmentVariable(o.TokensEnvironmentVariable) ?? "";
            tokens.AddRange(value.Split(',', StringSplitOptions.TrimEntries | StringSplitOptions.RemoveEmptyEntries));
        }

        _hashes = [.. tokens.Select(Hash)];
    }

    /// <summary>Whether any token is configured; without one, authentication is off.</summary>
    public bool Enabled => _hashes.Length > 0;

    public int Count => _hashes.Length;

    public bool IsValid(string token)
    {
        var presented = Hash(token);
        var match = false;
        foreach (var hash in _hashes)
        {
            match |= CryptographicOperations.FixedTimeEquals(presented, hash);
        }

        return match;
    }

    private static byte[] Hash(string token) => SHA256.HashData(Encoding.UTF8.GetBytes(token));
}
