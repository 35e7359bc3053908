using System.Globalization;
using System.Net;
using System.Net.Sockets;
using System.Text.Json;
using System.Text.Json.Serialization;

namespace MtaSts.Actors.Dns;

/// <summary>
/// A recipient domain as the gateway keys it everywhere (sharding entity, pending index, destination profile lookup,
/// MTA-STS policy resolver and cache, MX matching): normalised once — lower-case A-label form (U-labels converted with
/// IDNA, so "bücher.example" and "xn--bcher-kva.example" are the same destination), trailing root dot removed — and
/// validated (RFC 1035/1123 host name of at most 253 characters, labels of 1..63 letters, digits, hyphens, not starting
/// or ending with a hyphen; underscores are tolerated as seen in the wild). An RFC 5321 address literal
/// (<c>[192.0.2.1]</c>, <c>[ipv6:2001:db8::1]</c>) is a destination too, kept in brackets, lower-case.
/// </summary>
[JsonConverter(typeof(DestinationDomainJsonConverter))]
public readonly struct DestinationDomain : IEquatable<DestinationDomain>, IComparable<DestinationDomain>
{
    private static readonly IdnMapping Idn = new() { AllowUnassigned = false, UseStd3AsciiRules = false };
    private readonly string? _name;

    private DestinationDomain(string name) => _name = name;

    /// <summary>The normalised name (A-labels, lower case, no trailing dot); "" for <c>default</c>.</summary>
    public string Name => _name ?? "";

    /// <summary>True for an RFC 5321 address literal (<c>[…]</c>): no MX lookup, no MTA-STS.</summary>
    public bool IsAddressLiteral => Name.StartsWith('[');

    /// <summary>The name for people (U-labels where the name has A-labels).</summary>
    public string Unicode
    {
        get
        {
            if (IsAddressLiteral || !Name.Contains("xn--", StringComparison.Ordinal)) return Name;
            try { return Idn.GetUnicode(Name); }
            catch (ArgumentException) { return Name; }
        }
    }

    /// <summary>Normalises and validates; <paramref name="error"/> says why a name is refused.</summary>
    public static bool TryParse(string? text, out DestinationDomain domain, out string error)
    {
        // Most names arrive normalised already (entity ids, cache keys, earlier parses): taken as they are, without the
        // trim/split/lower-case copies below (the per-delivery policy cache lookup goes through here).
        if (text is not null && IsNormalisedHostName(text))
        {
            domain = new DestinationDomain(text);
            error = "";
            return true;
        }
        domain = default;
        var s = (text ?? "").Trim();
        if (s.Length > 0 && s[^1] == '.') s = s[..^1];
        if (s.Length == 0) { error = "the domain is empty"; return false; }
        if (s.Contains('@')) { error = $"'{text}' is a mail address, not a domain"; return false; }
        if (s[0] == '[') return TryLiteral(s, out domain, out error);
        string ascii;
        if (s.Any(c => c > 0x7F))
        {
            try { ascii = Idn.GetAscii(s.ToLowerInvariant()); }
            catch (ArgumentException e) { error = $"'{text}' is not a valid internationalised domain name ({e.Message.TrimEnd('.')})"; return false; }
        }
        else ascii = s;
        ascii = ascii.ToLowerInvariant();
        if (ascii.Length > 253) { error = $"'{text}' is longer than 253 characters"; return false; }
        foreach (var label in ascii.Split('.'))
        {
            if (label.Length == 0) { error = $"'{text}' has an empty label"; return false; }
            if (label.Length > 63) { error = $"'{text}' has a label longer than 63 characters"; return false; }
            if (label[0] == '-' || label[^1] == '-') { error = $"'{text}' has label '{label}' starting or ending with '-'"; return false; }
            foreach (var c in label)
                if (!(c is (>= 'a' and <= 'z') or (>= '0' and <= '9') or '-' or '_'))
                {
                    error = $"'{text}' has label '{label}' with character '{c}'";
                    return false;
                }
        }
        domain = new DestinationDomain(ascii);
        error = "";
        return true;
    }

    /// <exception cref="FormatException">The name is not a domain (the message says why).</exception>
    public static DestinationDomain Parse(string text) =>
        TryParse(text, out var d, out var error) ? d : throw new FormatException(error);

    /// <summary>The normalised form of a name that may not be valid (a cache key, a name from a peer): the
    /// <see cref="Name"/> when it parses, otherwise trimmed, without the trailing dot, lower-case.</summary>
    public static string KeyOf(string text) =>
        TryParse(text, out var d, out _) ? d.Name : text.Trim().TrimEnd('.').ToLowerInvariant();

    /// <summary>True when <paramref name="s"/> is what the full parse below would return for it: 1..253 characters of
    /// lower-case letters, digits, '-', '_' and dots, labels of 1..63 characters not starting or ending with '-' (so no
    /// trailing dot, no spaces, no upper case, no U-labels, no address literal).</summary>
    private static bool IsNormalisedHostName(string s)
    {
        if (s.Length is 0 or > 253) return false;
        var labelStart = 0;
        for (var i = 0; i <= s.Length; i++)
        {
            if (i == s.Length || s[i] == '.')
            {
                var length = i - labelStart;
                if (length is 0 or > 63 || s[labelStart] == '-' || s[i - 1] == '-') return false;
                labelStart = i + 1;
            }
            else if (s[i] is not ((>= 'a' and <= 'z') or (>= '0' and <= '9') or '-' or '_')) return false;
        }
        return true;
    }

    private static bool TryLiteral(string s, out DestinationDomain domain, out string error)
    {
        domain = default;
        error = $"'{s}' is not an address literal";
        if (s[^1] != ']') return false;
        var inner = s[1..^1];
        if (inner.StartsWith("ipv6:", StringComparison.OrdinalIgnoreCase))
        {
            if (!IPAddress.TryParse(inner[5..], out var v6) || v6.AddressFamily != AddressFamily.InterNetworkV6) return false;
        }
        else if (!IPAddress.TryParse(inner, out var v4) || v4.AddressFamily != AddressFamily.InterNetwork || inner.Count(c => c == '.') != 3)
            return false;
        domain = new DestinationDomain(s.ToLowerInvariant());
        error = "";
        return true;
    }

    public bool Equals(DestinationDomain other) => string.Equals(Name, other.Name, StringComparison.Ordinal);
    public override bool Equals(object? obj) => obj is DestinationDomain d && Equals(d);
    public override int GetHashCode() => StringComparer.Ordinal.GetHashCode(Name);
    public int CompareTo(DestinationDomain other) => string.CompareOrdinal(Name, other.Name);
    public static bool operator ==(DestinationDomain a, DestinationDomain b) => a.Equals(b);
    public static bool operator !=(DestinationDomain a, DestinationDomain b) => !a.Equals(b);
    public override string ToString() => Name;
}

/// <summary>A destination domain is its name in JSON (log fields, status output).</summary>
public sealed class DestinationDomainJsonConverter : JsonConverter<DestinationDomain>
{
    public override DestinationDomain Read(ref Utf8JsonReader reader, Type typeToConvert, JsonSerializerOptions options) =>
        DestinationDomain.Parse(reader.GetString() ?? "");

    public override void Write(Utf8JsonWriter writer, DestinationDomain value, JsonSerializerOptions options) =>
        writer.WriteStringValue(value.Name);
}
