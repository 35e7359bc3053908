using MtaSts.Actors.Dns;

namespace MtaSts.Actors.Tls;

/// <summary>How STARTTLS (RFC 3207) is used on a connection.</summary>
public enum StartTlsPolicy
{
    /// <summary>Never issue STARTTLS (profile TLS = None).</summary>
    Never,
    /// <summary>Issue STARTTLS when offered; plaintext when not offered or refused before the 220 reply.</summary>
    Opportunistic,
    /// <summary>STARTTLS must succeed; otherwise the MX is deferred ("TLS was required but could not be successfully negotiated").</summary>
    Required,
}

public enum CheckKind
{
    /// <summary>PKIX chain to a trusted root + RFC 6125 name match against one of the reference identifiers.</summary>
    Pkix,
    /// <summary>DANE TLSA match (RFC 7672 §3): DANE-EE leaf match, or DANE-TA chain + MX-host name match.</summary>
    Dane,
}

/// <summary>Which rule asked for a requirement (for logs and TLS-RPT attribution, RFC 8460 policy types).</summary>
public enum SecuritySource { Profile, MtaSts, Dane }

/// <summary>One certificate check to run in the STARTTLS handshake.</summary>
/// <param name="Enforced">False: a failure is recorded and reported (MTA-STS testing, Preferred-Verify) but the
/// connection proceeds over TLS.</param>
/// <param name="ReferenceIds">RFC 6125 reference identifiers; a match on any one of them is enough.</param>
/// <param name="Tlsa">For <see cref="CheckKind.Dane"/>: the usable TLSA records of this MX.</param>
public sealed record CertificateCheck(CheckKind Kind, SecuritySource Source, bool Enforced,
    IReadOnlyList<string> ReferenceIds, IReadOnlyList<TlsaRecord> Tlsa)
{
    public static CertificateCheck Pkix(SecuritySource source, bool enforced, params string[] referenceIds) =>
        new(CheckKind.Pkix, source, enforced, referenceIds, Array.Empty<TlsaRecord>());

    public static CertificateCheck Dane(IReadOnlyList<TlsaRecord> tlsa, params string[] referenceIds) =>
        new(CheckKind.Dane, SecuritySource.Dane, true, referenceIds, tlsa);
}

public enum MxDisposition
{
    Connect,
    /// <summary>Do not connect to this MX (MTA-STS enforce non-matching MX, DANE mandatory without usable TLSA,
    /// TLSA tempfail). Always transient: the message is deferred if no MX is left.</summary>
    Skip,
}

/// <summary>
/// The per-MX security requirement produced by <see cref="SecurityPlanner"/>: what the outbound connection must do
/// about STARTTLS, which certificate checks run (enforced or report-only), and whether to connect at all.
/// </summary>
/// <param name="SkipStatus">RFC 3463 status for the deferral when skipped (4.4.4 route, 4.7.5 crypto, 4.4.3 DNS).</param>
/// <param name="RequireTls12">Refuse TLS below 1.2 (RFC 8996; RFC 8461 §7.2). Set whenever TLS is required.</param>
/// <param name="GovernedBy">The rule that decided the posture (DANE, MTA-STS enforce, or the profile).</param>
/// <param name="ReportStartTlsFailure">MTA-STS testing: a missing/failed STARTTLS is reported (RFC 8460
/// <c>starttls-not-supported</c>) while delivery proceeds as the profile allows.</param>
/// <param name="Notes">Report-only findings known before connecting (e.g. MX outside a testing policy) and
/// explanations of the decision, for logs and TLS-RPT.</param>
public sealed record ConnectionSecurity(
    string MxHost,
    MxDisposition Disposition,
    string? SkipReason,
    string? SkipStatus,
    StartTlsPolicy StartTls,
    bool RequireTls12,
    IReadOnlyList<CertificateCheck> Checks,
    SecuritySource GovernedBy,
    bool ReportStartTlsFailure,
    IReadOnlyList<string> Notes)
{
    public bool Skip => Disposition == MxDisposition.Skip;

    /// <summary>Plaintext delivery is acceptable when STARTTLS is not offered.</summary>
    public bool PlaintextFallbackAllowed => StartTls != StartTlsPolicy.Required;

    public IEnumerable<CertificateCheck> EnforcedChecks => Checks.Where(c => c.Enforced);
    public IEnumerable<CertificateCheck> ReportOnlyChecks => Checks.Where(c => !c.Enforced);

    /// <summary>True when some failure is reported without blocking (testing mode, Preferred-Verify).</summary>
    public bool HasReportOnlyFailures => ReportStartTlsFailure || Checks.Any(c => !c.Enforced);

    /// <summary>No TLS, no checks: what an SMTP route with TLS None, or a test, uses.</summary>
    public static ConnectionSecurity Plaintext(string mxHost) => new(mxHost, MxDisposition.Connect, null, null,
        StartTlsPolicy.Never, false, Array.Empty<CertificateCheck>(), SecuritySource.Profile, false, Array.Empty<string>());

    /// <summary>Short human description for logs, e.g. <c>starttls=Required tls1.2+ checks=[Dane(mx.example.com)]</c>.</summary>
    public string Describe()
    {
        if (Skip) return $"skip ({SkipReason})";
        var checks = string.Join(", ", Checks.Select(c =>
            $"{c.Kind}{(c.Enforced ? "" : "?")}({string.Join("|", c.ReferenceIds)})"));
        return $"starttls={StartTls}{(RequireTls12 ? " tls1.2+" : "")} governed-by={GovernedBy} checks=[{checks}]";
    }
}

/// <summary>Everything the planner needs about one MX of one destination.</summary>
/// <param name="MxMatchesPolicy">RFC 8461 §4.1 match of <paramref name="MxHost"/> against the policy's mx patterns
/// (ignored when <paramref name="MtaSts"/> is None).</param>
/// <param name="Tlsa">TLSA state of the MX; ignored when <paramref name="Dane"/> is None or on an SMTP route.</param>
/// <param name="ViaSmtpRoute">The host is a static SMTP-route next hop: MTA-STS and DANE are not enforced (SPEC §2).</param>
public sealed record SecurityContext(
    string RecipientDomain,
    string MxHost,
    TlsSupport Tls,
    DaneSupport Dane = DaneSupport.None,
    MtaStsMode MtaSts = MtaStsMode.None,
    bool MxMatchesPolicy = false,
    TlsaLookup? Tlsa = null,
    bool ViaSmtpRoute = false);
