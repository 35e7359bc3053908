using MtaSts.Actors.Dns;

namespace MtaSts.Actors.TlsRpt;

/// <summary>A parsed <c>_smtp._tls.&lt;domain&gt;</c> record: its reporting URIs (mailto and https only).</summary>
public sealed record TlsRptRecord(IReadOnlyList<Uri> Rua, IReadOnlyList<string> Warnings)
{
    public IEnumerable<string> MailtoAddresses => Rua.Where(u => u.Scheme == Uri.UriSchemeMailto).Select(u => Uri.UnescapeDataString(u.OriginalString[7..]));
    public IEnumerable<Uri> HttpsEndpoints => Rua.Where(u => u.Scheme == Uri.UriSchemeHttps);
}

/// <summary>
/// RFC 8460 §3, strict:
/// <code>
/// tlsrpt-record     = tlsrpt-version 1*(field-delim tlsrpt-field) [field-delim]
/// field-delim       = *WSP ";" *WSP
/// tlsrpt-field      = tlsrpt-rua / tlsrpt-extension
/// tlsrpt-version    = %s"v=TLSRPTv1"
/// tlsrpt-rua        = %s"rua=" tlsrpt-uri *(*WSP "," *WSP tlsrpt-uri)
/// tlsrpt-uri        = URI            ; commas and "!" must be percent-encoded
/// tlsrpt-extension  = tlsrpt-ext-name "=" tlsrpt-ext-value
/// tlsrpt-ext-name   = (ALPHA / DIGIT) *31(ALPHA / DIGIT / "_" / "-" / ".")
/// tlsrpt-ext-value  = 1*(%x21-3A / %x3C / %x3E-7E)
/// </code>
/// A record needs at least one rua. URIs with schemes other than mailto/https are ignored with a warning (only those
/// two are defined); a record left without any usable URI is invalid. Several rua fields are merged. Trailing
/// whitespace after the last field is tolerated (as mox does).
/// </summary>
public static class TlsRptRecordParser
{
    private const string Version = "v=TLSRPTv1";

    public static (TlsRptRecord? Record, string? Error) Parse(string record)
    {
        ArgumentNullException.ThrowIfNull(record);
        for (var i = 0; i < record.Length; i++)
            if (record[i] > '\x7E' || (record[i] < ' ' && record[i] != '\t'))
                return (null, $"offset {i}: character U+{(int)record[i]:X4} is not allowed (US-ASCII printable only)");
        if (!IsTlsRptV1(record)) return (null, "record does not begin with 'v=TLSRPTv1' followed by ';'");

        var rua = new List<Uri>();
        var warnings = new List<string>();
        var sawRua = false;
        var pos = Version.Length;
        var fields = 0;
        while (pos < record.Length)
        {
            while (pos < record.Length && IsWsp(record[pos])) pos++;
            if (pos == record.Length) break; // trailing whitespace (mox parse_test.go R02 accepts it)
            if (record[pos] != ';') return (null, $"offset {pos}: expected ';' but found '{record[pos]}'");
            pos++;
            while (pos < record.Length && IsWsp(record[pos])) pos++;
            if (pos == record.Length) break; // optional final delimiter
            var end = record.IndexOf(';', pos);
            if (end < 0) end = record.Length;
            var field = record[pos..end].TrimEnd(' ', '\t');
            var eq = field.IndexOf('=');
            if (eq <= 0) return (null, $"offset {pos}: field '{field}' is not name=value");
            var name = field[..eq];
            var value = field[(eq + 1)..];
            if (name == "rua")
            {
                sawRua = true;
                var parts = value.Split(',');
                foreach (var raw in parts)
                {
                    var u = raw.Trim(' ', '\t');
                    if (u.Length == 0) return (null, $"rua: empty URI in '{value}'");
                    var (uri, error) = ParseUri(u);
                    if (error is not null) return (null, $"rua: {error}");
                    if (uri is null) warnings.Add($"rua: unsupported URI scheme ignored: {u}");
                    else rua.Add(uri);
                }
            }
            else
            {
                if (!IsExtName(name)) return (null, $"offset {pos}: invalid field name '{name}'");
                if (value.Length == 0 || value.Any(c => c is < '\x21' or '=' or ';' or > '\x7E'))
                    return (null, $"offset {pos}: invalid value for '{name}'");
            }
            fields++;
            pos += field.Length;
        }
        if (fields == 0 || !sawRua) return (null, "no rua field (RFC 8460 §3: rua is required)");
        if (rua.Count == 0) return (null, "no usable rua URI (only mailto: and https: are defined)");
        return (new TlsRptRecord(rua, warnings), null);
    }

    /// <summary>§3: records not beginning with v=TLSRPTv1 are discarded; exactly one must be left (as RFC 8461 §3.1),
    /// else the domain has no TLS-RPT record. Strings of one TXT RR are concatenated without spaces.</summary>
    public static (TlsRptRecord? Record, string? Error) Select(IEnumerable<TxtRecord> records)
    {
        var candidates = records.Select(r => r.Joined).Where(IsTlsRptV1).ToArray();
        return candidates.Length switch
        {
            0 => (null, "no TLS-RPT record"),
            1 => Parse(candidates[0]),
            _ => (null, $"{candidates.Length} TLS-RPT records (exactly one is allowed)"),
        };
    }

    private static bool IsTlsRptV1(string s)
    {
        if (!s.StartsWith(Version, StringComparison.Ordinal)) return false;
        var p = Version.Length;
        while (p < s.Length && IsWsp(s[p])) p++;
        return p < s.Length && s[p] == ';';
    }

    private static (Uri? Uri, string? Error) ParseUri(string s)
    {
        var colon = s.IndexOf(':');
        if (colon <= 0) return (null, $"'{s}' is not a URI (no scheme)");
        var scheme = s[..colon];
        if (!char.IsAsciiLetter(scheme[0]) || !scheme.All(c => char.IsAsciiLetterOrDigit(c) || c is '+' or '-' or '.'))
            return (null, $"'{s}' has an invalid scheme");
        if (s.Contains('!')) return (null, $"'{s}': '!' must be percent-encoded");
        if (!PercentEncodingOk(s)) return (null, $"'{s}': invalid percent-encoding");
        switch (scheme.ToLowerInvariant())
        {
            case "mailto":
            {
                var addr = Uri.UnescapeDataString(s[(colon + 1)..]);
                if (addr.Contains('?')) addr = addr[..addr.IndexOf('?')];
                var at = addr.LastIndexOf('@');
                if (at <= 0 || at == addr.Length - 1 || addr.Any(c => c <= ' ' || c is '<' or '>' or ',' ))
                    return (null, $"'{s}': not a mail address");
                var domain = addr[(at + 1)..];
                if (Uri.CheckHostName(domain) != UriHostNameType.Dns) return (null, $"'{s}': invalid domain '{domain}'");
                return (new Uri("mailto:" + addr), null);
            }
            case "https":
                if (!Uri.TryCreate(s, UriKind.Absolute, out var https) || https.Host.Length == 0 || https.UserInfo.Length > 0)
                    return (null, $"'{s}': not a valid https URI");
                return (https, null);
            default:
                return (null, null);
        }
    }

    private static bool PercentEncodingOk(string s)
    {
        for (var i = 0; i < s.Length; i++)
            if (s[i] == '%' && (i + 2 >= s.Length || !Uri.IsHexDigit(s[i + 1]) || !Uri.IsHexDigit(s[i + 2]))) return false;
        return true;
    }

    private static bool IsExtName(string n) =>
        n.Length is >= 1 and <= 32 && char.IsAsciiLetterOrDigit(n[0]) && n.All(c => char.IsAsciiLetterOrDigit(c) || c is '_' or '-' or '.');

    private static bool IsWsp(char c) => c is ' ' or '\t';
}
