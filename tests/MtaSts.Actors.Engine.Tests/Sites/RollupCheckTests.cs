using MtaSts.Actors.Dns;
using MtaSts.Actors.Engine.Sites;
using MtaSts.Actors.Smtp.Outbound;
using MtaSts.Actors.Tls;

namespace MtaSts.Actors.Engine.Tests.Sites;

/// <summary>MX roll-up's gate as a table: (the session a.test opened, b.test's own plan for the same MX) → reusable?</summary>
public sealed class RollupCheckTests
{
    private const string Mx = "mx.shared.example";
    private static readonly TlsaRecord RecordA = new(3, 1, 1, [1, 2, 3]);
    private static readonly TlsaRecord RecordB = new(3, 1, 1, [9, 9, 9]);
    private static readonly TlsSessionInfo Tls13 = new("TLSv1.3", "TLS_AES_256_GCM_SHA384");

    public enum Have { Plaintext, PlaintextTlsOff, TlsUnverified, TlsPkixMx, TlsPkixMxTls11, TlsDaneA, HostedCertNamesMx, HostedCertNamesA }
    public enum Want { TlsOff, Preferred, Required, StsEnforce, StsTesting, StsTestingMxOutside, StsEnforceMxOutside, DaneA, DaneB, DaneMandatoryAbsent, OtherMxHost, HostedB }

    private static ConnectionSecurity PlanFor(string domain, TlsSupport tls, MtaStsMode sts = MtaStsMode.None, bool match = true,
        DaneSupport dane = DaneSupport.None, TlsaLookup? tlsa = null, string mx = Mx) =>
        SecurityPlanner.Plan(new SecurityContext(domain, mx, tls, dane, sts, match, tlsa));

    private static SessionSecurity Session(Have have)
    {
        var preferred = PlanFor("a.test", TlsSupport.Preferred);
        var enforce = PlanFor("a.test", TlsSupport.Preferred, MtaStsMode.Enforce);
        var dane = PlanFor("a.test", TlsSupport.Preferred, dane: DaneSupport.Opportunistic, tlsa: new TlsaLookup(TlsaState.Usable, [RecordA]));
        // required-verify-hosted-domains: the certificate may name the recipient domain or the MX host.
        var hosted = PlanFor("a.test", TlsSupport.RequiredVerifyHostedDomains);
        SessionSecurity Hosted(params string[] presented) =>
            new(hosted, Tls13, hosted.Checks.Select(c => new CheckOutcome(c, true, null, presented)).ToArray());
        return have switch
        {
            // STARTTLS not offered by the MX: a Preferred session went on in clear text.
            Have.Plaintext => new SessionSecurity(preferred, null, []),
            Have.PlaintextTlsOff => new SessionSecurity(PlanFor("a.test", TlsSupport.None), null, []),
            Have.TlsUnverified => new SessionSecurity(preferred, Tls13, []),
            Have.TlsPkixMx => new SessionSecurity(enforce, Tls13, enforce.Checks.Select(c => new CheckOutcome(c, true, null)).ToArray()),
            Have.TlsPkixMxTls11 => new SessionSecurity(enforce, new TlsSessionInfo("TLSv1.1", "x"), enforce.Checks.Select(c => new CheckOutcome(c, true, null)).ToArray()),
            Have.TlsDaneA => new SessionSecurity(dane, Tls13, dane.Checks.Select(c => new CheckOutcome(c, true, null)).ToArray()),
            Have.HostedCertNamesMx => Hosted(Mx),
            Have.HostedCertNamesA => Hosted("a.test"),
            _ => throw new ArgumentOutOfRangeException(nameof(have)),
        };
    }

    private static (ConnectionSecurity Plan, bool MxOutsideTesting) Wanted(Want want) => want switch
    {
        Want.TlsOff => (PlanFor("b.test", TlsSupport.None), false),
        Want.Preferred => (PlanFor("b.test", TlsSupport.Preferred), false),
        Want.Required => (PlanFor("b.test", TlsSupport.Required), false),
        Want.StsEnforce => (PlanFor("b.test", TlsSupport.Preferred, MtaStsMode.Enforce), false),
        Want.StsTesting => (PlanFor("b.test", TlsSupport.Preferred, MtaStsMode.Testing), false),
        Want.StsTestingMxOutside => (PlanFor("b.test", TlsSupport.Preferred, MtaStsMode.Testing, match: false), true),
        Want.StsEnforceMxOutside => (PlanFor("b.test", TlsSupport.Preferred, MtaStsMode.Enforce, match: false), false),
        Want.DaneA => (PlanFor("b.test", TlsSupport.Preferred, dane: DaneSupport.Mandatory, tlsa: new TlsaLookup(TlsaState.Usable, [RecordA, RecordB])), false),
        Want.DaneB => (PlanFor("b.test", TlsSupport.Preferred, dane: DaneSupport.Mandatory, tlsa: new TlsaLookup(TlsaState.Usable, [RecordB])), false),
        Want.DaneMandatoryAbsent => (PlanFor("b.test", TlsSupport.Preferred, dane: DaneSupport.Mandatory, tlsa: TlsaLookup.Absent), false),
        Want.OtherMxHost => (PlanFor("b.test", TlsSupport.Preferred, mx: "mx2.shared.example"), false),
        Want.HostedB => (PlanFor("b.test", TlsSupport.RequiredVerifyHostedDomains), false),
        _ => throw new ArgumentOutOfRangeException(nameof(want)),
    };

    [Theory]
    // the session a.test opened, b.test's requirement for the same MX → b.test may use it
    [InlineData(Have.Plaintext, Want.Preferred, true)]            // b would have tried STARTTLS too and got clear text
    [InlineData(Have.Plaintext, Want.TlsOff, true)]
    [InlineData(Have.Plaintext, Want.Required, false)]            // TLS required
    [InlineData(Have.PlaintextTlsOff, Want.Preferred, false)]     // a never tried STARTTLS; b would have
    [InlineData(Have.TlsUnverified, Want.TlsOff, true)]           // stronger than asked
    [InlineData(Have.TlsUnverified, Want.Required, true)]
    [InlineData(Have.TlsUnverified, Want.StsEnforce, false)]      // RFC 8461 §4.2: the certificate was never checked against the MX
    [InlineData(Have.TlsPkixMx, Want.StsEnforce, true)]           // same MX name, PKIX proven
    [InlineData(Have.TlsPkixMx, Want.Preferred, true)]
    [InlineData(Have.TlsPkixMx, Want.StsTesting, true)]           // the report-only check passed
    [InlineData(Have.TlsUnverified, Want.StsTesting, false)]      // b's TLS-RPT would lose a check its own session runs
    [InlineData(Have.Plaintext, Want.StsTesting, false)]          // testing reports a missing STARTTLS
    [InlineData(Have.TlsPkixMx, Want.StsTestingMxOutside, false)] // RFC 8461 §4.1: this MX is not in b's policy
    [InlineData(Have.TlsPkixMx, Want.StsEnforceMxOutside, false)] // enforce: b skips this MX
    [InlineData(Have.TlsPkixMxTls11, Want.StsEnforce, false)]     // RFC 8996: TLS 1.2+
    [InlineData(Have.TlsDaneA, Want.DaneA, true)]                 // matched a record b also publishes
    [InlineData(Have.TlsDaneA, Want.DaneB, false)]                // b's TLSA records were not what matched
    [InlineData(Have.TlsPkixMx, Want.DaneA, false)]               // PKIX does not prove DANE
    [InlineData(Have.TlsDaneA, Want.DaneMandatoryAbsent, false)]  // b skips the MX
    [InlineData(Have.TlsPkixMx, Want.OtherMxHost, false)]
    [InlineData(Have.HostedCertNamesMx, Want.HostedB, true)]      // the certificate names the shared MX: valid for b too
    [InlineData(Have.HostedCertNamesA, Want.HostedB, false)]      // it names a.test only: b's check would fail
    [InlineData(Have.HostedCertNamesA, Want.StsEnforce, false)]   // MTA-STS wants the MX name (RFC 8461 §4.2)
    public void A_session_is_reused_only_when_it_satisfies_the_other_domains_own_requirements(Have have, Want want, bool reusable)
    {
        var (plan, outside) = Wanted(want);
        var refusal = RollupCheck.Refusal(Session(have), plan, outside);
        Assert.True(reusable == (refusal is null), refusal ?? "reusable");
    }
}
