using MtaSts.Actors.Smtp.Outbound;
using MtaSts.Actors.Tls;

namespace MtaSts.Actors.Engine.Sites;

/// <summary>What an established session proved: the security plan it was opened under, the TLS it negotiated (null:
/// clear text) and the certificate checks it ran in its handshake.</summary>
public sealed record SessionSecurity(ConnectionSecurity Plan, TlsSessionInfo? Tls, IReadOnlyList<CheckOutcome> Checks)
{
    public static SessionSecurity Of(OutboundConnection conn) => new(conn.Security, conn.Tls, conn.CheckOutcomes.ToArray());
}

/// <summary>
/// MX roll-up's gate: may a session that another destination opened carry this destination's mail? Only when the
/// session already satisfies everything this destination's own plan (<see cref="SecurityPlanner"/>: TLS mode × DANE ×
/// MTA-STS, for the same MX host) would have required of a new connection — a stronger session may serve a weaker
/// requirement, never the reverse. Report-only checks (MTA-STS testing) must have passed too, so that a rolled-up
/// session never hides a failure this domain's TLS-RPT would have reported.
/// </summary>
public static class RollupCheck
{
    /// <summary>Null when <paramref name="have"/> satisfies <paramref name="want"/>; otherwise why not (debug log).</summary>
    /// <param name="mxOutsideTestingPolicy">The requesting domain's MTA-STS testing policy does not list this MX
    /// (RFC 8461 §4.1): its own connection would report that, so it does not ride on another's.</param>
    public static string? Refusal(SessionSecurity have, ConnectionSecurity want, bool mxOutsideTestingPolicy = false)
    {
        ArgumentNullException.ThrowIfNull(have);
        ArgumentNullException.ThrowIfNull(want);
        if (want.Skip) return $"MX skipped: {want.SkipReason}";
        if (!string.Equals(have.Plan.MxHost, want.MxHost, StringComparison.OrdinalIgnoreCase)) return "another MX host name";
        if (mxOutsideTestingPolicy) return "MX not in the MTA-STS testing policy";
        var tls = have.Tls is not null;
        switch (want.StartTls)
        {
            case StartTlsPolicy.Required when !tls:
                return "TLS required, session in clear text";
            // Opportunistic: a clear-text session is only as good as this domain's own attempt if that session tried
            // STARTTLS too (and the MX did not offer it); one opened with TLS off never tried.
            case StartTlsPolicy.Opportunistic when !tls && have.Plan.StartTls == StartTlsPolicy.Never:
                return "TLS preferred, session opened without trying STARTTLS";
        }
        if (want.ReportStartTlsFailure && !tls) return "MTA-STS testing: STARTTLS to report";
        // RFC 8996, RFC 8461 §7.2: TLS 1.2 or later whenever TLS is mandatory.
        if (want.RequireTls12 && tls && have.Tls!.Protocol is not ("TLSv1.2" or "TLSv1.3")) return $"TLS 1.2+ required, session {have.Tls.Protocol}";
        foreach (var check in want.Checks)
            if (!have.Checks.Any(o => o.Ok && Covers(o, check)))
                return $"{check.Kind} check ({string.Join("|", check.ReferenceIds)}) not proven by the session";
        return null;
    }

    /// <summary>A passed check proves <paramref name="wanted"/> when it is of the same kind, for DANE its TLSA records
    /// (RFC 7672 §3) are a subset of the wanted ones, and the name matched answers the wanted reference identifiers
    /// (RFC 6125): either its own identifiers are a subset of the wanted ones, or the certificate presents a name that
    /// matches one of the wanted ones — the chain's trust does not depend on the name, so the same certificate passes
    /// the wanted check too (how `required-verify-hosted-domains` sessions, verified by the MX host name, serve every
    /// domain hosted on that MX).</summary>
    private static bool Covers(CheckOutcome passed, CertificateCheck wanted) =>
        passed.Check.Kind == wanted.Kind
        && passed.Check.Tlsa.All(t => wanted.Tlsa.Any(w => w.Usage == t.Usage && w.Selector == t.Selector && w.MatchingType == t.MatchingType
            && w.Data.AsSpan().SequenceEqual(t.Data)))
        && (passed.Check.ReferenceIds.All(id => wanted.ReferenceIds.Contains(id, StringComparer.OrdinalIgnoreCase))
            || passed.PresentedNames is { } names
               && wanted.ReferenceIds.Any(r => names.Any(n => CertificateVerifier.MatchesPresented(n, r))));
}
