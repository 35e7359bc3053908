using System.Net;
using System.Text.Json;
using MtaSts.Actors.Host.Check;
using MtaSts.Actors.TestInfra.Dns;
using MtaSts.Actors.TestInfra.Http;
using MtaSts.Actors.TestInfra.Proxy;
using static MtaSts.Actors.Host.Tests.Check.CheckTestBed;

namespace MtaSts.Actors.Host.Tests.Check;

/// <summary>
/// <c>mtasts-gateway check</c> end to end on loopback: real DNS server, HTTPS policy host, proxies and SMTP receivers;
/// run through <see cref="CheckCommand.RunAsync"/> with string writers, verdict asserted on the JSON report.
/// </summary>
public sealed class CheckCommandTests : IAsyncLifetime
{
    private CheckTestBed _bed = null!;

    public async Task InitializeAsync() => _bed = await CheckTestBed.StartAsync();
    public async Task DisposeAsync() => await _bed.DisposeAsync();

    private Task<CheckRun> Json(params string[] extra) => RunAsync(_bed.Args([.. extra, "--json"]));

    // ------------------------------------------------------------------ enforce

    [Fact]
    public async Task Valid_enforce_policy_and_good_mx_is_deliverable()
    {
        _bed.Publish().Mx();
        var mx = _bed.Receiver(MxName);
        var run = await RunAsync(_bed.Args("--mx-override", $"127.0.0.1:{mx.Port}"));

        Assert.True(run.Exit == 0, run.ToString());
        Assert.Contains("Verdict: DELIVERABLE", run.Stdout);
        Assert.Contains("MTA-STS enforce, 1 of 1 MX host pass (mx.example.test)", run.Stdout);
        Assert.Contains($"Info: Successfully fetched MTA-STS TXT record for domain({Domain})", run.Stdout);
        Assert.Contains("TLS success protocol TLSv1.", run.Stdout);
        Assert.Contains("mode enforce, max_age 86400, mx: mx.example.test", run.Stdout);
        Assert.Equal("", run.Stderr);
        // SNI carried the MX name although we connected to 127.0.0.1.
        Assert.Equal(MxName, Assert.Single(mx.Sessions).Sni);
        Assert.Empty(mx.Messages);
    }

    [Fact]
    public async Task Json_report_has_every_step_and_the_same_verdict_as_the_table()
    {
        _bed.Publish().Mx();
        var mx = _bed.Receiver(MxName);
        var table = await RunAsync(_bed.Args("--mx-override", $"127.0.0.1:{mx.Port}"));
        var run = await Json("--mx-override", $"127.0.0.1:{mx.Port}");

        Assert.True(run.Exit == 0, run.ToString());
        using (var doc = JsonDocument.Parse(run.Stdout))
        {
            var root = doc.RootElement;
            Assert.True(root.GetProperty("deliverable").GetBoolean());
            Assert.Equal("valid", root.GetProperty("policyStatus").GetString());
            Assert.Equal("enforce", root.GetProperty("mode").GetString());
            var verdict = root.GetProperty("verdict").GetString()!;
            Assert.StartsWith("deliverable: ", verdict);
            Assert.Contains("Verdict: DELIVERABLE" + verdict["deliverable".Length..], table.Stdout);
            Assert.Equal(JsonValueKind.Null, root.GetProperty("resultType").ValueKind);
        }
        var r = run.Report!;
        Assert.Equal(Domain, r.Domain);
        Assert.Equal("20240101", r.Txt.Id);
        Assert.Equal("ok", r.Txt.Outcome);
        Assert.NotNull(r.Policy);
        Assert.True(r.Policy!.Ok);
        Assert.Equal($"https://mta-sts.{Domain}:{_bed.Https.Port}/.well-known/mta-sts.txt", r.Policy.Url);
        Assert.Equal(new[] { "mx.example.test" }, r.Policy.MxPatterns);
        Assert.NotNull(r.Policy.Certificate);
        Assert.True(r.Policy.Certificate!.Ok, r.Policy.Certificate.Error);
        Assert.Contains("mta-sts.example.test", r.Policy.Certificate.Names);

        var host = Assert.Single(r.Mx.Hosts);
        Assert.Equal(MxName, host.Name);
        Assert.Equal(10, host.Preference);
        Assert.True(host.PolicyMatch);
        Assert.True(host.Passes);
        Assert.Null(host.ResultType);
        var smtp = host.Smtp!;
        Assert.True(smtp.Connected);
        Assert.True(smtp.StartTls);
        Assert.Contains("STARTTLS", smtp.Extensions);
        Assert.StartsWith("220 ", smtp.Greeting);
        Assert.Contains(smtp.TlsProtocol, new[] { "TLSv1.2", "TLSv1.3" });
        Assert.False(string.IsNullOrEmpty(smtp.TlsCipher));
        Assert.True(smtp.Certificate!.Ok);
        Assert.Contains(MxName, smtp.Certificate.Names);
        Assert.Contains(smtp.Transcript, l => l.StartsWith("C: EHLO ", StringComparison.Ordinal));
        Assert.Contains(smtp.Transcript, l => l == "C: STARTTLS");
        Assert.Contains(smtp.Transcript, l => l == "C: QUIT");
        Assert.Empty(r.Problems);
    }

    [Fact]
    public async Task Mx_not_covered_by_the_enforce_policy_is_not_deliverable()
    {
        _bed.Publish().Mx("other.example.test");
        var mx = _bed.Receiver("other.example.test");
        var run = await Json("--mx-override", $"127.0.0.1:{mx.Port}");

        Assert.True(run.Exit == 1, run.ToString());
        var r = run.Report!;
        Assert.False(r.Deliverable);
        Assert.Equal(PolicyStatus.Valid, r.PolicyStatus);
        var host = Assert.Single(r.Mx.Hosts);
        Assert.False(host.PolicyMatch);
        Assert.False(host.Passes);
        Assert.True(host.Smtp!.Certificate!.Ok); // only the coverage fails
        Assert.Contains(r.Problems, p => p.Contains("other.example.test: not covered by the policy", StringComparison.Ordinal));
        Assert.StartsWith("not deliverable: MTA-STS enforce", r.Verdict);
    }

    [Fact]
    public async Task One_passing_mx_is_enough_under_enforce()
    {
        // mx (pref 10) resolves to 127.0.0.1 through our DNS and is reached on --smtp-port; mx2 has no address.
        _bed.Publish("version: STSv1\nmode: enforce\nmx: *.example.test\nmax_age: 86400\n").Mx().Mx("mx2.example.test", 20);
        _bed.Dns.AddA(MxName, "127.0.0.1");
        var mx = _bed.Receiver(MxName);
        var run = await Json("--smtp-port", mx.Port.ToString(System.Globalization.CultureInfo.InvariantCulture));

        Assert.True(run.Exit == 0, run.ToString());
        var r = run.Report!;
        Assert.Equal(new[] { MxName, "mx2.example.test" }, r.Mx.Hosts.Select(h => h.Name));
        Assert.True(r.Mx.Hosts[0].Passes);
        Assert.Equal(new[] { "127.0.0.1" }, r.Mx.Hosts[0].Addresses);
        Assert.False(r.Mx.Hosts[1].Passes);
        Assert.Null(r.Mx.Hosts[1].Smtp);
        Assert.Contains(r.Problems, p => p.StartsWith("mx2.example.test: host mx2.example.test not found", StringComparison.Ordinal));
    }

    [Fact]
    public async Task Mx_without_starttls_under_enforce_is_not_deliverable()
    {
        _bed.Publish().Mx();
        var mx = _bed.Receiver(); // no certificate: STARTTLS not offered
        var run = await Json("--mx-override", $"127.0.0.1:{mx.Port}");

        Assert.True(run.Exit == 1, run.ToString());
        var host = Assert.Single(run.Report!.Mx.Hosts);
        Assert.True(host.Smtp!.Connected);
        Assert.False(host.Smtp.StartTls);
        Assert.Null(host.Smtp.TlsProtocol);
        Assert.Equal("starttls-not-supported", host.ResultType);
        Assert.Contains(run.Report.Problems, p => p == $"{MxName}: STARTTLS not offered");
        Assert.Contains(run.Report.Log, l => l.EndsWith("TLS was required but could not be successfully negotiated", StringComparison.Ordinal));
    }

    [Fact]
    public async Task Mx_certificate_for_another_name_under_enforce_is_not_deliverable()
    {
        _bed.Publish().Mx();
        var mx = _bed.Receiver("wrong.example.net");
        var run = await Json("--mx-override", $"127.0.0.1:{mx.Port}");

        Assert.True(run.Exit == 1, run.ToString());
        var host = Assert.Single(run.Report!.Mx.Hosts);
        Assert.True(host.Smtp!.StartTls);
        Assert.NotNull(host.Smtp.TlsProtocol); // TLS itself worked; the name did not
        Assert.False(host.Smtp.Certificate!.Ok);
        Assert.Equal("peer cert does not match domain", host.Smtp.Certificate.Error);
        Assert.Equal("certificate-host-mismatch", host.ResultType);
        Assert.Contains(run.Report.Log, l => l.Contains("TLS deferring: verify error: peer cert does not match domain", StringComparison.Ordinal));
    }

    [Fact]
    public async Task Mx_certificate_from_an_untrusted_ca_is_reported_as_not_trusted()
    {
        _bed.Publish().Mx();
        var mx = _bed.Receiver(MxName);
        // Without --ca-bundle nothing chains to a trusted root: neither the policy host nor the MX.
        var run = await RunAsync(Domain, "--dns", $"127.0.0.1:{_bed.Dns.Port}", "--policy-port", _bed.Https.Port.ToString(System.Globalization.CultureInfo.InvariantCulture),
            "--timeout", "5", "--mx-override", $"127.0.0.1:{mx.Port}", "--json");

        Assert.True(run.Exit == 1, run.ToString());
        Assert.Equal("sts-webpki-invalid", run.Report!.ResultType);
        Assert.Equal("certificate-not-trusted", Assert.Single(run.Report.Mx.Hosts).ResultType);
    }

    // ------------------------------------------------------------------ testing mode

    [Fact]
    public async Task Testing_mode_with_a_bad_mx_is_deliverable_and_reports_the_failure()
    {
        _bed.Publish(TestingPolicy).Mx();
        var mx = _bed.Receiver(); // no STARTTLS
        var run = await RunAsync(_bed.Args("--mx-override", $"127.0.0.1:{mx.Port}"));
        Assert.True(run.Exit == 0, run.ToString());
        Assert.Contains("Problems (testing mode: reported, not enforced):", run.Stdout);
        Assert.Contains($"{MxName}: STARTTLS not offered", run.Stdout);

        var json = await Json("--mx-override", $"127.0.0.1:{mx.Port}");
        Assert.Equal(0, json.Exit);
        var r = json.Report!;
        Assert.True(r.Deliverable);
        Assert.Equal("testing", r.Mode);
        Assert.False(Assert.Single(r.Mx.Hosts).Passes);
        Assert.Equal("starttls-not-supported", r.Mx.Hosts[0].ResultType);
        Assert.NotEmpty(r.Problems);
        Assert.Contains("1 failure reported only", r.Verdict);
        // Testing: the probe does not log the delivery-time "required" lines.
        Assert.DoesNotContain(r.Log, l => l.Contains("TLS was required", StringComparison.Ordinal));
    }

    // ------------------------------------------------------------------ policy failures

    [Fact]
    public async Task Policy_host_certificate_for_another_name_is_sts_webpki_invalid()
    {
        _bed.Publish(cert: HostCertificate.WrongName).Mx();
        var mx = _bed.Receiver(MxName);
        var run = await Json("--mx-override", $"127.0.0.1:{mx.Port}");

        Assert.True(run.Exit == 1, run.ToString());
        var r = run.Report!;
        Assert.Equal(PolicyStatus.FetchFailed, r.PolicyStatus);
        Assert.Equal("sts-webpki-invalid", r.ResultType);
        Assert.Equal("sts-webpki-invalid", r.Policy!.ResultType);
        Assert.Equal("Certificate", r.Policy.Failure);
        Assert.False(r.Policy.Certificate!.Ok);
        Assert.Equal("peer cert does not match domain", r.Policy.Certificate.Error);
        Assert.Contains("wrong-name.example.invalid", r.Policy.Certificate.Names);
        Assert.Contains("not deliverable (temporary failure)", r.Verdict);
        Assert.Contains(r.Log, l => l == $"Info: Failure encountered while fetching MTA-STS policy for the domain({Domain})");
    }

    [Fact]
    public async Task Policy_redirect_is_sts_policy_fetch_error()
    {
        _bed.Publish(route: PolicyRoute.Redirect("https://elsewhere.example.test/.well-known/mta-sts.txt")).Mx();
        var mx = _bed.Receiver(MxName);
        var run = await Json("--mx-override", $"127.0.0.1:{mx.Port}");

        Assert.True(run.Exit == 1, run.ToString());
        var r = run.Report!;
        Assert.Equal(PolicyStatus.FetchFailed, r.PolicyStatus);
        Assert.Equal("sts-policy-fetch-error", r.ResultType);
        Assert.Equal("Redirect", r.Policy!.Failure);
        Assert.Contains("not followed", r.Policy.Error);
        // The MX is still probed (informational).
        Assert.True(Assert.Single(r.Mx.Hosts).Smtp!.Connected);
    }

    [Fact]
    public async Task Wrong_content_type_is_sts_policy_invalid_unless_lenient()
    {
        _bed.Publish(route: PolicyRoute.Policy(EnforcePolicy, "text/html")).Mx();
        var mx = _bed.Receiver(MxName);
        var strict = await Json("--mx-override", $"127.0.0.1:{mx.Port}");
        Assert.True(strict.Exit == 1, strict.ToString());
        Assert.Equal("sts-policy-invalid", strict.Report!.ResultType);

        var lenient = await Json("--mx-override", $"127.0.0.1:{mx.Port}", "--lenient-content-type");
        Assert.True(lenient.Exit == 0, lenient.ToString());
        Assert.Equal(PolicyStatus.Valid, lenient.Report!.PolicyStatus);
    }

    [Fact]
    public async Task Hung_proxy_times_out_with_the_vendor_log_line()
    {
        _bed.Publish().Mx();
        var mx = _bed.Receiver(MxName);
        await using var proxy = new HangingProxy();
        var args = _bed.Args("--mx-override", $"127.0.0.1:{mx.Port}", "--proxy", proxy.Uri.ToString());
        args[Array.IndexOf(args, "--timeout") + 1] = "1.5";
        var run = await RunAsync(args);

        Assert.True(run.Exit == 1, run.ToString());
        Assert.True(run.Elapsed < TimeSpan.FromSeconds(15), $"took {run.Elapsed}");
        Assert.True(proxy.Accepted >= 1);
        Assert.Equal(0, _bed.Https.Requests(Domain));
        Assert.True(run.Stdout.Contains($"Debug: Request to fetch STS policy failed due to a connection timeout., for the domain {Domain}"), run.Stdout);
        Assert.Contains("Debug: Requesting MTA-STS policy fetch via proxy", run.Stdout);
        Assert.Contains("sts-policy-fetch-error", run.Stdout);
        Assert.Contains("Verdict: NOT DELIVERABLE", run.Stdout);

        var json = await RunAsync([.. args, "--json"]);
        Assert.Equal(1, json.Exit);
        Assert.Equal("ConnectTimeout", json.Report!.Policy!.Failure);
        Assert.Equal(proxy.Uri.GetLeftPart(UriPartial.Authority), json.Report.Policy.Proxy);
        Assert.Null(json.Report.Policy.Certificate); // not probed around the proxy
        Assert.Contains("proxy", json.Report.Policy.Error);
    }

    [TinyproxyFact]
    public async Task Policy_fetched_through_tinyproxy_is_deliverable()
    {
        _bed.Publish().Mx();
        var mx = _bed.Receiver(MxName);
        await using var proxy = await TinyproxyInstance.StartAsync(new Dictionary<string, IPAddress> { ["mta-sts." + Domain] = IPAddress.Loopback });
        var run = await Json("--mx-override", $"127.0.0.1:{mx.Port}", "--proxy", proxy.Uri.ToString());

        Assert.True(run.Exit == 0, run.ToString() + proxy.Output);
        Assert.True(run.Report!.Policy!.Ok);
        Assert.Equal(1, _bed.Https.Requests(Domain));
        Assert.Contains(run.Report.Log, l => l == "Debug: Requesting MTA-STS policy fetch via proxy");
    }

    [Fact]
    public async Task Txt_servfail_is_a_temporary_failure_not_no_policy()
    {
        _bed.Publish().Mx();
        _bed.Dns.SetFault("_mta-sts." + Domain, DnsFault.ServFail);
        var mx = _bed.Receiver(MxName);
        var run = await Json("--mx-override", $"127.0.0.1:{mx.Port}");

        Assert.True(run.Exit == 1, run.ToString());
        var r = run.Report!;
        Assert.Equal(PolicyStatus.TxtTempFail, r.PolicyStatus);
        Assert.Equal("tempfail", r.Txt.Outcome);
        Assert.Contains("SERVFAIL", r.Txt.Error);
        Assert.Equal("sts-policy-fetch-error", r.ResultType);
        Assert.Null(r.Policy);
        Assert.Equal(0, _bed.Https.Requests(Domain));
    }

    // ------------------------------------------------------------------ no policy

    [Fact]
    public async Task Missing_txt_means_no_policy_and_deliverable_when_an_mx_answers()
    {
        _bed.Mx();
        var mx = _bed.Receiver(); // plain SMTP is fine without a policy
        var run = await Json("--mx-override", $"127.0.0.1:{mx.Port}");

        Assert.True(run.Exit == 0, run.ToString());
        var r = run.Report!;
        Assert.Equal(PolicyStatus.Absent, r.PolicyStatus);
        Assert.Equal("nxdomain", r.Txt.Outcome);
        Assert.Null(r.Policy);
        Assert.Null(r.Mode);
        Assert.Contains("no MTA-STS policy", r.Verdict);
        Assert.Null(Assert.Single(r.Mx.Hosts).PolicyMatch);
        Assert.Empty(r.Problems);
        Assert.Contains(r.Warnings, w => w.Contains("STARTTLS not offered", StringComparison.Ordinal));
        Assert.Equal(0, _bed.Https.TotalRequests);

        var table = await RunAsync(_bed.Args("--mx-override", $"127.0.0.1:{mx.Port}"));
        Assert.Contains("no MTA-STS policy (not fetched)", table.Stdout);
    }

    [Fact]
    public async Task Missing_txt_and_no_mx_answering_is_not_deliverable()
    {
        _bed.Mx();
        var run = await Json("--mx-override", HangingProxy.RefusingUri().Authority);

        Assert.True(run.Exit == 1, run.ToString());
        var host = Assert.Single(run.Report!.Mx.Hosts);
        Assert.False(host.Smtp!.Connected);
        Assert.Contains("connection refused", host.Smtp.Error);
        Assert.Contains("no MX host answers", run.Report.Verdict);
    }

    [Fact]
    public async Task Txt_record_that_is_not_stsv1_counts_as_no_policy()
    {
        _bed.Dns.AddTxt("_mta-sts." + Domain, "v=spf1 -all");
        _bed.Mx();
        var mx = _bed.Receiver(MxName);
        var run = await Json("--mx-override", $"127.0.0.1:{mx.Port}");

        Assert.True(run.Exit == 0, run.ToString());
        Assert.Equal(PolicyStatus.Absent, run.Report!.PolicyStatus);
        Assert.Contains("treated as no policy", run.Report.Txt.Error);
        Assert.Equal(new[] { "v=spf1 -all" }, run.Report.Txt.Records);
    }

    [Fact]
    public async Task Null_mx_is_not_deliverable()
    {
        _bed.Mx(".", 0);
        var run = await Json();
        Assert.True(run.Exit == 1, run.ToString());
        Assert.Equal("null-mx", run.Report!.Mx.Outcome);
        Assert.Empty(run.Report.Mx.Hosts);
    }

    // ------------------------------------------------------------------ usage

    [Theory]
    [InlineData("")]
    [InlineData("example.test example.org")]
    [InlineData("example.test --bogus")]
    [InlineData("example.test --smtp-port 0")]
    [InlineData("example.test --policy-port http")]
    [InlineData("example.test --timeout soon")]
    [InlineData("example.test --timeout -1")]
    [InlineData("example.test --proxy not-a-url")]
    [InlineData("example.test --proxy")]
    [InlineData("example.test --ca-bundle /nonexistent/ca.pem")]
    [InlineData("example.test --mx-override 127.0.0.1")]
    [InlineData("example.test --dns 127.0.0.1:99999")]
    [InlineData("example.test --json=yes")]
    [InlineData("user@example.test")]
    [InlineData("localhost")]
    public async Task Usage_errors_exit_2_with_a_message_on_stderr(string commandLine)
    {
        var run = await RunAsync(commandLine.Split(' ', StringSplitOptions.RemoveEmptyEntries));
        Assert.Equal(2, run.Exit);
        Assert.Equal("", run.Stdout);
        Assert.StartsWith("mtasts-gateway check: ", run.Stderr);
    }

    [Fact]
    public async Task Help_prints_the_options_and_exits_0()
    {
        var run = await RunAsync("--help");
        Assert.Equal(0, run.Exit);
        foreach (var option in new[] { "--proxy", "--json", "--dns", "--ca-bundle", "--policy-port", "--smtp-port", "--mx-override", "--timeout", "--lenient-content-type" })
            Assert.Contains(option, run.Stdout);
    }

    [Fact]
    public void Options_accept_equals_form_and_normalize_the_domain()
    {
        var (o, json) = CheckCommand.Parse(["Example.TEST.", "--smtp-port=2525", "--dns=[::1]:5353", "--mx-override", "127.0.0.1:25", "--json"]);
        Assert.True(json);
        Assert.Equal("example.test", o.Domain);
        Assert.Equal(2525, o.SmtpPort);
        Assert.Equal(new IPEndPoint(IPAddress.IPv6Loopback, 5353), o.DnsServer);
        Assert.Equal(new IPEndPoint(IPAddress.Loopback, 25), o.MxOverride);
        Assert.Equal(TimeSpan.FromSeconds(30), o.Timeout);
    }
}
