namespace MtaSts.Actors.Policy;

/// <summary>RFC 8461 §3.2 policy mode.</summary>
public enum StsMode { None, Testing, Enforce }

public static class StsModeExtensions
{
    /// <summary>The §3.2 wire spelling ("enforce", "testing", "none"), also the log vocabulary.</summary>
    public static string ToWireString(this StsMode mode) => mode switch
    {
        StsMode.Enforce => "enforce",
        StsMode.Testing => "testing",
        StsMode.None => "none",
        _ => throw new ArgumentOutOfRangeException(nameof(mode), mode, null),
    };
}

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

    /// <summary>A failure that keeps the warnings gathered before it (e.g. "stripped a BOM").</summary>
    public static ParseResult<T> Failure(string error, IReadOnlyList<string> warnings) => new(null, error, warnings);
}

/// <summary>A parsed `_mta-sts` TXT record (RFC 8461 §3.1).</summary>
public sealed record StsTxtRecord(string Id, IReadOnlyList<KeyValuePair<string, string>> Extensions)
{
    // Value equality over the extension list too (the default compares list references).
    public bool Equals(StsTxtRecord? other) =>
        other is not null && Id == other.Id && Extensions.SequenceEqual(other.Extensions);

    public override int GetHashCode() => HashCode.Combine(Id, Extensions.Count);
}

/// <summary>An `mx:` pattern (RFC 8461 §3.2, §4.1): lower-cased A-label name, optionally with a leading "*." wildcard.</summary>
public sealed record MxPattern(string Pattern)
{
    public bool IsWildcard => Pattern.StartsWith("*.", StringComparison.Ordinal);

    public override string ToString() => Pattern;
}

/// <summary>A parsed policy (RFC 8461 §3.2). MaxAgeSeconds is clamped to 0..31557600 on construction.</summary>
public sealed record StsPolicy(StsMode Mode, IReadOnlyList<MxPattern> Mx, long MaxAgeSeconds,
    IReadOnlyList<KeyValuePair<string, string>> Extensions)
{
    /// <summary>§3.2: "max_age ... maximum value of 31557600" (one year).</summary>
    public const long MaxAgeLimit = 31_557_600;

    // The invariant lives in the type, so `new` and `with` cannot produce an out-of-range age.
    private readonly long _maxAgeSeconds = Math.Clamp(MaxAgeSeconds, 0, MaxAgeLimit);

    public long MaxAgeSeconds
    {
        get => _maxAgeSeconds;
        init => _maxAgeSeconds = Math.Clamp(value, 0, MaxAgeLimit);
    }

    // Value equality over the lists (the default compares list references): a refetched identical
    // policy must compare equal.
    public bool Equals(StsPolicy? other) =>
        other is not null && Mode == other.Mode && MaxAgeSeconds == other.MaxAgeSeconds
        && Mx.SequenceEqual(other.Mx) && Extensions.SequenceEqual(other.Extensions);

    public override int GetHashCode() => HashCode.Combine(Mode, MaxAgeSeconds, Mx.Count, Extensions.Count);
}
