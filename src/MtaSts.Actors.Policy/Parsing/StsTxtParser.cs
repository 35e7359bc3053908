using MtaSts.Actors.Dns;

namespace MtaSts.Actors.Policy.Parsing;

/// <summary>RFC 8461 §3.1: the `_mta-sts.&lt;domain&gt;` TXT record.</summary>
/// <remarks>
/// Grammar (§3.1, with errata 6285 read as the ABNF says):
/// <code>
/// sts-text-record = sts-version 1*(sts-field-delim sts-field) [sts-field-delim]
/// sts-field-delim = *WSP ";" *WSP
/// sts-version     = %s"v=STSv1"
/// sts-id          = %s"id=" 1*32(ALPHA / DIGIT)
/// sts-extension   = sts-ext-name "=" sts-ext-value
/// sts-ext-name    = (ALPHA / DIGIT) *31(ALPHA / DIGIT / "_" / "-" / ".")
/// sts-ext-value   = 1*(%x21-3A / %x3C / %x3E-7E)
/// </code>
/// </remarks>
public static class StsTxtParser
{
    private const string Version = "v=STSv1";

    /// <summary>Parses one (already concatenated) record string.</summary>
    public static ParseResult<StsTxtRecord> Parse(string record)
    {
        ArgumentNullException.ThrowIfNull(record);

        // §3.1: the record is US-ASCII; reject up front so the message names the real problem.
        for (var i = 0; i < record.Length; i++)
            if (record[i] > '\x7F')
                return Fail($"offset {i}: non-US-ASCII character {Abnf.Describe(record[i])} (RFC 8461 §3.1 records are US-ASCII)");

        // §3.1: "v=STSv1" MUST be first, and %s makes it case-sensitive. A bare "v=STSv1" (no ';') is
        // parsed here so the error names the missing id; Select discards it before parsing (IsStsV1).
        if (!BeginsWithVersionTag(record))
        {
            if (record.StartsWith(Version, StringComparison.Ordinal))
            {
                var next = Version.Length;
                while (Abnf.IsWsp(record[next])) next++;
                return Fail($"offset {next}: 'v=STSv1' is followed by {Abnf.Describe(record[next])}, not ';' (not an STSv1 record)");
            }
            return Fail(record.StartsWith(Version, StringComparison.OrdinalIgnoreCase)
                ? $"record does not begin with 'v=STSv1' (the version tag is case-sensitive, got '{record[..Version.Length]}')"
                : "record does not begin with 'v=STSv1'");
        }

        string? id = null;
        var extensions = new List<KeyValuePair<string, string>>();
        var warnings = new List<string>();
        var pos = Version.Length;

        while (pos < record.Length)
        {
            // sts-field-delim = *WSP ";" *WSP
            while (pos < record.Length && Abnf.IsWsp(record[pos])) pos++;
            if (pos == record.Length)
                return Fail($"offset {pos}: trailing whitespace without ';'");
            if (record[pos] != ';')
                return Fail($"offset {pos}: expected ';' but found {Abnf.Describe(record[pos])}");
            pos++;
            while (pos < record.Length && Abnf.IsWsp(record[pos])) pos++;
            if (pos == record.Length)
                break; // [sts-field-delim]: one trailing delimiter is allowed

            // sts-field: name "=" value; the value runs to the next WSP or ';'.
            var fieldStart = pos;
            if (record[pos] == ';')
                return Fail($"offset {pos}: empty field between ';' delimiters");
            var eq = record.IndexOf('=', pos);
            var semi = record.IndexOf(';', pos);
            if (eq < 0 || (semi >= 0 && semi < eq))
                return Fail($"offset {fieldStart}: field '{Abnf.Printable(Until(record, fieldStart))}' has no '='");
            var name = record[pos..eq];
            pos = eq + 1;
            var valueStart = pos;
            while (pos < record.Length && record[pos] != ';' && !Abnf.IsWsp(record[pos])) pos++;
            var value = record[valueStart..pos];

            if (name == "id")
            {
                if (!IsValidId(value, out var why))
                    return Fail($"offset {valueStart}: id '{Abnf.Printable(value)}' {why}");
                if (id is null)
                    id = value;
                else
                    // §3.1 does not say; we mirror §3.2's rule for policy keys: the first one wins.
                    warnings.Add($"offset {fieldStart}: duplicate id '{value}' ignored (first id '{id}' wins)");
            }
            else
            {
                if (!Abnf.IsExtensionName(name))
                    return Fail($"offset {fieldStart}: invalid field name '{Abnf.Printable(name)}' (expected 'id' or an extension name of 1-32 ALPHA/DIGIT/'_'/'-'/'.', starting with ALPHA/DIGIT)");
                if (value.Length == 0)
                    return Fail($"offset {valueStart}: extension '{name}' has an empty value");
                foreach (var c in value)
                    if (!IsExtValueChar(c))
                        return Fail($"offset {valueStart}: extension '{name}' value contains {Abnf.Describe(c)}");
                // Extensions carry no meaning for us (§3.1: unknown ones are ignored); kept for diagnostics.
                extensions.Add(new(name, value));
            }
        }

        if (id is null)
            return Fail(extensions.Any(e => e.Key.Equals("id", StringComparison.OrdinalIgnoreCase))
                ? "no 'id' field (field names are case-sensitive)"
                : "no 'id' field");

        return ParseResult<StsTxtRecord>.Success(new StsTxtRecord(id, extensions), warnings);
    }

    /// <summary>From all TXT RRs at the name: concatenate each RR's strings, discard records not starting
    /// with `v=STSv1`, require exactly one, parse it.</summary>
    public static ParseResult<StsTxtRecord> Select(IReadOnlyList<TxtRecord> records)
    {
        ArgumentNullException.ThrowIfNull(records);
        if (records.Count == 0)
            return Fail("no TXT records");

        // §3.1: "If a TXT record is split into multiple strings, they are concatenated without spaces".
        var joined = records.Select(r => r.Joined).ToList();
        var candidates = joined.Where(IsStsV1).ToList();
        var discarded = joined.Count - candidates.Count;

        if (candidates.Count == 0)
            return Fail($"no v=STSv1 TXT record ({discarded} other TXT record{(discarded == 1 ? "" : "s")} discarded)");
        // §3.1: "If the number of resulting records is not one ... senders MUST assume the domain does not
        // have an available MTA-STS policy" — even if all of them carry the same id.
        if (candidates.Count > 1)
            return Fail($"multiple v=STSv1 TXT records ({candidates.Count})");

        var result = Parse(candidates[0]);
        if (!result.Ok || discarded == 0)
            return result;
        return ParseResult<StsTxtRecord>.Success(result.Value!,
            [.. result.Warnings, $"discarded {discarded} TXT record{(discarded == 1 ? "" : "s")} not beginning with v=STSv1"]);
    }

    /// <summary>Whether a record is an STSv1 record for the §3.1 discard rule.</summary>
    /// <remarks>§3.1 says records "that do not begin with 'v=STSv1;'" are discarded, but its own ABNF
    /// (sts-field-delim = *WSP ";" *WSP) lets WSP precede the ';' (errata 6285). We take the ABNF for the
    /// whitespace and §3.1 for the ';': the record is STSv1 if "v=STSv1" (case-sensitive) is followed by *WSP
    /// and then ';'. So "v=STSv1 ;id=1" counts; "v=STSv10;id=1", "v=STSv1 id=1" and a bare "v=STSv1" do not —
    /// with the records "v=STSv1" and "v=STSv1; id=1" the bare one is discarded and id=1 is used (a bare
    /// version tag could never be a valid record anyway: sts-text-record requires at least one field).</remarks>
    public static bool IsStsV1(string record)
    {
        if (!record.StartsWith(Version, StringComparison.Ordinal))
            return false;
        var pos = SkipWsp(record, Version.Length);
        return pos < record.Length && record[pos] == ';';
    }

    // The version tag followed by *WSP and then ';' or the end: what Parse accepts as a start.
    private static bool BeginsWithVersionTag(string record)
    {
        if (!record.StartsWith(Version, StringComparison.Ordinal))
            return false;
        var pos = SkipWsp(record, Version.Length);
        return pos == record.Length || record[pos] == ';';
    }

    private static int SkipWsp(string s, int pos)
    {
        while (pos < s.Length && Abnf.IsWsp(s[pos])) pos++;
        return pos;
    }

    private static bool IsValidId(string value, out string why)
    {
        why = "";
        if (value.Length == 0) { why = "is empty"; return false; }
        if (value.Length > 32) { why = $"is {value.Length} characters long (at most 32)"; return false; }
        foreach (var c in value)
            if (!Abnf.IsAlphaDigit(c)) { why = $"contains {Abnf.Describe(c)} (only ALPHA/DIGIT allowed)"; return false; }
        return true;
    }

    // sts-ext-value = 1*(%x21-3A / %x3C / %x3E-7E): visible ASCII except ';' and '='.
    private static bool IsExtValueChar(char c) => c is >= '\x21' and <= '\x7E' and not ';' and not '=';

    private static string Until(string s, int start)
    {
        var end = s.IndexOf(';', start);
        return (end < 0 ? s[start..] : s[start..end]).TrimEnd(' ', '\t');
    }

    private static ParseResult<StsTxtRecord> Fail(string error) => ParseResult<StsTxtRecord>.Failure(error);
}
