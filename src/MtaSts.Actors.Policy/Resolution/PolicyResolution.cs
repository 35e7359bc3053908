namespace MtaSts.Actors.Policy.Resolution;

public enum PolicyResolutionKind
{
    /// <summary>No MTA-STS for this domain now (no record, invalid record, or first fetch failed: RFC 8461 §3.3
    /// "treat as no policy"). <see cref="PolicyResolution.FailureType"/> says whether it was a failure to report.</summary>
    NoPolicy,
    /// <summary>A policy applies (any mode, including none).</summary>
    Policy,
    /// <summary>TXT lookup failed temporarily and nothing usable is cached: defer, never read as "no policy".</summary>
    TempFail,
}

public enum PolicySource
{
    None,
    /// <summary>TXT id matches a valid cached policy.</summary>
    Cache,
    /// <summary>Freshly fetched (id changed, first sight, expiry or refresh).</summary>
    Fetched,
    /// <summary>A still-valid cached policy used because the TXT lookup or the fetch failed, or the TXT record is gone
    /// (RFC 8461 §3.1 note, §3.3; TLS-RPT wording "fallback-to-cached-policy").</summary>
    FallbackCached,
}

/// <summary>The engine's answer for one domain.</summary>
/// <param name="Policy">Set when <see cref="Kind"/> is <see cref="PolicyResolutionKind.Policy"/>.</param>
/// <param name="PolicyId">The id of the policy applied (its TXT id at fetch time), or the TXT id seen on failure.</param>
/// <param name="FailureType">TLS-RPT result type of a failure met on the way (also with a fallback).</param>
/// <param name="Error">Why: failure text for operators, or a short note (e.g. "no _mta-sts TXT record").</param>
public sealed record PolicyResolution(PolicyResolutionKind Kind, StsPolicy? Policy, string? PolicyId, PolicySource Source,
    TlsRptResultType? FailureType, string? Error)
{
    public string Domain { get; init; } = "";

    /// <summary>When the applied policy stops being valid (fetch time + max_age).</summary>
    public DateTimeOffset? ExpiresAt { get; init; }

    /// <summary>The failure came from the 5-minute negative cache, not from a new attempt.</summary>
    public bool NegativeCacheHit { get; init; }

    public bool HasPolicy => Kind == PolicyResolutionKind.Policy && Policy is not null;

    /// <summary>The policy to enforce/report: mode none counts as no policy for delivery decisions (§5).</summary>
    public StsMode EffectiveMode => HasPolicy ? Policy!.Mode : StsMode.None;

    public override string ToString() =>
        $"{Kind} {Domain} source={Source} id={PolicyId ?? "-"} mode={(HasPolicy ? Policy!.Mode.ToWireString() : "-")}"
        + (FailureType is null ? "" : $" failure={FailureType}") + (Error is null ? "" : $" ({Error})");
}

/// <summary>Per-call settings, from the destination profile.</summary>
public sealed record PolicyResolveOptions
{
    /// <summary>HTTP proxy for the policy fetch (CONNECT); null = direct.</summary>
    public Uri? Proxy { get; init; }

    /// <summary>Accept a policy served with a Content-Type other than text/plain.</summary>
    public bool LenientContentType { get; init; }

    /// <summary>Total fetch timeout; null = fetcher default (60 s).</summary>
    public TimeSpan? FetchTimeout { get; init; }

    /// <summary>Connect timeout (DNS + TCP + TLS); null = fetcher default (10 s).</summary>
    public TimeSpan? ConnectTimeout { get; init; }

    /// <summary>Connect timeout through the proxy (TCP + CONNECT + TLS); null = fetcher default (10 s).</summary>
    public TimeSpan? ProxyConnectTimeout { get; init; }

    public static PolicyResolveOptions Default { get; } = new();
}

/// <summary>Counters since start (for metrics). A snapshot; cheap to take.</summary>
public sealed record PolicyResolverMetrics(
    long Resolutions,      // ResolveAsync calls
    long SharedInFlight,   // calls that joined a resolution already running (single flight)
    long CacheHits,        // TXT id unchanged, cached policy valid
    long Fetches,          // HTTPS fetch attempts
    long FetchFailures,
    long NegativeHits,     // fetch skipped: same (domain, id) failed less than 5 minutes ago
    long Fallbacks,        // valid cached policy used after a failure or vanished TXT
    long TxtTempFails,
    long Refreshes,        // proactive refresh attempts
    long RefreshFailures);
