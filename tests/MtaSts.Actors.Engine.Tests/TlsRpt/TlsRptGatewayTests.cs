using System.Text;
using System.Text.Json;
using MimeKit;
using MtaSts.Actors.Engine.Hosting;
using MtaSts.Actors.Engine.Tests.EndToEnd;
using MtaSts.Actors.Engine.Tests.Security;
using MtaSts.Actors.TestInfra.Http;
using MtaSts.Actors.TestInfra.Smtp;
using MtaSts.Actors.TlsRpt;
using Xunit.Abstractions;

namespace MtaSts.Actors.Engine.Tests.TlsRpt;

/// <summary>
/// TLS-RPT end to end: a real gateway delivers to loopback receivers under MTA-STS policies served by a Kestrel HTTPS
/// host (test CA), records each session, then sends the reports on demand: mailto reports through its own queue to a
/// receiving SMTP server, https reports as POSTs to a loopback collector. The decoded reports must count exactly the
/// sessions the test caused. Failing destinations retry only after an hour, so each made exactly one session.
/// </summary>
public sealed class TlsRptGatewayTests(ITestOutputHelper output) : IAsyncLifetime
{
    private static readonly TimeSpan Wait = TimeSpan.FromSeconds(40);
    private readonly SecurityLab _lab = new();
    private PolicyHttpsServer _policies = null!;
    private ReportHttpsServer _collector = null!;
    private GatewayFixture _gw = null!;
    private readonly Dictionary<string, TestSmtpReceiver> _rx = new();
    private TestSmtpReceiver _reports = null!;

    // name, policy served ("enforce"/"testing"/"500"/"garbage"/"" = no MTA-STS), receiver certificate, rua
    private static readonly (string Name, string Policy, ReceiverKind Kind, string Rua)[] Domains =
    [
        ("ok", "enforce", ReceiverKind.Hosted, "mailto:tlsrpt@reports.rpt.test,https://collector.rpt.test:{port}/ok"),
        ("enfbad", "enforce", ReceiverKind.WrongName, "mailto:tlsrpt@reports.rpt.test"),
        ("tstbad", "testing", ReceiverKind.Expired, "mailto:tlsrpt@reports.rpt.test"),
        ("fetch", "500", ReceiverKind.Valid, "https://collector.rpt.test:{port}/fetch"),
        ("invalid", "garbage", ReceiverKind.Valid, "mailto:tlsrpt@reports.rpt.test"),
        ("nosts", "", ReceiverKind.Valid, "mailto:tlsrpt@reports.rpt.test"),
        ("norua", "enforce", ReceiverKind.Hosted, ""),
    ];

    private static string D(string name) => name + ".rpt.test";

    public async Task InitializeAsync()
    {
        _policies = await PolicyHttpsServer.StartAsync(_lab.Ca);
        _collector = await ReportHttpsServer.StartAsync(_lab.Ca);
        _collector.FailFirst("/fetch", 1); // the first POST of fetch.rpt.test's report gets 503: retried
        _lab.Dns.AddA("collector.rpt.test", "127.0.0.1");
        var overrides = new StringBuilder();
        var hocon = new StringBuilder(_lab.TrustHocon).Append('\n');
        foreach (var (name, policy, kind, rua) in Domains)
        {
            var d = D(name);
            var mx = "mx." + d;
            var rx = _lab.Receiver(kind, mx, d);
            _rx[name] = rx;
            overrides.Append($"\"{d}\" = \"{mx}:{rx.Port}\"\n");
            hocon.Append($"mtasts.destinations.\"{d}\" {{ tls-support = preferred\nmta-sts = on }}\n");
            if (policy.Length > 0)
            {
                _lab.Dns.AddTxt("_mta-sts." + d, "v=STSv1; id=20240101T000000;");
                _lab.Dns.AddA("mta-sts." + d, "127.0.0.1");
                _policies.Serve(d, policy switch
                {
                    "500" => PolicyRoute.Status(500),
                    "garbage" => PolicyRoute.Policy("this is not a policy\n"),
                    _ => PolicyRoute.Policy($"version: STSv1\nmode: {policy}\nmx: {mx}\nmax_age: 86400\n"),
                });
            }
            if (rua.Length > 0) _lab.Dns.AddTxt("_smtp._tls." + d, $"v=TLSRPTv1; rua={rua.Replace("{port}", _collector.Port.ToString())}");
        }
        _reports = _lab.Receiver(ReceiverKind.NoStartTls, "mx.reports.rpt.test");
        overrides.Append($"\"reports.rpt.test\" = \"mx.reports.rpt.test:{_reports.Port}\"\n");
        hocon.Append("""
            mtasts.bounce-profiles.default { initial-retry-interval = 1h
              max-retry-interval = 1h }
            mtasts.tls-rpt {
              enabled = true
              organization-name = "MtaSts.Actors test"
              contact-info = "mailto:postmaster@gw.test.invalid"
              submitter = "gw.test.invalid"
              flush-interval = 200ms
              retry-interval = 300ms
              max-attempts = 3
            }
            """);
        _gw = await GatewayFixture.StartAsync(overrides.ToString(), hocon.ToString(), null,
            new GatewayOverrides { Dns = _lab.Resolver(), PolicyHttpsPort = _policies.Port });
    }

    public async Task DisposeAsync()
    {
        await _gw.DisposeAsync();
        await _collector.DisposeAsync();
        await _policies.DisposeAsync();
        await _lab.DisposeAsync();
    }

    [Fact]
    public async Task Reports_count_the_sessions_the_test_made_happen()
    {
        await Task.WhenAll(Domains.Select(d => _gw.SendAsync("app@sender.test", [$"user@{D(d.Name)}"], d.Name)));
        foreach (var name in new[] { "ok", "tstbad", "fetch", "invalid", "nosts", "norua" })
            await _gw.ReceivedAsync(_rx[name], 1, Wait);
        await _gw.WaitForConnectionLineAsync(_rx["enfbad"].Port, l => l.Contains("TLS deferring: verify error"), Wait);
        await Task.Delay(300); // the deferral's outcome reaches the destination; no retry for an hour

        var today = DateOnly.FromDateTime(DateTime.UtcNow);
        var run = await _gw.Gateway.TlsRpt!.SendReportsAsync(today);
        output.WriteLine(string.Join("\n", run.Domains.Select(d => $"{d.Domain}: {d.Outcome} {d.ReportId} ok=[{string.Join(",", d.Delivered)}] failed=[{string.Join(",", d.Failed)}]")));
        Assert.Equal("no-record", run.Domains.Single(d => d.Domain == D("norua")).Outcome);
        Assert.All(run.Domains.Where(d => d.Domain != D("norua")), d => Assert.Equal("sent", d.Outcome));
        Assert.Equal(6, run.Domains.Count(d => d.Outcome == "sent"));

        // mailto: five reports through the gateway's own queue, null reverse-path, RFC 8460 §5.3 format.
        var mails = await _gw.ReceivedAsync(_reports, 5, Wait);
        var byDomain = new Dictionary<string, JsonElement>();
        foreach (var m in mails)
        {
            Assert.Equal("", m.MailFrom);
            var msg = MimeMessage.Load(new MemoryStream(m.Data));
            var domain = msg.Headers["TLS-Report-Domain"]!;
            Assert.Equal("gw.test.invalid", msg.Headers["TLS-Report-Submitter"]);
            Assert.Matches($@"^Report Domain: {domain} Submitter: gw\.test\.invalid Report-ID: <[^>]+>$", msg.Subject);
            var multipart = Assert.IsType<MultipartReport>(msg.Body);
            Assert.Equal("tlsrpt", multipart.ReportType);
            var part = msg.Attachments.OfType<MimePart>().Single();
            Assert.Equal("application/tlsrpt+gzip", part.ContentType.MimeType);
            Assert.Matches($@"^gw\.test\.invalid!{domain.Replace(".", "\\.")}!\d+!\d+![A-Za-z0-9._-]+\.json\.gz$", part.FileName);
            using var gz = new MemoryStream();
            part.Content!.DecodeTo(gz);
            var json = TlsRptReport.Decode(gz.ToArray()).RootElement.Clone();
            byDomain[domain] = json;
            if (domain == D("tstbad")) output.WriteLine(string.Join("\n", msg.Headers.Select(h => $"{h.Field}: {h.Value}")) + "\n" + part.ContentType + "; " + part.ContentDisposition);
            if (domain == D("tstbad")) output.WriteLine(JsonSerializer.Serialize(json, new JsonSerializerOptions { WriteIndented = true }));
        }
        Assert.Equal(new[] { "enfbad", "invalid", "nosts", "ok", "tstbad" }.Select(D).Order(), byDomain.Keys.Order());

        // https: ok.rpt.test once, fetch.rpt.test after one 503 (bounded retry).
        var posts = await _collector.WaitForPostsAsync(p => p.Status == 200, 2, Wait);
        Assert.All(posts, p => Assert.Equal("application/tlsrpt+gzip", p.ContentType));
        Assert.Equal(2, _collector.Posts.Count(p => p.Path == "/fetch"));
        var fetchJson = TlsRptReport.Decode(posts.Single(p => p.Path == "/fetch").Body).RootElement;
        var okJson = TlsRptReport.Decode(posts.Single(p => p.Path == "/ok").Body).RootElement;
        Assert.Equal(byDomain[D("ok")].GetProperty("policies").ToString(), okJson.GetProperty("policies").ToString());

        // The counts.
        var ok = Single(byDomain[D("ok")], "sts");
        Assert.Equal((1, 0), Summary(ok));
        Assert.Contains("mode: enforce", ok.GetProperty("policy").GetProperty("policy-string").EnumerateArray().Select(e => e.GetString()));
        Assert.Equal("mx.ok.rpt.test", ok.GetProperty("policy").GetProperty("mx-host")[0].GetString());

        var enfbad = Single(byDomain[D("enfbad")], "sts");
        Assert.Equal(_rx["enfbad"].TotalSessions, Summary(enfbad).Failed);
        Assert.Equal((0, 1), Summary(enfbad));
        AssertFailure(enfbad, "certificate-host-mismatch", "mx.enfbad.rpt.test", 1);

        var tstbad = Single(byDomain[D("tstbad")], "sts");
        Assert.Equal((0, 1), Summary(tstbad));
        Assert.Contains("mode: testing", tstbad.GetProperty("policy").GetProperty("policy-string").EnumerateArray().Select(e => e.GetString()));
        AssertFailure(tstbad, "certificate-expired", "mx.tstbad.rpt.test", 1);

        var fetch = Single(fetchJson, "no-policy-found");
        Assert.Equal((0, 1), Summary(fetch));
        AssertFailure(fetch, "sts-policy-fetch-error", "mx.fetch.rpt.test", 1);

        var invalid = Single(byDomain[D("invalid")], "no-policy-found");
        AssertFailure(invalid, "sts-policy-invalid", "mx.invalid.rpt.test", 1);

        Assert.Equal((1, 0), Summary(Single(byDomain[D("nosts")], "no-policy-found")));

        // Report metadata.
        var r = byDomain[D("ok")];
        Assert.Equal("MtaSts.Actors test", r.GetProperty("organization-name").GetString());
        Assert.Equal("mailto:postmaster@gw.test.invalid", r.GetProperty("contact-info").GetString());
        Assert.Equal($"{today:yyyy-MM-dd}T00:00:00Z", r.GetProperty("date-range").GetProperty("start-datetime").GetString());
        Assert.NotEqual(r.GetProperty("report-id").GetString(), okJson.GetProperty("report-id").GetString() + "x");
        Assert.Equal(byDomain.Count, byDomain.Values.Select(v => v.GetProperty("report-id").GetString()).Distinct().Count());
    }

    private static JsonElement Single(JsonElement report, string type)
    {
        var policies = report.GetProperty("policies").EnumerateArray().ToArray();
        return Assert.Single(policies, p => p.GetProperty("policy").GetProperty("policy-type").GetString() == type);
    }

    private static (long Ok, long Failed) Summary(JsonElement policy) =>
        (policy.GetProperty("summary").GetProperty("total-successful-session-count").GetInt64(),
         policy.GetProperty("summary").GetProperty("total-failure-session-count").GetInt64());

    private static void AssertFailure(JsonElement policy, string type, string mx, long count)
    {
        var f = Assert.Single(policy.GetProperty("failure-details").EnumerateArray());
        Assert.Equal(type, f.GetProperty("result-type").GetString());
        Assert.Equal(mx, f.GetProperty("receiving-mx-hostname").GetString());
        Assert.Equal("127.0.0.1", f.GetProperty("receiving-ip").GetString());
        Assert.Equal("127.0.0.1", f.GetProperty("sending-mta-ip").GetString());
        Assert.Equal(count, f.GetProperty("failed-session-count").GetInt64());
    }
}
