namespace MtaSts.Actors.Policy;

/// <summary>RFC 8461 §3.2 policy mode.</summary>
public enum StsMode { None, Testing, Enforce }

/// <summary>RFC 8460 §4.3 result types the policy layer can produce.</summary>
public enum TlsRptResultType
{
    StsPolicyFetchError,   // "sts-policy-fetch-error"
    StsPolicyInvalid,      // "sts-policy-invalid"
    StsWebpkiInvalid,      // "sts-webpki-invalid"
}

/// <summary>Outcome of parsing something: either a value (plus non-fatal warnings) or a precise reason.</summary>
public sealed record ParseResult<T>(T? Value, string? Error, IReadOnlyList<string> Warnings) where T : class
{
    public bool Ok => Value is not null;
    public static ParseResult<T> Success(T value, IReadOnlyList<string>? warnings = null) => new(value, null, warnings ?? Array.Empty<string>());
    public static ParseResult<T> Failure(string error) => new(null, error, Array.Empty<string>());
}

/// <summary>A parsed `_mta-sts` TXT record (RFC 8461 §3.1).</summary>
public sealed record StsTxtRecord(string Id, IReadOnlyList<KeyValuePair<string, string>> Extensions);

/// <summary>An `mx:` pattern (RFC 8461 §3.2, §4.1): lower-cased A-label name, optionally with a leading "*." wildcard.</summary>
public sealed record MxPattern(string Pattern)
{
    public bool IsWildcard => Pattern.StartsWith("*.", StringComparison.Ordinal);
}

/// <summary>A parsed policy (RFC 8461 §3.2). MaxAgeSeconds is already clamped to 31557600.</summary>
public sealed record StsPolicy(StsMode Mode, IReadOnlyList<MxPattern> Mx, long MaxAgeSeconds,
    IReadOnlyList<KeyValuePair<string, string>> Extensions)
{
    public const long MaxAgeLimit = 31_557_600;
}
