using System.Globalization;
using System.Net;
using System.Net.Sockets;
using System.Text.RegularExpressions;

namespace MtaSts.Actors.Policy.Parsing;

/// <summary>RFC 8461 §3.2 `sts-policy-mx-value = ["*."] Domain` (RFC 5321 §4.1.2 Domain, A-labels only).</summary>
public static partial class MxPatternParser
{
    public enum Outcome { Valid, IpLiteral, Invalid }

    public sealed record Result(Outcome Kind, MxPattern? Pattern, string? Error, string? Warning);

    private static readonly IdnMapping Idn = new() { UseStd3AsciiRules = true };

    public static Result Parse(string value)
    {
        ArgumentNullException.ThrowIfNull(value);
        if (value.Length == 0)
            return Invalid("is empty");

        foreach (var c in value)
            if (c > '\x7F')
                return Invalid($"is not an A-label domain (non-ASCII character {Abnf.Describe(c)}; RFC 8461 §3.2 requires A-labels)");

        var wildcard = value.StartsWith("*.", StringComparison.Ordinal);
        var name = wildcard ? value[2..] : value;

        if (IsIpLiteral(name))
            return new(Outcome.IpLiteral, null, null, null);

        if (name.Contains('*'))
            return Invalid("has '*' other than as the whole left-most label ('*.')");

        // RFC 5321 Domain has no root dot; a trailing one is unambiguous, so accept it and say so.
        string? warning = null;
        if (name.EndsWith('.') && name.Length > 1)
        {
            name = name[..^1];
            warning = $"mx '{value}': trailing dot removed";
        }

        if (name.Length > 253)
            return Invalid($"is longer than 253 characters");

        foreach (var label in name.Split('.'))
        {
            if (label.Length == 0)
                return Invalid("has an empty label");
            if (label.Length > 63)
                return Invalid($"has a label longer than 63 characters");
            // RFC 5321 sub-domain = Let-dig [Ldh-str]: letters, digits, inner hyphens.
            if (!Abnf.IsAlphaDigit(label[0]) || !Abnf.IsAlphaDigit(label[^1]))
                return Invalid($"has label '{label}' that does not start and end with a letter or digit");
            foreach (var c in label)
                if (!(Abnf.IsAlphaDigit(c) || c == '-'))
                    return Invalid($"has label '{label}' with character {Abnf.Describe(c)}");
            if (label.StartsWith("xn--", StringComparison.OrdinalIgnoreCase) && !IsValidALabel(label))
                return Invalid($"has label '{label}' that is not a valid A-label (bad Punycode)");
        }

        var pattern = (wildcard ? "*." : "") + name.ToLowerInvariant();
        return new(Outcome.Valid, new MxPattern(pattern), null, warning);
    }

    /// <summary>An address in place of a name: dotted-quad IPv4, IPv6, or an RFC 5321 address literal "[...]".</summary>
    public static bool IsIpLiteral(string name)
    {
        if (name.StartsWith('[') && name.EndsWith(']'))
            return true;
        var bare = name.TrimEnd('.');
        // IPAddress.TryParse also accepts "1.2" or "1"; only a full dotted quad is an IPv4 literal.
        if (DottedQuad().IsMatch(bare))
            return true;
        return bare.Contains(':') && IPAddress.TryParse(bare, out var ip) && ip.AddressFamily == AddressFamily.InterNetworkV6;
    }

    private static bool IsValidALabel(string label)
    {
        try
        {
            var unicode = Idn.GetUnicode(label);
            // Decodes to non-ASCII text without control characters (IdnMapping lets "xn--a" -> U+0080 through),
            // and round-trips to itself.
            return !unicode.All(c => c < '\x80') && !unicode.Any(char.IsControl)
                && Idn.GetAscii(unicode).Equals(label, StringComparison.OrdinalIgnoreCase);
        }
        catch (ArgumentException)
        {
            return false;
        }
    }

    [GeneratedRegex(@"^(25[0-5]|2[0-4][0-9]|1[0-9][0-9]|[1-9]?[0-9])(\.(25[0-5]|2[0-4][0-9]|1[0-9][0-9]|[1-9]?[0-9])){3}$", RegexOptions.CultureInvariant)]
    private static partial Regex DottedQuad();

    private static Result Invalid(string error) => new(Outcome.Invalid, null, error, null);
}
