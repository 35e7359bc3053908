using MtaSts.Actors.Dns;
using MtaSts.Actors.Tls;

namespace MtaSts.Actors.Tls.Tests;

/// <summary>One test (or theory) per row of the <see cref="SecurityPlanner"/> table; the row tags match the code.</summary>
public sealed class SecurityPlannerTests
{
    private const string Domain = "example.com";
    private const string Mx = "mx1.mail.example.net";
    private static readonly TlsaRecord Dane311 = new(3, 1, 1, new byte[32]);
    private static readonly TlsaRecord PkixEe = new(1, 1, 1, new byte[32]);
    private static TlsaLookup Usable => new(TlsaState.Usable, new[] { Dane311 });
    private static TlsaLookup Unusable => new(TlsaState.Unusable, Array.Empty<TlsaRecord>());
    private static TlsaLookup TempFail => new(TlsaState.TempFail, Array.Empty<TlsaRecord>(), "SERVFAIL");

    private static ConnectionSecurity Plan(TlsSupport tls, DaneSupport dane = DaneSupport.None, MtaStsMode sts = MtaStsMode.None,
        bool match = true, TlsaLookup? tlsa = null, bool route = false) =>
        SecurityPlanner.Plan(new SecurityContext(Domain, Mx, tls, dane, sts, match, tlsa, route));

    // ---- P1..P6: the profile alone

    [Fact]
    public void P1_None_never_starttls()
    {
        var s = Plan(TlsSupport.None);
        Assert.Equal(StartTlsPolicy.Never, s.StartTls);
        Assert.Empty(s.Checks);
        Assert.True(s.PlaintextFallbackAllowed);
        Assert.False(s.RequireTls12);
    }

    [Fact]
    public void P2_Preferred_opportunistic_without_checks()
    {
        var s = Plan(TlsSupport.Preferred);
        Assert.Equal(StartTlsPolicy.Opportunistic, s.StartTls);
        Assert.Empty(s.Checks);
        Assert.False(s.HasReportOnlyFailures);
    }

    [Fact]
    public void P3_Required_requires_starttls_tls12_without_checks()
    {
        var s = Plan(TlsSupport.Required);
        Assert.Equal(StartTlsPolicy.Required, s.StartTls);
        Assert.True(s.RequireTls12);
        Assert.False(s.PlaintextFallbackAllowed);
        Assert.Empty(s.Checks);
    }

    [Fact]
    public void P4_PreferredVerify_opportunistic_with_report_only_domain_check()
    {
        var s = Plan(TlsSupport.PreferredVerify);
        Assert.Equal(StartTlsPolicy.Opportunistic, s.StartTls);
        var c = Assert.Single(s.Checks);
        Assert.Equal(CheckKind.Pkix, c.Kind);
        Assert.False(c.Enforced);
        Assert.Equal(new[] { Domain }, c.ReferenceIds);
        Assert.True(s.HasReportOnlyFailures);
    }

    [Fact]
    public void P5_RequiredVerify_enforces_pkix_against_recipient_domain_only()
    {
        var s = Plan(TlsSupport.RequiredVerify);
        Assert.Equal(StartTlsPolicy.Required, s.StartTls);
        var c = Assert.Single(s.EnforcedChecks);
        Assert.Equal(new[] { Domain }, c.ReferenceIds);
    }

    [Fact]
    public void P6_Hosted_enforces_pkix_against_domain_or_mx_host()
    {
        var s = Plan(TlsSupport.RequiredVerifyHostedDomains);
        Assert.Equal(StartTlsPolicy.Required, s.StartTls);
        var c = Assert.Single(s.EnforcedChecks);
        Assert.Equal(new[] { Domain, Mx }, c.ReferenceIds);
    }

    // ---- R1: SMTP route

    [Theory]
    [InlineData(TlsSupport.Preferred, StartTlsPolicy.Opportunistic)]
    [InlineData(TlsSupport.RequiredVerify, StartTlsPolicy.Required)]
    public void R1_route_ignores_mtasts_and_dane(TlsSupport tls, StartTlsPolicy expected)
    {
        var s = Plan(tls, DaneSupport.Mandatory, MtaStsMode.Enforce, match: false, tlsa: TempFail, route: true);
        Assert.False(s.Skip);
        Assert.Equal(expected, s.StartTls);
        Assert.DoesNotContain(s.Checks, c => c.Source != SecuritySource.Profile);
        Assert.Equal(SecuritySource.Profile, s.GovernedBy);
    }

    // ---- DANE rows

    [Theory]
    [InlineData(DaneSupport.Opportunistic)]
    [InlineData(DaneSupport.Mandatory)]
    public void D6_tlsa_tempfail_skips_mx_never_downgrades(DaneSupport dane)
    {
        var s = Plan(TlsSupport.Preferred, dane, MtaStsMode.Enforce, tlsa: TempFail);
        Assert.True(s.Skip);
        Assert.Equal(SecurityPlanner.StatusDnsTempFail, s.SkipStatus);
        Assert.Contains("TLSA lookup failed", s.SkipReason);
    }

    [Theory]
    [InlineData(DaneSupport.Opportunistic, TlsSupport.None)]
    [InlineData(DaneSupport.Opportunistic, TlsSupport.RequiredVerify)]
    [InlineData(DaneSupport.Mandatory, TlsSupport.Preferred)]
    public void D1_usable_tlsa_dane_governs_and_replaces_pkix(DaneSupport dane, TlsSupport tls)
    {
        var s = Plan(tls, dane, tlsa: Usable);
        Assert.Equal(StartTlsPolicy.Required, s.StartTls);
        Assert.True(s.RequireTls12);
        Assert.Equal(SecuritySource.Dane, s.GovernedBy);
        var c = Assert.Single(s.Checks);
        Assert.Equal(CheckKind.Dane, c.Kind);
        Assert.True(c.Enforced);
        Assert.Equal(new[] { Mx }, c.ReferenceIds);
        Assert.Equal(new[] { Dane311 }, c.Tlsa);
    }

    [Fact]
    public void D1_usable_tlsa_skips_mtasts_even_for_an_mx_outside_an_enforce_policy()
    {
        // D01 decision: DANE success → MTA-STS skipped (vendor; KumoMTA, Stalwart TLS posture, postfix-tlspol).
        var s = Plan(TlsSupport.Preferred, DaneSupport.Opportunistic, MtaStsMode.Enforce, match: false, tlsa: Usable);
        Assert.False(s.Skip);
        Assert.DoesNotContain(s.Checks, c => c.Source == SecuritySource.MtaSts);
        Assert.Contains(s.Notes, n => n.Contains("MTA-STS skipped"));
    }

    [Fact]
    public void D1_D02_no_pkix_check_can_rescue_a_failing_dane_check()
    {
        // RFC 8461 §2: the only enforced check is DANE, so a WebPKI-valid certificate that fails TLSA still fails.
        var s = Plan(TlsSupport.RequiredVerifyHostedDomains, DaneSupport.Opportunistic, MtaStsMode.Enforce, tlsa: Usable);
        Assert.All(s.EnforcedChecks, c => Assert.Equal(CheckKind.Dane, c.Kind));
        Assert.Empty(s.ReportOnlyChecks);
    }

    [Fact]
    public void D3_mandatory_with_unusable_tlsa_skips_mx()
    {
        var s = Plan(TlsSupport.Required, DaneSupport.Mandatory, tlsa: Unusable);
        Assert.True(s.Skip);
        Assert.Equal(SecurityPlanner.StatusDane, s.SkipStatus);
        Assert.Contains("no usable TLSA", s.SkipReason);
    }

    [Fact]
    public void D5_mandatory_without_tlsa_skips_mx()
    {
        var s = Plan(TlsSupport.Required, DaneSupport.Mandatory, MtaStsMode.Enforce, tlsa: TlsaLookup.Absent);
        Assert.True(s.Skip);
        Assert.Equal(SecurityPlanner.StatusDane, s.SkipStatus);
    }

    [Fact]
    public void D5_mandatory_with_unsigned_tlsa_answer_skips_mx()
    {
        var unsigned = TlsaLookup.FromAnswer(new DnsAnswer<TlsaRecord>(DnsOutcome.Ok, new[] { Dane311 }, Authenticated: false));
        var s = Plan(TlsSupport.Required, DaneSupport.Mandatory, tlsa: unsigned);
        Assert.True(s.Skip);
        Assert.Contains("not DNSSEC-authenticated", s.SkipReason);
    }

    [Fact]
    public void D2_opportunistic_unusable_tlsa_makes_starttls_mandatory_unauthenticated()
    {
        var s = Plan(TlsSupport.Preferred, DaneSupport.Opportunistic, tlsa: Unusable);
        Assert.Equal(StartTlsPolicy.Required, s.StartTls);
        Assert.Empty(s.Checks);
        Assert.False(s.PlaintextFallbackAllowed);
    }

    [Fact]
    public void D2_testing_policy_cannot_relax_unusable_tlsa()
    {
        var s = Plan(TlsSupport.Preferred, DaneSupport.Opportunistic, MtaStsMode.Testing, tlsa: Unusable);
        Assert.Equal(StartTlsPolicy.Required, s.StartTls);
        var c = Assert.Single(s.Checks);
        Assert.False(c.Enforced);
        Assert.Equal(SecuritySource.MtaSts, c.Source);
    }

    [Fact]
    public void D2_enforce_policy_adds_pkix_against_mx_host()
    {
        var s = Plan(TlsSupport.Preferred, DaneSupport.Opportunistic, MtaStsMode.Enforce, tlsa: Unusable);
        Assert.Equal(StartTlsPolicy.Required, s.StartTls);
        var c = Assert.Single(s.EnforcedChecks);
        Assert.Equal(new[] { Mx }, c.ReferenceIds);
        Assert.Equal(SecuritySource.MtaSts, s.GovernedBy);
    }

    [Fact]
    public void D4_opportunistic_without_tlsa_falls_back_to_profile()
    {
        var s = Plan(TlsSupport.Preferred, DaneSupport.Opportunistic, tlsa: TlsaLookup.Absent);
        Assert.Equal(StartTlsPolicy.Opportunistic, s.StartTls);
        Assert.Empty(s.Checks);
        Assert.Equal(SecuritySource.Profile, s.GovernedBy);
    }

    [Fact]
    public void Dane_none_ignores_tlsa_state()
    {
        var s = Plan(TlsSupport.Preferred, DaneSupport.None, tlsa: TempFail);
        Assert.False(s.Skip);
        Assert.Equal(StartTlsPolicy.Opportunistic, s.StartTls);
    }

    // ---- MTA-STS rows

    [Theory]
    [InlineData(TlsSupport.Preferred)]
    [InlineData(TlsSupport.RequiredVerifyHostedDomains)]
    public void S3_enforce_non_matching_mx_is_skipped(TlsSupport tls)
    {
        var s = Plan(tls, sts: MtaStsMode.Enforce, match: false);
        Assert.True(s.Skip);
        Assert.Equal(SecurityPlanner.StatusMtaStsNoMx, s.SkipStatus);
        Assert.Contains("not listed", s.SkipReason);
    }

    [Theory]
    [InlineData(TlsSupport.None)]
    [InlineData(TlsSupport.Preferred)]
    [InlineData(TlsSupport.PreferredVerify)]
    public void S2_enforce_is_stricter_than_a_weaker_profile(TlsSupport tls)
    {
        var s = Plan(tls, sts: MtaStsMode.Enforce);
        Assert.Equal(StartTlsPolicy.Required, s.StartTls);
        Assert.True(s.RequireTls12);
        Assert.Equal(SecuritySource.MtaSts, s.GovernedBy);
        var c = Assert.Single(s.EnforcedChecks);
        Assert.Equal(SecuritySource.MtaSts, c.Source);
        Assert.Equal(new[] { Mx }, c.ReferenceIds);
    }

    [Fact]
    public void S2_enforce_keeps_a_stricter_profile_check()
    {
        var s = Plan(TlsSupport.RequiredVerify, sts: MtaStsMode.Enforce);
        Assert.Equal(2, s.EnforcedChecks.Count());
        Assert.Contains(s.EnforcedChecks, c => c.Source == SecuritySource.Profile && c.ReferenceIds.SequenceEqual(new[] { Domain }));
        Assert.Contains(s.EnforcedChecks, c => c.Source == SecuritySource.MtaSts && c.ReferenceIds.SequenceEqual(new[] { Mx }));
    }

    [Fact]
    public void S1_testing_delivers_as_profile_and_reports()
    {
        var s = Plan(TlsSupport.Preferred, sts: MtaStsMode.Testing, match: false);
        Assert.False(s.Skip);
        Assert.Equal(StartTlsPolicy.Opportunistic, s.StartTls);
        Assert.False(s.RequireTls12);
        Assert.True(s.ReportStartTlsFailure);
        var c = Assert.Single(s.ReportOnlyChecks);
        Assert.Equal(new[] { Mx }, c.ReferenceIds);
        Assert.Contains(s.Notes, n => n.Contains("not listed"));
    }

    [Fact]
    public void S1_testing_with_tls_disabled_checks_nothing()
    {
        var s = Plan(TlsSupport.None, sts: MtaStsMode.Testing);
        Assert.Equal(StartTlsPolicy.Never, s.StartTls);
        Assert.Empty(s.Checks);
        Assert.False(s.ReportStartTlsFailure);
    }

    [Fact]
    public void S0_none_mode_is_the_profile()
    {
        var s = Plan(TlsSupport.RequiredVerify, sts: MtaStsMode.None, match: false);
        Assert.False(s.Skip);
        Assert.Equal(SecuritySource.Profile, s.GovernedBy);
        Assert.Single(s.Checks);
    }

    [Fact]
    public void Names_are_normalized()
    {
        var s = SecurityPlanner.Plan(new SecurityContext("Example.COM.", "MX1.Mail.Example.NET.", TlsSupport.RequiredVerifyHostedDomains));
        Assert.Equal(new[] { Domain, Mx }, s.Checks[0].ReferenceIds);
        Assert.Equal(Mx, s.MxHost);
    }

    [Fact]
    public void PlanAll_keeps_order()
    {
        var all = SecurityPlanner.PlanAll(new[]
        {
            new SecurityContext(Domain, "a.example.com", TlsSupport.Preferred, MtaSts: MtaStsMode.Enforce, MxMatchesPolicy: true),
            new SecurityContext(Domain, "b.example.org", TlsSupport.Preferred, MtaSts: MtaStsMode.Enforce, MxMatchesPolicy: false),
        });
        Assert.False(all[0].Skip);
        Assert.True(all[1].Skip);
        Assert.Contains("skip", all[1].Describe());
        Assert.Contains("starttls=Required", all[0].Describe());
    }

    // ---- TLSA answer classification

    [Fact]
    public void Tlsa_classification()
    {
        Assert.Equal(TlsaState.TempFail, TlsaLookup.FromAnswer(DnsAnswer<TlsaRecord>.Fail("timeout")).State);
        Assert.Equal(TlsaState.Absent, TlsaLookup.FromAnswer(new DnsAnswer<TlsaRecord>(DnsOutcome.NxDomain, Array.Empty<TlsaRecord>(), true)).State);
        Assert.Equal(TlsaState.Absent, TlsaLookup.FromAnswer(new DnsAnswer<TlsaRecord>(DnsOutcome.NoData, Array.Empty<TlsaRecord>(), true)).State);
        Assert.Equal(TlsaState.Absent, TlsaLookup.FromAnswer(new DnsAnswer<TlsaRecord>(DnsOutcome.Ok, new[] { Dane311 }, false)).State);
        Assert.Equal(TlsaState.Absent, TlsaLookup.FromAnswer(new DnsAnswer<TlsaRecord>(DnsOutcome.Ok, new[] { Dane311 }, true), hostSecure: false).State);
        var usable = TlsaLookup.FromAnswer(new DnsAnswer<TlsaRecord>(DnsOutcome.Ok, new[] { PkixEe, Dane311 }, true));
        Assert.Equal(TlsaState.Usable, usable.State);
        Assert.Equal(new[] { Dane311 }, usable.Records);
        Assert.Equal(TlsaState.Unusable, TlsaLookup.FromAnswer(new DnsAnswer<TlsaRecord>(DnsOutcome.Ok, new[] { PkixEe }, true)).State);
        Assert.Equal("_25._tcp.mx.example.com", TlsaLookup.OwnerName("mx.example.com."));
    }
}
