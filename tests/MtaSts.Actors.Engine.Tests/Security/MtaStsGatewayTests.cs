using System.Text;
using MtaSts.Actors.Engine.Hosting;
using MtaSts.Actors.Engine.Tests.EndToEnd;
using MtaSts.Actors.TestInfra.Http;
using MtaSts.Actors.TestInfra.Smtp;

namespace MtaSts.Actors.Engine.Tests.Security;

/// <summary>One MTA-STS scenario: what the domain publishes, what its MX presents, and the profile's TLS mode.</summary>
/// <param name="Policy">Policy mode served (enforce/testing/none), or "404" for a policy host that has none.</param>
/// <param name="MxListed">Whether the policy's mx: pattern covers the MX host.</param>
public sealed record StsCase(string Name, string Policy, bool MxListed, ReceiverKind Kind, string Tls = "preferred", bool MtaSts = true)
{
    public string Domain => Name + ".sts.test";
    public string Mx => "mx." + Domain;
}

/// <summary>
/// A real gateway with MTA-STS enabled per destination; TXT records and policy hosts are real (TestDnsServer and a
/// Kestrel HTTPS server with test-CA certificates, chosen by SNI); every domain has its own MX host and receiver.
/// </summary>
public sealed class MtaStsFixture : IAsyncLifetime
{
    public static readonly StsCase[] Cases =
    [
        new("enf-ok", "enforce", true, ReceiverKind.Hosted),
        new("enf-wild", "enforce", true, ReceiverKind.Hosted),               // mx: *.<domain>
        new("enf-unlisted", "enforce", false, ReceiverKind.Valid),
        new("enf-wrongname", "enforce", true, ReceiverKind.WrongName),
        new("enf-expired", "enforce", true, ReceiverKind.Expired),
        new("enf-selfsigned", "enforce", true, ReceiverKind.SelfSigned),
        new("enf-nostarttls", "enforce", true, ReceiverKind.NoStartTls, Tls: "none"),
        new("enf-nostarttls-pref", "enforce", true, ReceiverKind.NoStartTls),
        new("tst-wrongname", "testing", true, ReceiverKind.WrongName),
        new("tst-unlisted", "testing", false, ReceiverKind.Valid),
        new("tst-nostarttls", "testing", true, ReceiverKind.NoStartTls),
        new("none-wrongname", "none", false, ReceiverKind.WrongName),
        new("nofetch", "404", true, ReceiverKind.WrongName),
        new("off", "enforce", false, ReceiverKind.WrongName, MtaSts: false),
    ];

    public SecurityLab Lab { get; } = new();
    public PolicyHttpsServer Policies { get; private set; } = null!;
    public GatewayFixture Gateway { get; private set; } = null!;
    public Dictionary<string, TestSmtpReceiver> Receivers { get; } = new();
    public TestSmtpReceiver Shared { get; private set; } = null!;
    public TestSmtpReceiver Relay { get; private set; } = null!;

    public async Task InitializeAsync()
    {
        Policies = await PolicyHttpsServer.StartAsync(Lab.Ca);
        var overrides = new StringBuilder();
        var hocon = new StringBuilder(Lab.TrustHocon).Append("\nmtasts.log.level = debug\n");
        foreach (var c in Cases)
        {
            var rx = Lab.Receiver(c.Kind, c.Mx, c.Domain);
            Receivers[c.Name] = rx;
            overrides.Append($"\"{c.Domain}\" = \"{c.Mx}:{rx.Port}\"\n");
            hocon.Append($"mtasts.destinations.\"{c.Domain}\" {{ tls-support = {c.Tls}\nmta-sts = {(c.MtaSts ? "on" : "off")} }}\n");
            var mxPattern = c.Name == "enf-wild" ? "*." + c.Domain : c.MxListed ? c.Mx : "mx.elsewhere.test";
            Publish(c.Domain, c.Policy, mxPattern);
        }

        // Two domains hosted on one provider MX (certificate names only the MX host); only a's policy lists it.
        Shared = Lab.Receiver(ReceiverKind.Hosted, "mx1.provider.test");
        foreach (var (d, listed) in new[] { ("a.shared.test", true), ("b.shared.test", false) })
        {
            overrides.Append($"\"{d}\" = \"mx1.provider.test:{Shared.Port}\"\n");
            hocon.Append($"mtasts.destinations.\"{d}\".mta-sts = on\n");
            Publish(d, "enforce", listed ? "mx1.provider.test" : "mx9.provider.test");
        }

        // SMTP route: the domain's enforce policy does not list the relay, and the relay presents no STARTTLS.
        Relay = Lab.Receiver(ReceiverKind.NoStartTls, "relay.route.test");
        hocon.Append($"mtasts.destinations.\"routed.sts.test\" {{ mta-sts = on\nsmtp-route = [\"relay.route.test:{Relay.Port}\"] }}\n");
        Publish("routed.sts.test", "enforce", "mx.routed.sts.test");

        Gateway = await GatewayFixture.StartAsync(overrides.ToString(), hocon.ToString(), null,
            new GatewayOverrides { Dns = Lab.Resolver(), PolicyHttpsPort = Policies.Port });
        var sends = Cases.Select(c => Gateway.SendAsync("app@sender.test", [$"user@{c.Domain}"], c.Name)).ToList();
        sends.Add(Gateway.SendAsync("app@sender.test", ["one@a.shared.test", "two@b.shared.test"], "shared"));
        sends.Add(Gateway.SendAsync("app@sender.test", ["user@routed.sts.test"], "routed"));
        await Task.WhenAll(sends);
    }

    private void Publish(string domain, string mode, string mxPattern)
    {
        Lab.Dns.AddTxt("_mta-sts." + domain, "v=STSv1; id=20240101T000000;");
        Lab.Dns.AddA("mta-sts." + domain, "127.0.0.1");
        if (mode == "404") Policies.Serve(domain, PolicyRoute.Status(404));
        else Policies.ServePolicy(domain, $"version: STSv1\nmode: {mode}\nmx: {mxPattern}\nmax_age: 86400\n");
    }

    public async Task DisposeAsync()
    {
        await Gateway.DisposeAsync();
        await Policies.DisposeAsync();
        await Lab.DisposeAsync();
    }
}

public sealed class MtaStsGatewayTests(MtaStsFixture f) : IClassFixture<MtaStsFixture>
{
    private static readonly TimeSpan Wait = TimeSpan.FromSeconds(30);
    private const string Required = "TLS was required but could not be successfully negotiated";

    public enum Outcome { Plain, Tls, Deferred, NeverConnected }

    public static TheoryData<string, Outcome, string?> Rows() => new()
    {
        // enforce: an MX listed by the policy with a certificate valid for the MX host name (hosted-style is enough).
        { "enf-ok", Outcome.Tls, null },
        { "enf-wild", Outcome.Tls, null },
        // enforce: an MX the policy does not list is never contacted (RFC 8461 §5.1), the mail waits.
        { "enf-unlisted", Outcome.NeverConnected, "not listed in the enforce policy" },
        // enforce: certificate problems defer with the guide's lines, never fall back to clear text.
        { "enf-wrongname", Outcome.Deferred, "TLS deferring: verify error: peer cert does not match domain" },
        { "enf-expired", Outcome.Deferred, "TLS deferring: verify error: certificate has expired" },
        { "enf-selfsigned", Outcome.Deferred, "TLS deferring: verify error: " },
        // enforce without STARTTLS: deferred even when the profile says TLS none or preferred.
        { "enf-nostarttls", Outcome.Deferred, Required },
        { "enf-nostarttls-pref", Outcome.Deferred, Required },
        // testing: delivered as the profile allows; the failure is reported.
        { "tst-wrongname", Outcome.Tls, "TLS verify error (not enforced, MtaSts): peer cert does not match domain" },
        { "tst-unlisted", Outcome.Tls, null },
        { "tst-nostarttls", Outcome.Plain, null },
        // mode none, a failed fetch (RFC 8461 §3.3: as if no policy), or MTA-STS off: the profile alone decides.
        { "none-wrongname", Outcome.Tls, null },
        { "nofetch", Outcome.Tls, null },
        { "off", Outcome.Tls, null },
    };

    [Theory]
    [MemberData(nameof(Rows))]
    public async Task Policy_mode_mx_and_certificate_decide_the_outcome(string name, Outcome expected, string? line)
    {
        try { await CheckOutcomeAsync(name, expected, line); }
        catch
        {
            if (Environment.GetEnvironmentVariable("MTASTS_DUMP_DIR") is { } dump)
                File.WriteAllLines(Path.Combine(dump, $"mtasts-{name}.log"), f.Gateway.Lines);
            throw;
        }
    }

    private async Task CheckOutcomeAsync(string name, Outcome expected, string? line)
    {
        var c = MtaStsFixture.Cases.Single(x => x.Name == name);
        var rx = f.Receivers[name];
        var gw = f.Gateway;
        var applying = $"Applying MTA-STS policy for the domain ({c.Domain})";
        var successful = $"MTA-STS policy for the domain ({c.Domain}) Successful.";
        switch (expected)
        {
            case Outcome.Plain or Outcome.Tls:
            {
                var msg = Assert.Single(await gw.ReceivedAsync(rx, 1, Wait));
                Assert.Equal(expected == Outcome.Tls, msg.Tls);
                if (expected == Outcome.Tls)
                    await gw.WaitForConnectionLineAsync(rx.Port, l => l.Contains(" TLS success protocol TLSv1."), Wait);
                if (line is not null) await gw.WaitForConnectionLineAsync(rx.Port, l => l.Contains(line, StringComparison.Ordinal), Wait);
                break;
            }
            case Outcome.Deferred:
            {
                await gw.WaitForConnectionLineAsync(rx.Port, l => l.Contains(line!, StringComparison.Ordinal), Wait);
                await gw.WaitForConnectionLineAsync(rx.Port, l => l.EndsWith(Required, StringComparison.Ordinal), Wait);
                await gw.WaitForLineAsync(l => l.Contains("Delayed: DCID") && l.Contains($"user@{c.Domain}"), Wait);
                Assert.Empty(rx.Messages);
                Assert.True(rx.NoTransactionStarted(), "MTA-STS deferral must never send the message (no MAIL FROM at all)");
                break;
            }
            case Outcome.NeverConnected:
            {
                await gw.WaitForLineAsync(l => l.Contains($"MX {c.Mx} skipped for the domain ({c.Domain})") && l.Contains(line!), Wait);
                await gw.WaitForLineAsync(l => l.Contains("Delayed: DCID") && l.Contains($"user@{c.Domain}"), Wait);
                Assert.Equal(0, rx.TotalSessions);
                break;
            }
        }

        // The guide's MTA-STS lines: applied for enforce/testing, "Successful." only once a session is up.
        var lines = gw.Lines;
        if (c.MtaSts && c.Policy is "enforce" or "testing")
        {
            Assert.Contains(lines, l => l.EndsWith(applying, StringComparison.Ordinal));
            if (expected is Outcome.Tls or Outcome.Plain) Assert.Contains(lines, l => l.EndsWith(successful, StringComparison.Ordinal));
            else Assert.DoesNotContain(lines, l => l.EndsWith(successful, StringComparison.Ordinal));
        }
        else
        {
            Assert.DoesNotContain(lines, l => l.EndsWith(applying, StringComparison.Ordinal));
            Assert.DoesNotContain(lines, l => l.EndsWith(successful, StringComparison.Ordinal));
        }
        if (c.Policy == "404")
            Assert.Contains(lines, l => l.EndsWith($"Failure encountered while fetching MTA-STS policy for the domain({c.Domain})", StringComparison.Ordinal));
        if (!c.MtaSts)
            Assert.Equal(0, f.Policies.Requests(c.Domain)); // MTA-STS off: the policy is not even looked at
        else
            Assert.Contains(lines, l => l.EndsWith($"Successfully fetched MTA-STS TXT record for domain({c.Domain})", StringComparison.Ordinal));
    }

    [Fact]
    public async Task Domains_sharing_an_mx_are_each_judged_by_their_own_policy()
    {
        var gw = f.Gateway;
        var got = await gw.ReceivedAsync(f.Shared, 1, Wait);
        var msg = Assert.Single(got);
        Assert.True(msg.Tls);
        Assert.Equal("one@a.shared.test", Assert.Single(msg.Recipients).Address);
        await gw.WaitForLineAsync(l => l.Contains("MX mx1.provider.test skipped for the domain (b.shared.test)"), Wait);
        await gw.WaitForLineAsync(l => l.Contains("Delayed: DCID") && l.Contains("two@b.shared.test"), Wait);
        Assert.Contains(gw.Lines, l => l.EndsWith("MTA-STS policy for the domain (a.shared.test) Successful.", StringComparison.Ordinal));
        Assert.DoesNotContain(gw.Lines, l => l.EndsWith("MTA-STS policy for the domain (b.shared.test) Successful.", StringComparison.Ordinal));
        await Task.Delay(500);
        Assert.DoesNotContain(f.Shared.Messages.SelectMany(m => m.Recipients), r => r.Address == "two@b.shared.test");
    }

    [Fact]
    public async Task Smtp_route_bypasses_mta_sts_and_says_so()
    {
        var gw = f.Gateway;
        var msg = Assert.Single(await gw.ReceivedAsync(f.Relay, 1, Wait));
        Assert.Equal("user@routed.sts.test", Assert.Single(msg.Recipients).Address);
        Assert.False(msg.Tls); // the route's profile (preferred) decides: the relay offers no STARTTLS
        Assert.Contains(gw.Lines, l => l.Contains("SMTP route for the domain (routed.sts.test): MTA-STS and DANE are not enforced"));
        Assert.DoesNotContain(gw.Lines, l => l.Contains("Applying MTA-STS policy for the domain (routed.sts.test)"));
        Assert.Equal(0, f.Policies.Requests("routed.sts.test"));
    }
}

/// <summary>The policy cache outlives the process (SPEC §3.4): after a restart, with the policy host gone, the cached
/// enforce policy still applies when the TXT id is unchanged.</summary>
public sealed class MtaStsCacheRestartTests
{
    [Fact]
    public async Task Cached_policy_applies_after_a_restart_while_the_policy_host_is_down()
    {
        const string d = "c.cache.test";
        var wait = TimeSpan.FromSeconds(30);
        await using var lab = new SecurityLab();
        await using var policies = await PolicyHttpsServer.StartAsync(lab.Ca);
        var rx = lab.Receiver(ReceiverKind.Hosted, "mx." + d);
        lab.Dns.AddTxt("_mta-sts." + d, "v=STSv1; id=7;");
        lab.Dns.AddA("mta-sts." + d, "127.0.0.1");
        policies.ServePolicy(d, $"version: STSv1\nmode: enforce\nmx: mx.{d}\nmax_age: 86400\n");
        var mxOverride = $"\"{d}\" = \"mx.{d}:{rx.Port}\"";
        var hocon = $"{lab.TrustHocon}\nmtasts.log.level = debug\nmtasts.destinations.\"{d}\".mta-sts = on";
        var overrides = new GatewayOverrides { Dns = lab.Resolver(), PolicyHttpsPort = policies.Port };

        await using var gw = await GatewayFixture.StartAsync(mxOverride, hocon, null, overrides);
        await gw.SendAsync("app@sender.test", [$"first@{d}"], "life 1");
        await gw.ReceivedAsync(rx, 1, wait);
        await gw.WaitForLineAsync(l => l.EndsWith($"MTA-STS policy for the domain ({d}) Successful.", StringComparison.Ordinal), wait);
        Assert.Equal(1, policies.Requests(d));

        await gw.StopAsync();
        policies.Remove(d); // the policy host now answers 404
        var before = gw.Lines.Count;
        await gw.RestartAsync(mxOverride, hocon, overrides);
        await gw.SendAsync("app@sender.test", [$"second@{d}"], "life 2");
        var second = (await gw.ReceivedAsync(rx, 2, wait)).Single(m => m.Recipients.Any(r => r.Address == $"second@{d}"));
        Assert.True(second.Tls);
        await gw.WaitForLineAsync(l => l.EndsWith($"MTA-STS policy for the domain ({d}) Successful.", StringComparison.Ordinal), wait, count: 2);
        var life2 = gw.Lines.Skip(before).ToArray();
        Assert.Contains(life2, l => l.EndsWith($"Valid cache entry found for the domain ({d}).", StringComparison.Ordinal));
        Assert.Contains(life2, l => l.EndsWith($"Applying MTA-STS policy for the domain ({d})", StringComparison.Ordinal));
        Assert.Equal(1, policies.Requests(d)); // not fetched again: the id is unchanged and the cached policy is valid
    }
}
