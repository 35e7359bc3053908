namespace MtaSts.Actors.Tls;

/// <summary>
/// The decision table TLS support × DANE support (+ TLSA state of the MX) × MTA-STS (mode, MX matched) × SMTP route
/// → <see cref="ConnectionSecurity"/> for one MX. Pure and deterministic.
///
/// Order of evaluation (each row is tagged; tests use the same tags):
///   R1  SMTP route                → profile only; MTA-STS and DANE are not enforced (SPEC §2).
///   D6  DANE on, TLSA tempfail    → skip MX, defer; never downgrade (RFC 7672 §2.2, D04).
///   D1  DANE on, TLSA usable      → DANE governs: STARTTLS required, TLSA check replaces PKIX, MTA-STS skipped
///                                   (vendor "DANE success → MTA-STS skipped"; D01); failure defers and MTA-STS can
///                                   never rescue it (RFC 8461 §2; D02).
///   D3  Mandatory, TLSA unusable  → skip MX (no usable TLSA = DANE cannot succeed).
///   D5  Mandatory, TLSA absent    → skip MX (vendor "DANE Mandatory fails → not delivered").
///   D2  Opportunistic, unusable   → STARTTLS mandatory, unauthenticated (RFC 7672 §2.2); the profile/MTA-STS rows
///                                   below still add their checks; testing cannot relax it (D03).
///   D4  Opportunistic, absent     → as if DANE were off (D05; vendor "DANE Opportunistic fails → profile TLS").
///   S3  MTA-STS enforce, MX not in policy → skip MX, defer (RFC 8461 §5.1; X18/X19).
///   S2  MTA-STS enforce, MX in policy     → STARTTLS required, TLS ≥1.2, PKIX against the MX host (RFC 8461 §4.2)
///                                           on top of the profile's own checks (the stricter wins).
///   S1  MTA-STS testing           → profile posture; PKIX against the MX host and STARTTLS are checked but only
///                                   reported (RFC 8461 §5); an MX outside the policy is reported (X20).
///   S0  MTA-STS none              → profile posture.
///   P1..P6 profile TLS support    → see <see cref="Profile"/>.
/// </summary>
public static class SecurityPlanner
{
    public const string StatusMtaStsNoMx = "4.4.4";
    public const string StatusDane = "4.7.5";
    public const string StatusDnsTempFail = "4.4.3";

    public static ConnectionSecurity Plan(SecurityContext ctx)
    {
        ArgumentNullException.ThrowIfNull(ctx);
        var mx = Normalize(ctx.MxHost);
        var domain = Normalize(ctx.RecipientDomain);
        var notes = new List<string>();
        var b = Profile(ctx.Tls, domain, mx);

        // R1: an SMTP route is an operator decision to send elsewhere; MTA-STS/DANE are about the domain's own MX.
        if (ctx.ViaSmtpRoute)
        {
            notes.Add("SMTP route: MTA-STS and DANE not applied");
            return b.Build(mx, SecuritySource.Profile, false, notes);
        }

        if (ctx.Dane != DaneSupport.None)
        {
            var tlsa = ctx.Tlsa ?? TlsaLookup.Absent;
            switch (tlsa.State)
            {
                case TlsaState.TempFail:
                    // D6: a failed TLSA lookup may hide usable records; delivering with less is a downgrade.
                    return Skipped(mx, $"DANE: TLSA lookup failed for {mx}: {tlsa.Detail}", StatusDnsTempFail);

                case TlsaState.Usable:
                    // D1: DANE authenticates the MX through DNSSEC; the profile's PKIX checks and MTA-STS (including its
                    // MX filter) are skipped for this MX. Reference id = the MX host (RFC 7672 §3.2.2).
                    if (ctx.MtaSts != MtaStsMode.None) notes.Add("MTA-STS skipped: DANE TLSA records govern this MX");
                    return new ConnectionSecurity(mx, MxDisposition.Connect, null, null, StartTlsPolicy.Required, true,
                        new[] { CertificateCheck.Dane(tlsa.Records, mx) }, SecuritySource.Dane, false, notes);

                case TlsaState.Unusable when ctx.Dane == DaneSupport.Mandatory:
                    // D3
                    return Skipped(mx, $"DANE mandatory: no usable TLSA records for {mx}", StatusDane);

                case TlsaState.Absent when ctx.Dane == DaneSupport.Mandatory:
                    // D5
                    return Skipped(mx, $"DANE mandatory: no DNSSEC-validated TLSA records for {mx}" +
                        (tlsa.Detail is null ? "" : $" ({tlsa.Detail})"), StatusDane);

                case TlsaState.Unusable:
                    // D2: the domain signalled TLS support through DNSSEC, so plaintext is a downgrade; nothing to
                    // authenticate against, so no DANE check. Rows below may add PKIX.
                    b.RequireStartTls();
                    notes.Add("DANE: TLSA records present but none usable; STARTTLS mandatory, unauthenticated");
                    break;

                case TlsaState.Absent:
                    // D4: fall through to MTA-STS/profile.
                    break;
            }
        }

        var governed = SecuritySource.Profile;
        var reportStartTls = false;
        switch (ctx.MtaSts)
        {
            case MtaStsMode.Enforce when !ctx.MxMatchesPolicy:
                // S3: never connect to an MX the enforce policy does not list; transient (RFC 8461 §5.1 step 3: a
                // newer policy may list it).
                return Skipped(mx, $"MTA-STS: MX host {mx} not listed in the enforce policy of {domain}", StatusMtaStsNoMx);

            case MtaStsMode.Enforce:
                // S2: RFC 8461 §4.2/§5: STARTTLS, TLS ≥1.2, certificate valid for the MX host. The profile's own
                // checks stay (the stricter of the two wins).
                b.RequireStartTls();
                b.Checks.Add(CertificateCheck.Pkix(SecuritySource.MtaSts, true, mx));
                governed = SecuritySource.MtaSts;
                break;

            case MtaStsMode.Testing:
                // S1: deliver as the profile allows; check and report what enforce would have refused.
                if (!ctx.MxMatchesPolicy) notes.Add($"MTA-STS testing: MX host {mx} not listed in the policy of {domain}");
                if (b.StartTls != StartTlsPolicy.Never)
                {
                    b.Checks.Add(CertificateCheck.Pkix(SecuritySource.MtaSts, false, mx));
                    reportStartTls = true;
                }
                else notes.Add("MTA-STS testing: TLS disabled by the destination profile; nothing to check");
                break;

            case MtaStsMode.None:
                // S0
                break;
        }
        return b.Build(mx, governed, reportStartTls, notes);
    }

    /// <summary>Plans every MX of a destination, keeping the MX order.</summary>
    public static IReadOnlyList<ConnectionSecurity> PlanAll(IEnumerable<SecurityContext> contexts) =>
        contexts.Select(Plan).ToArray();

    /// <summary>The profile's own posture (vendor TAC 118955 / 200537):
    ///   P1 None            → no STARTTLS.
    ///   P2 Preferred       → STARTTLS when offered, no verification.
    ///   P3 Required        → STARTTLS required, no verification.
    ///   P4 Preferred-Verify→ STARTTLS when offered; PKIX against the recipient domain, report-only.
    ///   P5 Required-Verify → STARTTLS required; PKIX against the recipient domain, enforced.
    ///   P6 Required-Verify Hosted Domains → STARTTLS required; PKIX against the recipient domain or the MX host.</summary>
    private static Builder Profile(TlsSupport tls, string domain, string mx) => tls switch
    {
        TlsSupport.None => new Builder(StartTlsPolicy.Never),
        TlsSupport.Preferred => new Builder(StartTlsPolicy.Opportunistic),
        TlsSupport.Required => new Builder(StartTlsPolicy.Required),
        TlsSupport.PreferredVerify => new Builder(StartTlsPolicy.Opportunistic,
            CertificateCheck.Pkix(SecuritySource.Profile, false, domain)),
        TlsSupport.RequiredVerify => new Builder(StartTlsPolicy.Required,
            CertificateCheck.Pkix(SecuritySource.Profile, true, domain)),
        TlsSupport.RequiredVerifyHostedDomains => new Builder(StartTlsPolicy.Required,
            CertificateCheck.Pkix(SecuritySource.Profile, true, domain, mx)),
        _ => throw new ArgumentOutOfRangeException(nameof(tls), tls, null),
    };

    private static ConnectionSecurity Skipped(string mx, string reason, string status) =>
        new(mx, MxDisposition.Skip, reason, status, StartTlsPolicy.Never, false, Array.Empty<CertificateCheck>(),
            SecuritySource.Profile, false, Array.Empty<string>());

    private static string Normalize(string name) => name.Trim().TrimEnd('.').ToLowerInvariant();

    private sealed class Builder(StartTlsPolicy startTls, params CertificateCheck[] checks)
    {
        public StartTlsPolicy StartTls { get; private set; } = startTls;
        public List<CertificateCheck> Checks { get; } = new(checks);

        public void RequireStartTls() => StartTls = StartTlsPolicy.Required;

        public ConnectionSecurity Build(string mx, SecuritySource governed, bool reportStartTls, List<string> notes) =>
            // RFC 8996: whenever TLS is mandatory, TLS 1.0/1.1 do not count as TLS.
            new(mx, MxDisposition.Connect, null, null, StartTls, StartTls == StartTlsPolicy.Required, Checks.ToArray(),
                governed, reportStartTls, notes.ToArray());
    }
}
