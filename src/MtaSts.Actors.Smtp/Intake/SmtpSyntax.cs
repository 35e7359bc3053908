using MtaSts.Actors.Dns;
using System.Globalization;
using System.Net;
using System.Net.Sockets;
using System.Text;

namespace MtaSts.Actors.Smtp.Intake;

/// <summary>Outcome of parsing a MAIL/RCPT argument: either the pieces or a ready-made SMTP reply.</summary>
internal sealed record PathArgument(string Address, bool IsNull, bool NonAscii, IReadOnlyList<KeyValuePair<string, string?>> Parameters);

internal sealed class SmtpSyntaxException(string reply) : Exception(reply)
{
    /// <summary>Complete reply line without CRLF, e.g. <c>501 5.1.7 Bad sender address syntax</c>.</summary>
    public string Reply { get; } = reply;
}

/// <summary>RFC 5321 §4.1.2 paths and ESMTP parameters, RFC 3461 §4 xtext.</summary>
internal static class SmtpSyntax
{
    /// <summary>Parses <c>FROM:&lt;path&gt; params</c> / <c>TO:&lt;path&gt; params</c> after the verb.</summary>
    /// <param name="prefix">"FROM:" or "TO:".</param>
    /// <param name="badAddress">Reply for an unparseable address (501 5.1.7 for senders, 501 5.1.3 for recipients).</param>
    public static PathArgument ParsePathArgument(string arg, string prefix, string syntaxReply, string badAddress)
    {
        if (!arg.StartsWith(prefix, StringComparison.OrdinalIgnoreCase)) throw new SmtpSyntaxException(syntaxReply);
        int i = prefix.Length;
        while (i < arg.Length && arg[i] == ' ') i++; // "MAIL FROM: <a@b>" is common in the wild; tolerate it
        if (i >= arg.Length) throw new SmtpSyntaxException(syntaxReply);

        string path;
        int after;
        if (arg[i] == '<')
        {
            int close = FindClosingBracket(arg, i + 1);
            if (close < 0) throw new SmtpSyntaxException(badAddress);
            path = arg[(i + 1)..close];
            after = close + 1;
        }
        else
        {
            // Unbracketed address (RFC 821 leftovers in application code): accept, the path ends at a space.
            int sp = arg.IndexOf(' ', i);
            after = sp < 0 ? arg.Length : sp;
            path = arg[i..after];
        }
        if (after < arg.Length && arg[after] != ' ') throw new SmtpSyntaxException(badAddress);
        var parameters = ParseParameters(arg[after..]);

        if (path.Length == 0) return new PathArgument("", true, false, parameters);
        // RFC 5321 §4.1.1.3 / Appendix C: source routes must be accepted and ignored.
        if (path[0] == '@')
        {
            int colon = path.IndexOf(':');
            if (colon < 0) throw new SmtpSyntaxException(badAddress);
            path = path[(colon + 1)..];
        }
        if (Encoding.UTF8.GetByteCount(path) > 254) throw new SmtpSyntaxException(badAddress); // §4.5.3.1.3: path ≤ 256 with <>
        bool nonAscii = !Ascii.IsValid(path);
        if (!IsValidMailbox(path)) throw new SmtpSyntaxException(badAddress);
        return new PathArgument(path, false, nonAscii, parameters);
    }

    private static int FindClosingBracket(string s, int from)
    {
        bool quoted = false;
        for (int i = from; i < s.Length; i++)
        {
            char c = s[i];
            if (quoted && c == '\\') { i++; continue; }
            if (c == '"') quoted = !quoted;
            else if (c == '>' && !quoted) return i;
        }
        return -1;
    }

    public static IReadOnlyList<KeyValuePair<string, string?>> ParseParameters(string s)
    {
        var list = new List<KeyValuePair<string, string?>>();
        foreach (var token in s.Split(' ', StringSplitOptions.RemoveEmptyEntries))
        {
            int eq = token.IndexOf('=');
            var key = eq < 0 ? token : token[..eq];
            var value = eq < 0 ? null : token[(eq + 1)..];
            // esmtp-keyword = (ALPHA / DIGIT) *(ALPHA / DIGIT / "-"); esmtp-value = 1*(%d33-60 / %d62-126), RFC 6531 adds UTF-8
            if (key.Length == 0 || !char.IsAsciiLetterOrDigit(key[0]) || !key.All(c => char.IsAsciiLetterOrDigit(c) || c == '-'))
                throw new SmtpSyntaxException("501 5.5.4 Syntax error in parameters");
            if (value is not null && (value.Length == 0 || value.Any(c => c < 33 || c == '=' || c == 127)))
                throw new SmtpSyntaxException($"501 5.5.4 Invalid value for parameter {key.ToUpperInvariant()}");
            if (list.Any(p => p.Key.Equals(key, StringComparison.OrdinalIgnoreCase)))
                throw new SmtpSyntaxException($"501 5.5.4 Duplicate parameter {key.ToUpperInvariant()}");
            list.Add(new(key.ToUpperInvariant(), value));
        }
        return list;
    }

    /// <summary>RFC 5321 §4.1.2 Mailbox (with RFC 6531 UTF-8 allowed in atoms and labels).</summary>
    public static bool IsValidMailbox(string mailbox)
    {
        int at = mailbox.LastIndexOf('@');
        if (at <= 0 || at == mailbox.Length - 1) return false;
        var local = mailbox[..at];
        var domain = mailbox[(at + 1)..];
        return IsValidLocalPart(local) && IsValidDomainOrLiteral(domain);
    }

    private static bool IsValidLocalPart(string local)
    {
        if (local.Length >= 2 && local[0] == '"' && local[^1] == '"')
        {
            // Quoted-string: qtextSMTP (%d32-33 / %d35-91 / %d93-126) or quoted-pair (\ + %d32-126)
            for (int i = 1; i < local.Length - 1; i++)
            {
                char c = local[i];
                if (c == '\\') { i++; if (i >= local.Length - 1 || local[i] < 32 || local[i] == 127) return false; continue; }
                if (c == '"' || (c < 32) || c == 127) return false;
            }
            return true;
        }
        foreach (var atom in local.Split('.'))
        {
            if (atom.Length == 0) return false;
            if (!atom.All(IsAtext)) return false;
        }
        return true;
    }

    private static bool IsAtext(char c) =>
        char.IsAsciiLetterOrDigit(c) || "!#$%&'*+-/=?^_`{|}~".Contains(c) || c >= 0x80;

    private static bool IsValidDomainOrLiteral(string domain)
    {
        if (domain.StartsWith('[') && domain.EndsWith(']'))
        {
            var lit = domain[1..^1];
            if (lit.StartsWith("IPv6:", StringComparison.OrdinalIgnoreCase))
                return IPAddress.TryParse(lit[5..], out var v6) && v6.AddressFamily == AddressFamily.InterNetworkV6;
            return IPAddress.TryParse(lit, out var v4) && v4.AddressFamily == AddressFamily.InterNetwork && lit.Count(c => c == '.') == 3;
        }
        // The domain becomes a destination key: U-labels must convert to A-labels (IDNA), or the mail could not be routed.
        return IsValidDomain(domain) && DestinationDomain.TryParse(domain, out _, out _);
    }

    /// <summary>RFC 5321 Domain: sub-domains of let-dig[ldh-str], 1..63 each, ≤ 255 total; U-labels allowed.</summary>
    public static bool IsValidDomain(string domain)
    {
        if (domain.Length == 0 || Encoding.UTF8.GetByteCount(domain) > 255) return false;
        foreach (var label in domain.Split('.'))
        {
            if (label.Length == 0 || label.Length > 63) return false;
            if (label[0] == '-' || label[^1] == '-') return false;
            if (!label.All(c => char.IsAsciiLetterOrDigit(c) || c == '-' || c >= 0x80)) return false;
        }
        return true;
    }

    /// <summary>RFC 3461 §4 xtext: "+" followed by two upper-case hex digits encodes an octet; other chars are
    /// "!".."~" except "+" and "=". RFC 6533 §3 (utf-8-addr-xtext) adds "\x{HEX}" and raw UTF-8.</summary>
    public static string DecodeXtext(string value, bool allowUtf8)
    {
        var bytes = new List<byte>(value.Length);
        for (int i = 0; i < value.Length; i++)
        {
            char c = value[i];
            if (c == '+')
            {
                if (i + 2 >= value.Length || !IsUpperHex(value[i + 1]) || !IsUpperHex(value[i + 2]))
                    throw new SmtpSyntaxException("501 5.5.4 Invalid xtext encoding");
                bytes.Add(byte.Parse(value.AsSpan(i + 1, 2), NumberStyles.HexNumber, CultureInfo.InvariantCulture));
                i += 2;
            }
            else if (allowUtf8 && c == '\\' && i + 2 < value.Length && value[i + 1] == 'x' && value[i + 2] == '{')
            {
                int close = value.IndexOf('}', i + 3);
                if (close < 0 || close - i - 3 is < 1 or > 6 ||
                    !int.TryParse(value.AsSpan(i + 3, close - i - 3), NumberStyles.HexNumber, CultureInfo.InvariantCulture, out var cp) ||
                    cp > 0x10FFFF || (cp >= 0xD800 && cp <= 0xDFFF))
                    throw new SmtpSyntaxException("501 5.5.4 Invalid xtext encoding");
                bytes.AddRange(Encoding.UTF8.GetBytes(char.ConvertFromUtf32(cp)));
                i = close;
            }
            else if (c >= '!' && c <= '~' && c != '=')
            {
                bytes.Add((byte)c);
            }
            else if (allowUtf8 && c >= 0x80)
            {
                int n = char.IsHighSurrogate(c) && i + 1 < value.Length ? 2 : 1;
                bytes.AddRange(Encoding.UTF8.GetBytes(value.Substring(i, n)));
                i += n - 1;
            }
            else throw new SmtpSyntaxException("501 5.5.4 Invalid xtext encoding");
        }
        try { return new UTF8Encoding(false, true).GetString(bytes.ToArray()); }
        catch (DecoderFallbackException) { throw new SmtpSyntaxException("501 5.5.4 Invalid xtext encoding"); }
    }

    private static bool IsUpperHex(char c) => char.IsAsciiDigit(c) || (c >= 'A' && c <= 'F');
}
