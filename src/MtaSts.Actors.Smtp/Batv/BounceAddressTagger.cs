using System.Globalization;
using System.Security.Cryptography;
using System.Text;

namespace MtaSts.Actors.Smtp.Batv;

/// <summary>A bounce-verification key: its number (the <c>K</c> of the tag, 0..9) and its secret.</summary>
public sealed record BounceTagKey(int Id, byte[] Secret)
{
    public const int MinSecretBytes = 16;
}

public enum BounceTagStatus { Valid, NotTagged, Malformed, UnknownKey, BadSignature, Expired }

/// <summary>Outcome of checking a bounce recipient. <see cref="Address"/> is the address without its tag when the
/// tag is valid, else the address as given.</summary>
public readonly record struct BounceTagCheck(BounceTagStatus Status, string Address, int? KeyId = null)
{
    public bool IsValid => Status == BounceTagStatus.Valid;

    /// <summary>Why a bounce is refused, in a few words for the reply and the log.</summary>
    public string Reason => Status switch
    {
        BounceTagStatus.Valid => "valid tag",
        BounceTagStatus.NotTagged => "address is not tagged (bounce verification is on for its domain)",
        BounceTagStatus.Malformed => "malformed prvs tag",
        BounceTagStatus.UnknownKey => $"tag signed with unknown key {KeyId}",
        BounceTagStatus.BadSignature => "tag signature does not match",
        _ => "tag expired",
    };
}

/// <summary>
/// Bounce address tagging and verification (the vendor's "bounce verification"), in the form of BATV's
/// <c>prvs</c> scheme (draft-levine-smtp-batv-01 §4): the envelope sender <c>local@domain</c> becomes
/// <c>prvs=KDDDSSSSSS=local@domain</c>, where <c>K</c> is the key number (0..9), <c>DDD</c> the day on which the tag
/// expires (days since 1970-01-01 UTC, modulo 1000) and <c>SSSSSS</c> the first 3 bytes, in hex, of
/// HMAC-SHA256(secret, <c>K DDD local@domain</c>) — the draft uses SHA-1 over the key; an HMAC is the sound form and
/// only we verify our own tags. The address is hashed in lower case: receivers may change the case of an address in
/// a bounce (and the hex and the <c>prvs=</c> prefix are read case-insensitively).
/// A bounce (null reverse-path) to one of <see cref="Domains"/> must carry a valid tag: forged bounces
/// (backscatter) name addresses that never sent, so they carry none, or a wrong one. Pure and thread-safe.
/// </summary>
public sealed class BounceAddressTagger
{
    public const string Prefix = "prvs=";
    public static readonly TimeSpan MinValidity = TimeSpan.FromDays(1), MaxValidity = TimeSpan.FromDays(30);

    private readonly Dictionary<int, BounceTagKey> _keys;
    private readonly HashSet<string> _exact;
    private readonly string[] _suffixes;

    /// <param name="keys">Every key that still verifies; the last one signs new tags (rotation: append a new key,
    /// remove the old one once tags signed with it have expired).</param>
    /// <param name="validity">How long a tag verifies, in whole days (1..30).</param>
    /// <param name="domains">Our sender domains: <c>example.com</c>, or <c>.example.com</c> for its subdomains.</param>
    public BounceAddressTagger(IReadOnlyList<BounceTagKey> keys, TimeSpan validity, IReadOnlyList<string> domains)
    {
        if (keys.Count == 0) throw new ArgumentException("at least one key is required", nameof(keys));
        if (validity < MinValidity || validity > MaxValidity || validity.Ticks % TimeSpan.TicksPerDay != 0)
            throw new ArgumentOutOfRangeException(nameof(validity), "whole days, 1d..30d");
        _keys = new Dictionary<int, BounceTagKey>();
        foreach (var k in keys)
        {
            if (k.Id is < 0 or > 9) throw new ArgumentOutOfRangeException(nameof(keys), $"key id {k.Id}: 0..9");
            if (k.Secret.Length < BounceTagKey.MinSecretBytes) throw new ArgumentException($"key {k.Id}: the secret needs at least {BounceTagKey.MinSecretBytes} bytes", nameof(keys));
            if (!_keys.TryAdd(k.Id, k)) throw new ArgumentException($"key id {k.Id} appears twice", nameof(keys));
        }
        Current = keys[^1];
        ValidityDays = (int)validity.TotalDays;
        var normalised = domains.Select(d => d.Trim().TrimEnd('.').ToLowerInvariant()).Where(d => d.Length > 0).ToArray();
        _exact = normalised.Where(d => d[0] != '.').ToHashSet(StringComparer.Ordinal);
        _suffixes = normalised.Where(d => d[0] == '.').ToArray();
        Domains = normalised;
    }

    /// <summary>The key that signs new tags (the last one configured).</summary>
    public BounceTagKey Current { get; }
    public int ValidityDays { get; }
    public IReadOnlyList<string> Domains { get; }

    /// <summary>True when bounces to <paramref name="domain"/> come to us and must carry a valid tag.</summary>
    public bool IsOurDomain(string domain)
    {
        var d = domain.TrimEnd('.').ToLowerInvariant();
        return _exact.Contains(d) || _suffixes.Any(s => d.EndsWith(s, StringComparison.Ordinal) && d.Length > s.Length);
    }

    /// <summary>The tagged form of <paramref name="reversePath"/>; unchanged for the null reverse-path, an address
    /// outside <see cref="Domains"/> and an address that is tagged already.</summary>
    public string Tag(string reversePath, DateTimeOffset now)
    {
        if (!Split(reversePath, out var local, out var domain) || !IsOurDomain(domain)) return reversePath;
        if (local.StartsWith(Prefix, StringComparison.OrdinalIgnoreCase)) return reversePath;
        var expires = (DayNumber(now) + ValidityDays) % 1000;
        var k = Current.Id.ToString(CultureInfo.InvariantCulture);
        var ddd = expires.ToString("000", CultureInfo.InvariantCulture);
        return $"{Prefix}{k}{ddd}{Signature(Current, k, ddd, local, domain)}={local}@{domain}";
    }

    /// <summary>Checks a bounce recipient (only meaningful for <see cref="IsOurDomain"/> addresses).</summary>
    public BounceTagCheck Verify(string address, DateTimeOffset now)
    {
        if (!Split(address, out var local, out var domain)) return new(BounceTagStatus.Malformed, address);
        if (!local.StartsWith(Prefix, StringComparison.OrdinalIgnoreCase)) return new(BounceTagStatus.NotTagged, address);
        // prvs=KDDDSSSSSS=loc-core: 10 characters of tag, '=', a non-empty original local part.
        var rest = local[Prefix.Length..];
        if (rest.Length < 12 || rest[10] != '=') return new(BounceTagStatus.Malformed, address);
        var tag = rest[..10];
        var original = rest[11..];
        if (!char.IsAsciiDigit(tag[0]) || !tag[1..4].All(char.IsAsciiDigit) || !tag[4..].All(char.IsAsciiHexDigit))
            return new(BounceTagStatus.Malformed, address);
        var keyId = tag[0] - '0';
        if (!_keys.TryGetValue(keyId, out var key)) return new(BounceTagStatus.UnknownKey, address, keyId);
        var expected = Signature(key, tag[..1], tag[1..4], original, domain);
        if (!CryptographicOperations.FixedTimeEquals(Encoding.ASCII.GetBytes(expected), Encoding.ASCII.GetBytes(tag[4..].ToLowerInvariant())))
            return new(BounceTagStatus.BadSignature, address, keyId);
        // Days left until the expiry day, modulo 1000: a past day wraps to ~999, a forged far-future day exceeds the
        // window too.
        var left = (int.Parse(tag[1..4], CultureInfo.InvariantCulture) - DayNumber(now) % 1000 + 1000) % 1000;
        if (left > ValidityDays) return new(BounceTagStatus.Expired, address, keyId);
        return new(BounceTagStatus.Valid, $"{original}@{domain}", keyId);
    }

    private static int DayNumber(DateTimeOffset now) => (int)(now.ToUnixTimeSeconds() / 86400);

    private static string Signature(BounceTagKey key, string k, string ddd, string local, string domain)
    {
        var data = Encoding.UTF8.GetBytes($"{k}{ddd}{local}@{domain}".ToLowerInvariant());
        var mac = HMACSHA256.HashData(key.Secret, data);
        return Convert.ToHexStringLower(mac, 0, 3);
    }

    private static bool Split(string address, out string local, out string domain)
    {
        var at = address.LastIndexOf('@');
        local = at > 0 ? address[..at] : "";
        domain = at > 0 ? address[(at + 1)..] : "";
        return at > 0 && at < address.Length - 1;
    }
}
