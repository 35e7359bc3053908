using System.Net;
using System.Text.Json;
using MtaSts.Actors.Dns;
using MtaSts.Actors.Policy;
using MtaSts.Actors.Smtp.Outbound;
using MtaSts.Actors.Tls;
using MtaSts.Actors.TlsRpt;

namespace MtaSts.Actors.TlsRpt.Tests;

public sealed class ReportTests
{
    private static readonly TlsRptPolicy Sts = new(TlsRptPolicyType.Sts,
        ["version: STSv1", "mode: enforce", "mx: mx.example.com", "max_age: 86400"], ["mx.example.com"]);

    public static TlsRptReport Sample() => new("Example Org", "mailto:postmaster@example.org", "2024-05-01T00:00:00Z_example.com_1",
        "example.com", new DateTimeOffset(2024, 5, 1, 0, 0, 0, TimeSpan.Zero), new DateTimeOffset(2024, 5, 2, 0, 0, 0, TimeSpan.Zero),
        [
            new(Sts, null, null, null, null, 10),
            new(Sts, TlsRptResult.CertificateExpired, "192.0.2.1", "mx.example.com", "198.51.100.7", 3),
            new(TlsRptPolicy.NoPolicy, TlsRptResult.StsPolicyFetchError, "192.0.2.1", "mx.example.com", "198.51.100.7", 2),
        ]);

    [Fact]
    public void Json_has_the_rfc8460_shape()
    {
        var report = Sample();
        using var doc = TlsRptReport.Decode(report.ToGzip());
        var root = doc.RootElement;
        Assert.Equal("Example Org", root.GetProperty("organization-name").GetString());
        Assert.Equal("2024-05-01T00:00:00Z", root.GetProperty("date-range").GetProperty("start-datetime").GetString());
        Assert.Equal("2024-05-02T00:00:00Z", root.GetProperty("date-range").GetProperty("end-datetime").GetString());
        Assert.Equal("mailto:postmaster@example.org", root.GetProperty("contact-info").GetString());
        Assert.Equal(report.ReportId, root.GetProperty("report-id").GetString());
        var policies = root.GetProperty("policies").EnumerateArray().ToArray();
        Assert.Equal(2, policies.Length);
        var none = policies.Single(p => p.GetProperty("policy").GetProperty("policy-type").GetString() == "no-policy-found");
        Assert.False(none.GetProperty("policy").TryGetProperty("policy-string", out _));
        Assert.Equal(0, none.GetProperty("summary").GetProperty("total-successful-session-count").GetInt64());
        Assert.Equal(2, none.GetProperty("summary").GetProperty("total-failure-session-count").GetInt64());
        var sts = policies.Single(p => p.GetProperty("policy").GetProperty("policy-type").GetString() == "sts");
        Assert.Equal("example.com", sts.GetProperty("policy").GetProperty("policy-domain").GetString());
        Assert.Equal(4, sts.GetProperty("policy").GetProperty("policy-string").GetArrayLength());
        Assert.Equal("mx.example.com", sts.GetProperty("policy").GetProperty("mx-host")[0].GetString());
        Assert.Equal(10, sts.GetProperty("summary").GetProperty("total-successful-session-count").GetInt64());
        Assert.Equal(3, sts.GetProperty("summary").GetProperty("total-failure-session-count").GetInt64());
        var fd = sts.GetProperty("failure-details")[0];
        Assert.Equal("certificate-expired", fd.GetProperty("result-type").GetString());
        Assert.Equal("192.0.2.1", fd.GetProperty("sending-mta-ip").GetString());
        Assert.Equal("mx.example.com", fd.GetProperty("receiving-mx-hostname").GetString());
        Assert.Equal("198.51.100.7", fd.GetProperty("receiving-ip").GetString());
        Assert.Equal(3, fd.GetProperty("failed-session-count").GetInt64());
    }

    [Fact]
    public void File_name_follows_section_5_1()
    {
        Assert.Equal("gw.example.org!example.com!1714521600!1714608000!2024-05-01T000000Z_example.com_1.json.gz",
            Sample().FileName("gw.example.org"));
    }
}

public sealed class ClassifierTests
{
    private static readonly StsPolicy Enforce = new(StsMode.Enforce, [new MxPattern("mx.d.test")], 86400, []);
    private static readonly StsPolicy Testing = Enforce with { Mode = StsMode.Testing };
    private static readonly IPAddress Rx = IPAddress.Parse("127.0.0.1");

    private static ConnectionSecurity Plan(MtaStsMode mode, bool listed = true, TlsSupport tls = TlsSupport.Preferred,
        DaneSupport dane = DaneSupport.None, TlsaLookup? tlsa = null) =>
        SecurityPlanner.Plan(new SecurityContext("d.test", "mx.d.test", tls, dane, mode, listed, tlsa));

    private static ConnectResult Ok(bool tls = true, params string[] reports) =>
        new(ConnectStatus.Ready, ConnectFailure.None, null, null, tls ? new TlsSessionInfo("TLSv1.3", "x") : null, [], reports);

    private static ConnectResult Failed(ConnectFailure f, params CheckOutcome[] checks) =>
        new(ConnectStatus.Transient, f, "x", null, null, checks, []);

    private static TlsRptSession? C(ConnectionSecurity plan, ConnectResult? r, StsPolicy? policy = null,
        TlsRptResultType? failure = null, DaneSupport dane = DaneSupport.None, TlsaLookup? tlsa = null) =>
        TlsRptClassifier.Classify(new TlsRptAttempt("D.test.", policy, failure, plan, tlsa ?? TlsaLookup.Absent, dane, "mx.d.test", Rx, r,
            IPAddress.Loopback, DateTimeOffset.UnixEpoch));

    [Fact]
    public void Enforce_success_is_an_sts_success()
    {
        var s = C(Plan(MtaStsMode.Enforce), Ok(), Enforce)!;
        Assert.Equal("d.test", s.PolicyDomain);
        Assert.Equal("sts", s.Policy.Type);
        Assert.Equal(["mx.d.test"], s.Policy.MxHosts);
        Assert.Contains("mode: enforce", s.Policy.Strings);
        Assert.True(s.Success);
    }

    [Fact]
    public void Enforce_name_mismatch()
    {
        var plan = Plan(MtaStsMode.Enforce);
        var check = new CheckOutcome(plan.Checks.First(c => c.Enforced), false, CertificateVerifier.NameMismatch);
        Assert.Equal("certificate-host-mismatch", C(plan, Failed(ConnectFailure.Verification, check), Enforce)!.ResultType);
    }

    [Fact]
    public void Enforce_unlisted_mx_is_a_validation_failure_without_a_connection()
    {
        var s = C(Plan(MtaStsMode.Enforce, listed: false), null, Enforce)!;
        Assert.Equal("validation-failure", s.ResultType);
        Assert.Null(s.SendingIp);
        Assert.Null(s.ReceivingIp);
    }

    [Fact]
    public void Testing_mode_report_only_finding_is_a_failure()
    {
        var s = C(Plan(MtaStsMode.Testing), Ok(true, "certificate-expired"), Testing)!;
        Assert.Equal("sts", s.Policy.Type);
        Assert.Equal("certificate-expired", s.ResultType);
    }

    [Fact]
    public void Fetch_error_makes_a_no_policy_found_failure_even_when_tls_worked()
    {
        var s = C(Plan(MtaStsMode.None), Ok(), null, TlsRptResultType.StsPolicyFetchError)!;
        Assert.Equal("no-policy-found", s.Policy.Type);
        Assert.Equal("sts-policy-fetch-error", s.ResultType);
    }

    [Fact]
    public void Network_failures_and_plaintext_by_choice_are_not_tls_sessions()
    {
        Assert.Null(C(Plan(MtaStsMode.None), Failed(ConnectFailure.Network)));
        Assert.Null(C(Plan(MtaStsMode.None, tls: TlsSupport.None), Ok(tls: false)));
        Assert.Equal("starttls-not-supported", C(Plan(MtaStsMode.None), Ok(tls: false))!.ResultType);
        Assert.True(C(Plan(MtaStsMode.None), Ok())!.Success);
    }

    [Fact]
    public void Dane_rows()
    {
        var rec = new TlsaRecord(3, 1, 1, [0xAB, 0xCD]);
        var usable = new TlsaLookup(TlsaState.Usable, [rec]);
        var plan = Plan(MtaStsMode.Enforce, dane: DaneSupport.Opportunistic, tlsa: usable);
        var ok = C(plan, Ok(), Enforce, dane: DaneSupport.Opportunistic, tlsa: usable)!;
        Assert.Equal("tlsa", ok.Policy.Type);
        Assert.Equal(["3 1 1 ABCD"], ok.Policy.Strings);
        var check = new CheckOutcome(plan.Checks.Single(), false, "no TLSA record matches");
        Assert.Equal("tlsa-invalid", C(plan, Failed(ConnectFailure.Verification, check), Enforce, dane: DaneSupport.Opportunistic, tlsa: usable)!.ResultType);
        var tempfail = new TlsaLookup(TlsaState.TempFail, [], "SERVFAIL");
        Assert.Equal("dnssec-invalid", C(Plan(MtaStsMode.None, dane: DaneSupport.Mandatory, tlsa: tempfail), null, dane: DaneSupport.Mandatory, tlsa: tempfail)!.ResultType);
        Assert.Equal("dane-required", C(Plan(MtaStsMode.None, dane: DaneSupport.Mandatory), null, dane: DaneSupport.Mandatory)!.ResultType);
    }
}
