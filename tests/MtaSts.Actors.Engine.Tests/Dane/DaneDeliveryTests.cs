using MtaSts.Actors.Engine.Hosting;
using MtaSts.Actors.Engine.Tests.EndToEnd;
using MtaSts.Actors.TestInfra.Http;
using MtaSts.Actors.TestInfra.Smtp;

namespace MtaSts.Actors.Engine.Tests.Dane;

/// <summary>
/// DANE for SMTP (RFC 7672, RFC 6698) end to end: a real gateway resolves MX, addresses and TLSA through a real
/// validating resolver (Unbound → NSD, <see cref="DaneWorld"/>) and delivers to loopback receivers on port 25 that
/// present matching or mismatching certificates. SPEC §3: "DANE succeeds → MTA-STS skipped"; "DANE Mandatory fails →
/// not delivered"; an unsigned TLSA answer is not DANE; a bogus answer defers.
/// </summary>
public sealed class DaneDeliveryTests(DaneWorld world) : IClassFixture<DaneWorld>
{
    private static readonly TimeSpan Wait = TimeSpan.FromSeconds(60);

    private Task<GatewayFixture> GatewayAsync(string profiles, string extra = "", int? policyHttpsPort = null, string mxOverride = "") =>
        GatewayFixture.StartAsync(mxOverride, $$"""
            mtasts.dns { servers = ["{{world.Dns.Resolver}}"]
              timeout = 3s
              retries = 1 }
            mtasts.policy.extra-ca-bundle = "{{world.CaBundlePath}}"
            mtasts.destinations {
            {{profiles}}
            }
            {{extra}}
            """, null, new GatewayOverrides { PolicyHttpsPort = policyHttpsPort });

    private static string Profile(string domain, string dane, string tls = "preferred", string mtaSts = "off") =>
        $"\"{domain}\" {{ dane-support = {dane}\ntls-support = {tls}\nmta-sts = {mtaSts} }}";

    private static Task DeferredAsync(GatewayFixture gw, string rcpt) =>
        gw.WaitForLineAsync(l => l.Contains("Delayed: DCID") && l.Contains($"<{rcpt}>"), Wait);

    [Fact]
    public async Task Opportunistic_with_matching_dane_ee_records_delivers_over_tls_and_logs_dane_success()
    {
        // 3 1 1 (SPKI SHA-256), 3 0 1 (full certificate SHA-256), 3 1 2 (SPKI SHA-512).
        string[] cases = ["ee311", "ee301", "ee312"];
        var receivers = cases.Select(c => world.Receiver(c, world.Leaf)).ToArray();
        try
        {
            await using var gw = await GatewayAsync(string.Join("\n", cases.Select(c => Profile(DaneWorld.Domain(c), "opportunistic"))));
            foreach (var c in cases) await gw.SendAsync("app@sender.test", [$"user@{DaneWorld.Domain(c)}"], c);

            for (int i = 0; i < cases.Length; i++)
            {
                var m = Assert.Single(await gw.ReceivedAsync(receivers[i], 1, Wait));
                Assert.True(m.Tls, cases[i]);
                Assert.Equal($"user@{DaneWorld.Domain(cases[i])}", Assert.Single(m.Recipients).Address);
                // SNI = the MX host name (RFC 7672 §8.1).
                Assert.Equal(DaneWorld.Mx(cases[i]), m.Sni);
                await gw.WaitForLineAsync(l => l.Contains($"DANE for the domain ({DaneWorld.Domain(cases[i])}) MX {DaneWorld.Mx(cases[i])} Successful."), Wait);
            }
            Assert.DoesNotContain(gw.Lines, l => l.Contains("MTA-STS policy for the domain"));
        }
        finally
        {
            foreach (var r in receivers) await r.DisposeAsync();
        }
    }

    [Fact]
    public async Task Dane_ta_records_authenticate_a_chain_that_carries_the_trust_anchor()
    {
        // 2 0 1 and 2 1 1 for the issuing CA, sent by the server after its leaf; 2 0 0 for the root (the whole
        // certificate in DNS, so the server's chain need not carry it).
        await using var ta = world.Receiver("ta201", world.ChainLeaf, [world.Intermediate]);
        await using var tai = world.Receiver("tai211", world.ChainLeaf, [world.Intermediate]);
        await using var root = world.Receiver("ta200", world.Leaf);
        await using var gw = await GatewayAsync(string.Join("\n", new[] { "ta201", "tai211", "ta200" }
            .Select(c => Profile(DaneWorld.Domain(c), "mandatory"))));
        await gw.SendAsync("app@sender.test", ["a@ta201.dane.test"], "ta");
        await gw.SendAsync("app@sender.test", ["b@tai211.dane.test"], "tai");
        await gw.SendAsync("app@sender.test", ["c@ta200.dane.test"], "root in dns");

        Assert.True(Assert.Single(await gw.ReceivedAsync(ta, 1, Wait)).Tls);
        Assert.True(Assert.Single(await gw.ReceivedAsync(tai, 1, Wait)).Tls);
        Assert.True(Assert.Single(await gw.ReceivedAsync(root, 1, Wait)).Tls);
        foreach (var c in new[] { "ta201", "tai211", "ta200" })
            await gw.WaitForLineAsync(l => l.Contains($"DANE for the domain ({c}.dane.test) MX mx.{c}.dane.test Successful."), Wait);
    }

    [Fact]
    public async Task Dane_ta_requires_the_leaf_to_name_the_mx_host()
    {
        // RFC 7672 §3.2.2: with DANE-TA the reference identifier is the MX host name (unlike DANE-EE).
        using var wrongName = TestLeafCertificates.Issue(world.Intermediate, ["mx.somewhere-else.test"]);
        await using var mx = world.Receiver("tai211", wrongName, [world.Intermediate]);
        await using var gw = await GatewayAsync(Profile(DaneWorld.Domain("tai211"), "mandatory"));
        await gw.SendAsync("app@sender.test", ["n@tai211.dane.test"], "wrong name");

        await DeferredAsync(gw, "n@tai211.dane.test");
        Assert.Contains(gw.Lines, l => l.Contains("TLS deferring: verify error"));
        Assert.Empty(mx.Messages);
    }

    [Fact]
    public async Task Dane_applies_to_a_named_mx_override_hop()
    {
        // mx-override replaces the MX RRset by configuration: the hop's name still gets its TLSA lookup.
        await using var mx = world.Receiver("ee311", world.Leaf);
        await using var gw = await GatewayAsync(Profile("ovr.test", "mandatory"), mxOverride: "\"ovr.test\" = \"mx.ee311.dane.test\"");
        await gw.SendAsync("app@sender.test", ["o@ovr.test"], "override");

        Assert.True(Assert.Single(await gw.ReceivedAsync(mx, 1, Wait)).Tls);
        await gw.WaitForLineAsync(l => l.Contains("DANE for the domain (ovr.test) MX mx.ee311.dane.test Successful."), Wait);
    }

    [Fact]
    public async Task Dane_ta_digest_of_an_anchor_the_server_does_not_present_defers()
    {
        // RFC 7671 §5.2.2 / RFC 7672 §3.2.2: a "2 0 1" anchor must be in the chain the server presents. The receiver
        // sends leaf + root, but the TLS stack trims the self-signed root, so the leaf alone is presented.
        await using var mx = world.Receiver("tar201", world.Leaf, [world.Ca.Root]);
        await using var gw = await GatewayAsync(Profile(DaneWorld.Domain("tar201"), "opportunistic"));
        await gw.SendAsync("app@sender.test", ["c@tar201.dane.test"], "no anchor");

        await DeferredAsync(gw, "c@tar201.dane.test");
        Assert.Contains(gw.Lines, l => l.Contains("TLS deferring: verify error: DANE"));
        Assert.Empty(mx.Messages);
    }

    [Fact]
    public async Task Opportunistic_with_a_mismatching_certificate_defers_and_never_falls_back_to_plaintext()
    {
        await using var mx = world.Receiver("ee311b", world.OtherLeaf);
        await using var gw = await GatewayAsync(Profile(DaneWorld.Domain("ee311b"), "opportunistic"));
        await gw.SendAsync("app@sender.test", ["u@ee311b.dane.test"], "mismatch");

        await DeferredAsync(gw, "u@ee311b.dane.test");
        Assert.Contains(gw.Lines, l => l.Contains("TLS deferring: verify error: DANE: certificate does not match"));
        Assert.Empty(mx.Messages);
        Assert.True(mx.TotalSessions >= 1);
        Assert.All(mx.Sessions, s => Assert.DoesNotContain(s.Commands, c => c.StartsWith("MAIL", StringComparison.OrdinalIgnoreCase)));
    }

    [Fact]
    public async Task Mandatory_with_a_wrong_digest_defers()
    {
        await using var mx = world.Receiver("wrong", world.Leaf);
        await using var gw = await GatewayAsync(Profile(DaneWorld.Domain("wrong"), "mandatory"));
        await gw.SendAsync("app@sender.test", ["u@wrong.dane.test"], "wrong digest");

        await DeferredAsync(gw, "u@wrong.dane.test");
        Assert.Contains(gw.Lines, l => l.Contains("TLS deferring: verify error: DANE"));
        Assert.Empty(mx.Messages);
    }

    [Fact]
    public async Task Mandatory_without_tlsa_records_is_not_delivered()
    {
        await using var mx = world.Receiver("notlsa", world.Leaf);
        await using var gw = await GatewayAsync(Profile(DaneWorld.Domain("notlsa"), "mandatory"));
        await gw.SendAsync("app@sender.test", ["u@notlsa.dane.test"], "no tlsa");

        await DeferredAsync(gw, "u@notlsa.dane.test");
        Assert.Contains(gw.Lines, l => l.Contains("MX mx.notlsa.dane.test skipped") && l.Contains("DANE mandatory"));
        Assert.Equal(0, mx.TotalSessions);
    }

    [Fact]
    public async Task Opportunistic_without_tlsa_records_uses_the_profile_tls_setting()
    {
        // DNSSEC-validated denial of TLSA: DANE does not apply; profile "preferred" delivers without authentication.
        await using var mx = world.Receiver("notlsa", world.OtherLeaf);
        await using var gw = await GatewayAsync(Profile(DaneWorld.Domain("notlsa"), "opportunistic"));
        await gw.SendAsync("app@sender.test", ["v@notlsa.dane.test"], "no tlsa, opportunistic");

        Assert.True(Assert.Single(await gw.ReceivedAsync(mx, 1, Wait)).Tls);
        Assert.DoesNotContain(gw.Lines, l => l.Contains("DANE for the domain"));
    }

    [Fact]
    public async Task Unsigned_tlsa_records_are_not_dane_opportunistic_applies_the_profile_and_mandatory_defers()
    {
        // insecure.test publishes "3 1 1" for Leaf, but unsigned: the receiver's other certificate is accepted under
        // the profile's unauthenticated TLS, and Mandatory refuses the MX.
        await using var mx = world.Receiver("insecure", world.OtherLeaf);
        await using (var gw = await GatewayAsync(Profile("insecure.test", "opportunistic")))
        {
            await gw.SendAsync("app@sender.test", ["u@insecure.test"], "insecure");
            Assert.True(Assert.Single(await gw.ReceivedAsync(mx, 1, Wait)).Tls);
            Assert.DoesNotContain(gw.Lines, l => l.Contains("DANE for the domain"));
        }
        await using (var gw = await GatewayAsync(Profile("insecure.test", "mandatory")))
        {
            await gw.SendAsync("app@sender.test", ["w@insecure.test"], "insecure mandatory");
            await DeferredAsync(gw, "w@insecure.test");
            Assert.Contains(gw.Lines, l => l.Contains("MX mx.insecure.test skipped") && l.Contains("DANE mandatory"));
            Assert.Single(mx.Messages);
        }
    }

    [Fact]
    public async Task Bogus_tlsa_answer_defers_even_when_opportunistic()
    {
        // The TLSA RRset's signature does not verify: Unbound answers SERVFAIL; never downgrade (RFC 7672 §2.2).
        await using var mx = world.Receiver("bogus", world.Leaf);
        await using var gw = await GatewayAsync(Profile(DaneWorld.Domain("bogus"), "opportunistic"));
        await gw.SendAsync("app@sender.test", ["u@bogus.dane.test"], "bogus");

        await DeferredAsync(gw, "u@bogus.dane.test");
        Assert.Contains(gw.Lines, l => l.Contains("MX mx.bogus.dane.test skipped") && l.Contains("TLSA lookup failed"));
        Assert.Equal(0, mx.TotalSessions);
    }

    [Fact]
    public async Task Bogus_tlsa_skips_only_that_mx_and_the_next_mx_delivers_with_dane()
    {
        await using var bogus = world.Receiver("bogus", world.Leaf);
        await using var good = world.Receiver("ee311", world.Leaf);
        await using var gw = await GatewayAsync(Profile("multi.dane.test", "mandatory"));
        await gw.SendAsync("app@sender.test", ["m@multi.dane.test"], "second mx");

        Assert.True(Assert.Single(await gw.ReceivedAsync(good, 1, Wait)).Tls);
        await gw.WaitForLineAsync(l => l.Contains("DANE for the domain (multi.dane.test) MX mx.ee311.dane.test Successful."), Wait);
        Assert.Contains(gw.Lines, l => l.Contains("MX mx.bogus.dane.test skipped") && l.Contains("TLSA lookup failed"));
        Assert.Equal(0, bogus.TotalSessions);
    }

    [Fact]
    public async Task Only_pkix_usages_are_unusable_opportunistic_requires_starttls_and_mandatory_defers()
    {
        // "1 1 1" and "0 0 1" only (RFC 7672 §3.1.3: unusable for SMTP) → STARTTLS mandatory, unauthenticated.
        await using (var mx = world.Receiver("pkix", world.OtherLeaf))
        await using (var gw = await GatewayAsync(Profile(DaneWorld.Domain("pkix"), "opportunistic", tls: "none")))
        {
            await gw.SendAsync("app@sender.test", ["a@pkix.dane.test"], "pkix tls");
            Assert.True(Assert.Single(await gw.ReceivedAsync(mx, 1, Wait)).Tls, "STARTTLS is mandatory even with tls-support none");
        }
        await using (var plain = world.Receiver("pkix", null))
        await using (var gw = await GatewayAsync(Profile(DaneWorld.Domain("pkix"), "opportunistic")))
        {
            await gw.SendAsync("app@sender.test", ["b@pkix.dane.test"], "pkix plain");
            await DeferredAsync(gw, "b@pkix.dane.test");
            Assert.Contains(gw.Lines, l => l.Contains("TLS was required but could not be successfully negotiated"));
            Assert.Empty(plain.Messages);
        }
        await using (var mx = world.Receiver("pkix", world.Leaf))
        await using (var gw = await GatewayAsync(Profile(DaneWorld.Domain("pkix"), "mandatory")))
        {
            await gw.SendAsync("app@sender.test", ["c@pkix.dane.test"], "pkix mandatory");
            await DeferredAsync(gw, "c@pkix.dane.test");
            Assert.Contains(gw.Lines, l => l.Contains("MX mx.pkix.dane.test skipped") && l.Contains("no usable TLSA"));
            Assert.Equal(0, mx.TotalSessions);
        }
    }

    [Fact]
    public async Task Dane_none_ignores_tlsa_records()
    {
        await using var mx = world.Receiver("wrong", world.Leaf);
        await using var gw = await GatewayAsync(Profile(DaneWorld.Domain("wrong"), "none"));
        await gw.SendAsync("app@sender.test", ["n@wrong.dane.test"], "dane off");
        Assert.True(Assert.Single(await gw.ReceivedAsync(mx, 1, Wait)).Tls);
    }

    [Fact]
    public async Task Dane_success_skips_mta_sts_even_when_the_policy_would_refuse_the_mx()
    {
        // The enforce policy lists another MX only: applied, it would skip mx.sts-good.dane.test. DANE governs it.
        await using var policies = await PolicyHttpsServer.StartAsync(world.Ca);
        policies.ServePolicy("sts-good.dane.test", "version: STSv1\nmode: enforce\nmx: mx.elsewhere.test\nmax_age: 86400\n");
        await using var mx = world.Receiver("sts-good", world.Leaf);
        await using var gw = await GatewayAsync(Profile("sts-good.dane.test", "opportunistic", mtaSts: "on"), policyHttpsPort: policies.Port);
        await gw.SendAsync("app@sender.test", ["u@sts-good.dane.test"], "dane over sts");

        Assert.True(Assert.Single(await gw.ReceivedAsync(mx, 1, Wait)).Tls);
        await gw.WaitForLineAsync(l => l.Contains("DANE for the domain (sts-good.dane.test) MX mx.sts-good.dane.test Successful."), Wait);
        Assert.Contains(gw.Lines, l => l.Contains("Applying MTA-STS policy for the domain (sts-good.dane.test)"));
        Assert.Contains(gw.Lines, l => l.Contains("MTA-STS policy for the domain (sts-good.dane.test) skipped: DANE succeeded"));
        Assert.DoesNotContain(gw.Lines, l => l.Contains("MTA-STS policy for the domain (sts-good.dane.test) Successful."));
    }

    [Fact]
    public async Task Mta_sts_pass_never_rescues_a_failing_dane_check()
    {
        // The policy lists the MX and its certificate is PKIX-valid for it (test CA trusted): MTA-STS would pass. The
        // TLSA digest matches nothing: DANE fails, the message is not delivered.
        await using var policies = await PolicyHttpsServer.StartAsync(world.Ca);
        policies.ServePolicy("sts-wrong.dane.test", "version: STSv1\nmode: enforce\nmx: mx.sts-wrong.dane.test\nmax_age: 86400\n");
        await using var mx = world.Receiver("sts-wrong", world.Leaf);
        await using var gw = await GatewayAsync(Profile("sts-wrong.dane.test", "opportunistic", tls: "required-verify-hosted-domains", mtaSts: "on"),
            policyHttpsPort: policies.Port);
        await gw.SendAsync("app@sender.test", ["u@sts-wrong.dane.test"], "sts cannot rescue");

        await DeferredAsync(gw, "u@sts-wrong.dane.test");
        Assert.Contains(gw.Lines, l => l.Contains("Applying MTA-STS policy for the domain (sts-wrong.dane.test)"));
        Assert.Contains(gw.Lines, l => l.Contains("TLS deferring: verify error: DANE"));
        Assert.DoesNotContain(gw.Lines, l => l.Contains("Successful."));
        Assert.Empty(mx.Messages);
    }
}
