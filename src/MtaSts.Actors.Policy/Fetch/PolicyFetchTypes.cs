namespace MtaSts.Actors.Policy.Fetch;

/// <summary>Process-wide settings of <see cref="PolicyFetcher"/>.</summary>
public sealed record PolicyFetcherOptions
{
    /// <summary>PEM bundle of extra trust anchors (private deployments, tests). The policy host's chain must end at a
    /// system root OR at one of these. null = system roots only.</summary>
    public string? ExtraCaBundlePath { get; init; }

    /// <summary>HTTPS port of policy hosts. Always 443 in production (RFC 8461 §3.3); tests point it at a loopback server.</summary>
    public int Port { get; init; } = 443;

    /// <summary>Whole request (connect, TLS, headers, body). RFC 8461 §3.3 suggests one minute.</summary>
    public TimeSpan Timeout { get; init; } = TimeSpan.FromSeconds(60);

    /// <summary>DNS + TCP + TLS to the policy host.</summary>
    public TimeSpan ConnectTimeout { get; init; } = TimeSpan.FromSeconds(10);

    /// <summary>TCP to the proxy + CONNECT tunnel + TLS through it.</summary>
    public TimeSpan ProxyConnectTimeout { get; init; } = TimeSpan.FromSeconds(10);

    public string UserAgent { get; init; } = "MtaSts.Actors/1.0 (MTA-STS policy fetcher)";
}

/// <summary>Per-call settings (they come from the destination profile). null fields fall back to
/// <see cref="PolicyFetcherOptions"/>.</summary>
public sealed record PolicyFetchRequest
{
    /// <summary>HTTP proxy (CONNECT is used for https); the proxy resolves the policy host name.</summary>
    public Uri? Proxy { get; init; }

    /// <summary>Accept any Content-Type (RFC 8461 §3.3 "SHOULD" check text/plain; many real hosts get it wrong).</summary>
    public bool LenientContentType { get; init; }

    public TimeSpan? Timeout { get; init; }
    public TimeSpan? ConnectTimeout { get; init; }
    public TimeSpan? ProxyConnectTimeout { get; init; }

    public static PolicyFetchRequest Default { get; } = new();
}

/// <summary>Why a fetch failed, finer than the TLS-RPT result type (metrics, breakers, operator text).</summary>
public enum PolicyFetchFailure
{
    None,
    Dns,                // policy host has no address or the lookup failed
    Connect,            // TCP refused/unreachable (policy host or proxy)
    ConnectTimeout,     // DNS+TCP+TLS (or proxy tunnel) not done within the connect timeout
    Proxy,              // proxy refused the CONNECT tunnel
    Tls,                // handshake failed for a non-certificate reason
    Certificate,        // PKIX / name / expiry (sts-webpki-invalid)
    HttpStatus,         // anything but 200
    Redirect,           // 3xx: never followed
    ContentType,        // not text/plain
    TooLarge,           // over 64 KiB
    Timeout,            // total timeout (slow headers or body)
    Invalid,            // body does not parse
    Network,            // connection reset mid-response etc.
}

/// <summary>Result of one fetch. Exactly one of <see cref="Policy"/> or <see cref="Error"/> is set.</summary>
/// <param name="Body">The body as served (when one was read), for the checker and the cache.</param>
/// <param name="Warnings">Non-fatal parser warnings (e.g. clamped max_age).</param>
public sealed record PolicyFetchResult(string Domain, StsPolicy? Policy, string? Body, TlsRptResultType? FailureType,
    PolicyFetchFailure Failure, string? Error, IReadOnlyList<string> Warnings)
{
    public bool Ok => Policy is not null;

    public static PolicyFetchResult Success(string domain, StsPolicy policy, string body, IReadOnlyList<string> warnings) =>
        new(domain, policy, body, null, PolicyFetchFailure.None, null, warnings);

    public static PolicyFetchResult Failed(string domain, PolicyFetchFailure failure, string error, string? body = null) =>
        new(domain, null, body, failure.ToTlsRpt(), failure, error, Array.Empty<string>());
}

/// <summary>Fetches a domain's policy over HTTPS (RFC 8461 §3.3). Implemented by <see cref="PolicyFetcher"/>.</summary>
public interface IPolicyFetcher
{
    Task<PolicyFetchResult> FetchAsync(string domain, PolicyFetchRequest request, CancellationToken ct);
}

public static class TlsRptResultTypeExtensions
{
    /// <summary>RFC 8460 §4.3 spelling.</summary>
    public static string ToWireString(this TlsRptResultType type) => type switch
    {
        TlsRptResultType.StsPolicyFetchError => "sts-policy-fetch-error",
        TlsRptResultType.StsPolicyInvalid => "sts-policy-invalid",
        TlsRptResultType.StsWebpkiInvalid => "sts-webpki-invalid",
        _ => throw new ArgumentOutOfRangeException(nameof(type), type, null),
    };

    /// <summary>RFC 8460 §4.3.2: certificate problems of the policy host are sts-webpki-invalid; a body that is not a
    /// valid policy (syntax, media type, size) is sts-policy-invalid; everything else is sts-policy-fetch-error.</summary>
    public static TlsRptResultType? ToTlsRpt(this PolicyFetchFailure failure) => failure switch
    {
        PolicyFetchFailure.None => null,
        PolicyFetchFailure.Certificate => TlsRptResultType.StsWebpkiInvalid,
        PolicyFetchFailure.ContentType or PolicyFetchFailure.TooLarge or PolicyFetchFailure.Invalid => TlsRptResultType.StsPolicyInvalid,
        _ => TlsRptResultType.StsPolicyFetchError,
    };
}
