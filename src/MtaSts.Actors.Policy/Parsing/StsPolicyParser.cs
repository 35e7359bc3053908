using System.Globalization;
using System.Text;

namespace MtaSts.Actors.Policy.Parsing;

/// <summary>RFC 8461 §3.2: the policy body.</summary>
/// <remarks>
/// Grammar (§3.2, line terminator per errata 6253):
/// <code>
/// sts-policy-record      = sts-policy-field *WSP *(sts-policy-term sts-policy-field *WSP) [sts-policy-term]
/// sts-policy-term        = LF / CRLF
/// sts-policy-field-delim = ":" *WSP
/// sts-policy-max-age-value = 1*10(DIGIT)
/// sts-policy-mx-value    = ["*."] Domain                       ; RFC 5321 Domain, A-labels
/// sts-policy-ext-name    = (ALPHA / DIGIT) 0*31(ALPHA / DIGIT / "_" / "-" / ".")
/// sts-policy-ext-value   = sts-policy-vchar [*(%x20 / sts-policy-vchar) sts-policy-vchar]
/// sts-policy-vchar       = %x21-7E / UTF8-2 / UTF8-3 / UTF8-4
/// </code>
/// Decisions where the RFC or implementations leave room (each is also a test vector):
/// - A single leading UTF-8 BOM is stripped with a warning (P32).
/// - Blank lines between fields make the policy invalid (ABNF, P30); blank or whitespace-only lines
///   after the last field are ignored with a warning (P31).
/// - Duplicate non-mx keys: the first wins, later ones are ignored with a warning (§3.2, P22-P24).
/// - max_age above 31557600 is clamped with a warning (§3.2 maximum, errata 7282, P20/P21).
/// - mx patterns that are IP literals are dropped with a warning; the policy stays valid if the
///   remaining rules are met (P38).
/// </remarks>
public static class StsPolicyParser
{
    /// <summary>§3.3: "a maximum policy size of 64 KiB" (in bytes of the body as served).</summary>
    public const int MaxBodyBytes = 64 * 1024;

    private static readonly UTF8Encoding StrictUtf8 = new(encoderShouldEmitUTF8Identifier: false, throwOnInvalidBytes: true);

    /// <summary>Parses a body given as raw bytes: enforces the size limit on bytes and decodes strict UTF-8
    /// (§3.2 allows UTF-8 only in extension values; an invalid sequence must not become U+FFFD silently).</summary>
    public static ParseResult<StsPolicy> Parse(ReadOnlySpan<byte> body)
    {
        if (body.Length > MaxBodyBytes)
            return Fail($"policy body is {body.Length} bytes (limit {MaxBodyBytes})");
        string text;
        try
        {
            text = StrictUtf8.GetString(body);
        }
        catch (DecoderFallbackException e)
        {
            return Fail($"policy body is not valid UTF-8 (byte offset {e.Index})");
        }
        return Parse(text);
    }

    public static ParseResult<StsPolicy> Parse(string body)
    {
        ArgumentNullException.ThrowIfNull(body);
        var warnings = new List<string>();

        // Counted in UTF-8 bytes, as served, BOM included (§3.3 64 KiB).
        var bytes = Encoding.UTF8.GetByteCount(body);
        if (bytes > MaxBodyBytes)
            return Fail($"policy body is {bytes} bytes (limit {MaxBodyBytes})");

        // P32: the ABNF has no BOM, but editors on some platforms add one and it carries no meaning.
        // Rejecting would silently drop the domain's protection, so strip exactly one and say so.
        if (body.Length > 0 && body[0] == '\uFEFF')
        {
            body = body[1..];
            warnings.Add("stripped a leading UTF-8 byte order mark");
        }

        if (body.Length == 0)
            return Fail("policy body is empty", warnings);

        // Lines end with LF or CRLF (errata 6253). A final terminator is optional.
        var lines = body.Split('\n');
        for (var i = 0; i < lines.Length; i++)
            if (lines[i].EndsWith('\r'))
                lines[i] = lines[i][..^1];

        // Drop the empty segment after a final terminator, then trailing blank lines (P31, lenient:
        // they cannot change the meaning, and rejecting would turn off the domain's MTA-STS).
        var count = lines.Length;
        if (count > 1 && lines[count - 1].Length == 0)
            count--;
        var trailingBlank = 0;
        while (count > 1 && IsBlank(lines[count - 1]))
        {
            count--;
            trailingBlank++;
        }
        if (trailingBlank > 0)
            warnings.Add($"ignored {trailingBlank} blank line{(trailingBlank == 1 ? "" : "s")} at the end of the policy");

        string? version = null;
        StsMode? mode = null;
        long? maxAge = null;
        var mx = new List<MxPattern>();
        var ignoredIpLiterals = 0;
        var extensions = new List<KeyValuePair<string, string>>();
        var seen = new HashSet<string>(StringComparer.Ordinal);

        for (var i = 0; i < count; i++)
        {
            var n = i + 1;
            var line = lines[i];
            // P30: the ABNF has no empty field; a blank line in the middle is a malformed policy (strict,
            // like mox and postfix-tlspol) — unlike trailing ones it may mean a truncated or spliced file.
            if (IsBlank(line))
                return Fail($"line {n}: blank line", warnings);

            var colon = line.IndexOf(':');
            if (colon < 0)
                return Fail($"line {n}: no ':' (expected 'key: value')", warnings);
            var key = line[..colon];
            // sts-policy-field-delim = ":" *WSP, and *WSP may precede the terminator. Only the value is
            // trimmed; the key must be exact (no WSP before ':').
            var value = line[(colon + 1)..].Trim(' ', '\t');

            var known = key is "version" or "mode" or "max_age" or "mx";
            if (!known && !Abnf.IsExtensionName(key))
                return Fail($"line {n}: invalid key '{Abnf.Printable(key)}' (expected version, mode, max_age, mx or an extension name of 1-32 ALPHA/DIGIT/'_'/'-'/'.', starting with ALPHA/DIGIT)", warnings);

            if (key != "mx" && !seen.Add(key))
            {
                // §3.2: "If a field is duplicated, all but the first SHOULD be ignored" (mx excepted). The
                // ignored value must still be well-formed text; its meaning is not checked (P24).
                if (InvalidExtValue(value) is { } dupWhy)
                    return Fail($"line {n}: {key} value {dupWhy}", warnings);
                warnings.Add($"line {n}: duplicate '{key}' ignored (first one wins, RFC 8461 §3.2)");
                continue;
            }

            switch (key)
            {
                case "version":
                    if (value != "STSv1")
                        return Fail($"line {n}: version value '{Abnf.Printable(value)}' is not STSv1", warnings);
                    version = value;
                    break;

                case "mode":
                    mode = value switch
                    {
                        "enforce" => StsMode.Enforce,
                        "testing" => StsMode.Testing,
                        "none" => StsMode.None,
                        _ => null,
                    };
                    if (mode is null)
                        return Fail($"line {n}: mode value '{Abnf.Printable(value)}' is not one of enforce|testing|none", warnings);
                    break;

                case "max_age":
                    if (value.Length is 0 or > 10 || !value.All(Abnf.IsDigit))
                        return Fail($"line {n}: max_age value '{Abnf.Printable(value)}' is not 1 to 10 digits", warnings);
                    var age = long.Parse(value, CultureInfo.InvariantCulture);
                    if (age > StsPolicy.MaxAgeLimit)
                    {
                        // §3.2 caps max_age at 31557600 but the ABNF allows 10 digits (errata 7282). Clamping
                        // keeps the domain protected for the longest time the RFC allows, instead of dropping it.
                        warnings.Add($"line {n}: max_age {age} above {StsPolicy.MaxAgeLimit}, clamped");
                        age = StsPolicy.MaxAgeLimit;
                    }
                    maxAge = age;
                    break;

                case "mx":
                    var parsed = MxPatternParser.Parse(value);
                    switch (parsed.Kind)
                    {
                        case MxPatternParser.Outcome.Valid:
                            if (!mx.Contains(parsed.Pattern!))
                                mx.Add(parsed.Pattern!);
                            if (parsed.Warning is { } w)
                                warnings.Add($"line {n}: {w}");
                            break;
                        case MxPatternParser.Outcome.IpLiteral:
                            // P38: an IP literal can never equal an MX host name (§4.1 compares names), so the
                            // pattern is inert. Dropping it (rather than the whole policy, as postfix-tlspol's
                            // test suite does) keeps the domain's other patterns enforced (postfix-tlspol#70).
                            ignoredIpLiterals++;
                            warnings.Add($"line {n}: mx '{value}' is an IP literal, not a host name; pattern ignored");
                            break;
                        default:
                            return Fail($"line {n}: mx value '{Abnf.Printable(value)}' {parsed.Error}", warnings);
                    }
                    break;

                default:
                    // §3.2: unknown fields SHOULD be ignored; we still hold them to the extension ABNF (P26/P27),
                    // so a typo such as "nmx" is an extension, not an mx (P13).
                    if (InvalidExtValue(value) is { } why)
                        return Fail($"line {n}: extension '{key}' value {why}", warnings);
                    extensions.Add(new(key, value));
                    break;
            }
        }

        if (version is null)
            return Fail(MissingKey("version", seen), warnings);
        if (mode is null)
            return Fail(MissingKey("mode", seen), warnings);
        if (maxAge is null)
            return Fail(MissingKey("max_age", seen), warnings);
        // §3.2: mx is required unless the mode is none.
        if (mode != StsMode.None && mx.Count == 0)
            return Fail(ignoredIpLiterals > 0
                ? $"mode {mode.Value.ToWireString()} requires at least one mx host name pattern ({ignoredIpLiterals} IP-literal mx ignored)"
                : $"mode {mode.Value.ToWireString()} requires at least one mx" + NearHint("mx", seen), warnings);

        return ParseResult<StsPolicy>.Success(new StsPolicy(mode.Value, mx, maxAge.Value, extensions), warnings);
    }

    private static bool IsBlank(string line) => line.All(Abnf.IsWsp);

    // sts-policy-ext-value = sts-policy-vchar [*(%x20 / sts-policy-vchar) sts-policy-vchar]; surrounding
    // WSP was trimmed, so: non-empty, and only SP, %x21-7E or non-ASCII (UTF-8) characters.
    private static string? InvalidExtValue(string value)
    {
        if (value.Length == 0)
            return "is empty";
        foreach (var c in value)
        {
            if (c == ' ' || c is >= '\x21' and <= '\x7E')
                continue;
            if (c == '\uFFFD')
                return "contains U+FFFD (invalid UTF-8 in the body)";
            if (c >= '\x80' && !char.IsControl(c))
                continue;
            return $"contains {Abnf.Describe(c)}";
        }
        return null;
    }

    private static string MissingKey(string key, HashSet<string> seen) => $"missing required key '{key}'" + NearHint(key, seen);

    // P16: "Version" is a well-formed extension name, so it parses, but keys are case-sensitive.
    private static string NearHint(string key, HashSet<string> seen)
    {
        var near = seen.FirstOrDefault(k => k != key && k.Equals(key, StringComparison.OrdinalIgnoreCase));
        return near is null ? "" : $" (found '{near}'; keys are case-sensitive)";
    }

    private static ParseResult<StsPolicy> Fail(string error) => ParseResult<StsPolicy>.Failure(error);

    private static ParseResult<StsPolicy> Fail(string error, List<string> warnings) =>
        ParseResult<StsPolicy>.Failure(error, warnings.ToArray());
}
