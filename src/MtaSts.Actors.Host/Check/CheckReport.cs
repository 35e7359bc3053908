namespace MtaSts.Actors.Host.Check;

/// <summary>What the checker concluded about the domain's MTA-STS policy.</summary>
public enum PolicyStatus
{
    /// <summary>No usable <c>_mta-sts</c> TXT record (none, none beginning v=STSv1, several, or invalid): RFC 8461 §3.1
    /// "assume the recipient domain does not have an available MTA-STS policy".</summary>
    Absent,
    /// <summary>TXT record and policy both fine (any mode, including none).</summary>
    Valid,
    /// <summary>The TXT lookup failed temporarily (SERVFAIL, timeout): not an answer, never read as "no policy".</summary>
    TxtTempFail,
    /// <summary>A valid TXT record, but the policy could not be fetched or is invalid.</summary>
    FetchFailed,
}

/// <summary>Result of a <c>check</c> run. Everything the table and the JSON show comes from here.</summary>
/// <param name="Deliverable">The exit code: 0 when true, 1 when false.</param>
/// <param name="Verdict">One line for operators, e.g. "deliverable: MTA-STS enforce, 1 of 2 MX hosts pass".</param>
/// <param name="Mode">Policy mode (<c>enforce</c>, <c>testing</c>, <c>none</c>) when a policy was fetched.</param>
/// <param name="ResultType">RFC 8460 result type of a policy-level failure (<c>sts-policy-fetch-error</c>,
/// <c>sts-policy-invalid</c>, <c>sts-webpki-invalid</c>), else null.</param>
/// <param name="Problems">Everything that fails MTA-STS (enforced or, in testing mode, only reported).</param>
/// <param name="Warnings">Non-fatal remarks (parser warnings, TLS problems of domains without a policy).</param>
/// <param name="Log">The operator log lines the checks wrote (SPEC §4 vocabulary), "Level: text".</param>
public sealed record CheckReport(
    string Domain,
    bool Deliverable,
    string Verdict,
    PolicyStatus PolicyStatus,
    string? Mode,
    string? ResultType,
    TxtReport Txt,
    PolicyReport? Policy,
    MxReport Mx,
    IReadOnlyList<string> Problems,
    IReadOnlyList<string> Warnings,
    IReadOnlyList<string> Log)
{
    public DateTimeOffset CheckedAt { get; init; } = DateTimeOffset.UtcNow;
}

/// <param name="Outcome">DNS outcome: ok, nxdomain, nodata, tempfail.</param>
/// <param name="Records">Every TXT record at the name (strings concatenated, RFC 8461 §3.1).</param>
/// <param name="Id">The policy id of the selected v=STSv1 record.</param>
/// <param name="Error">Why no record was usable (DNS error or parse error).</param>
public sealed record TxtReport(string Name, string Outcome, IReadOnlyList<string> Records, string? Id, string? Error,
    IReadOnlyList<string> Warnings);

/// <param name="Proxy">The proxy the fetch went through (credentials removed), or null.</param>
/// <param name="Failure">Why the fetch failed (finer than the result type), or null.</param>
/// <param name="Body">The policy as served (when a body was read).</param>
/// <param name="Certificate">The policy host's certificate (direct TLS connection; not probed through a proxy).</param>
public sealed record PolicyReport(
    string Url,
    string? Proxy,
    bool Ok,
    string? Failure,
    string? ResultType,
    string? Error,
    string? Mode,
    long? MaxAge,
    IReadOnlyList<string> MxPatterns,
    string? Body,
    IReadOnlyList<string> Warnings,
    CertificateReport? Certificate);

/// <param name="Ok">The chain validates and the name matches (PKIX + RFC 6125).</param>
/// <param name="Error">OpenSSL-style reason when not ok (e.g. <c>peer cert does not match domain</c>), or the probe error.</param>
/// <param name="Chain">Subjects of the certificates the peer presented, leaf first.</param>
public sealed record CertificateReport(
    bool Ok,
    string? Error,
    string? Subject,
    string? Issuer,
    IReadOnlyList<string> Names,
    DateTimeOffset? NotBefore,
    DateTimeOffset? NotAfter,
    string? Sha256,
    IReadOnlyList<string> Chain,
    string? Protocol = null,
    string? Cipher = null);

/// <param name="Outcome">ok, implicit (no MX: the domain itself, RFC 5321 §5.1), null-mx, nxdomain, tempfail, no-address.</param>
public sealed record MxReport(string Outcome, string? Error, IReadOnlyList<MxHostReport> Hosts);

/// <summary>One MX host: policy coverage and what its SMTP service did.</summary>
/// <param name="PolicyMatch">The host matches an <c>mx:</c> pattern (null when there is no policy).</param>
/// <param name="Passes">Would be used under MTA-STS enforce: matches the policy, STARTTLS with TLS ≥ 1.2, certificate
/// valid for the MX name. (Without a policy: the same TLS checks, informational.)</param>
/// <param name="ResultType">RFC 8460 result type of this host's failure (<c>starttls-not-supported</c>,
/// <c>certificate-host-mismatch</c>, …), or null.</param>
public sealed record MxHostReport(
    string Name,
    int Preference,
    IReadOnlyList<string> Addresses,
    bool? PolicyMatch,
    SmtpProbeReport? Smtp,
    bool Passes,
    string? ResultType,
    IReadOnlyList<string> Problems);

/// <param name="Address">The address:port actually tried last (the first one that answered, if any did).</param>
/// <param name="Connected">TCP connected and the server greeted with 220 and accepted EHLO (or HELO).</param>
/// <param name="Greeting">The server's 220 line.</param>
/// <param name="Extensions">EHLO keywords before STARTTLS.</param>
/// <param name="StartTls">The server offered STARTTLS.</param>
/// <param name="Tls">TLS negotiated (protocol, cipher) or null.</param>
/// <param name="Error">Connection, greeting, STARTTLS or handshake failure.</param>
/// <param name="Transcript">The SMTP conversation (C:/S: lines), as a telnet session would show it.</param>
public sealed record SmtpProbeReport(
    string Address,
    bool Connected,
    string? Greeting,
    IReadOnlyList<string> Extensions,
    bool StartTls,
    string? TlsProtocol,
    string? TlsCipher,
    CertificateReport? Certificate,
    string? Error,
    IReadOnlyList<string> Attempts,
    IReadOnlyList<string> Transcript);
