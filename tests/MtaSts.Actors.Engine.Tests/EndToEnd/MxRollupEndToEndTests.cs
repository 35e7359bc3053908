using MtaSts.Actors.TestInfra.Smtp;

namespace MtaSts.Actors.Engine.Tests.EndToEnd;

/// <summary>Per-MX-IP limits and MX roll-up through a real gateway: several destination domains, one receiver address.</summary>
public sealed class MxRollupEndToEndTests
{
    private static readonly TimeSpan Wait = TimeSpan.FromSeconds(60);

    [Fact]
    public async Task With_limit_type_mx_ip_two_domains_on_one_receiver_address_share_its_connection_limit()
    {
        await using var mx = TestSmtpReceiver.Start(new TestSmtpReceiverOptions { OfferStartTls = false });
        // A slow final reply keeps the connections busy, so that each domain wants more than one.
        mx.Script = (phase, _, _) =>
        {
            if (phase == SmtpPhase.DataEnd) Thread.Sleep(20);
            return null;
        };
        await using var gw = await GatewayFixture.StartAsync(mx.Port, """
            mtasts.delivery.mx-rollup = off
            mtasts.destinations.default { max-concurrent-connections = 2
              max-messages-per-connection = 5
              limit-type = mx-ip }
            """);
        var sends = Enumerable.Range(0, 20).SelectMany(i => new[]
        {
            gw.SendAsync("app@sender.test", [$"u{i}@a.test"], $"a{i}"),
            gw.SendAsync("app@sender.test", [$"u{i}@b.test"], $"b{i}"),
        });
        await Task.WhenAll(sends);

        var got = await gw.ReceivedAsync(mx, 40, Wait);
        Assert.Equal(20, got.Count(m => m.Recipients[0].Address.EndsWith("@a.test", StringComparison.Ordinal)));
        // Per domain the limit would allow 2 + 2; per MX address it is 2 for both.
        Assert.InRange(GatewayFixture.PeakOpen(gw.Lines), 1, 2);
        Assert.InRange(mx.MaxConcurrentSessions, 1, 2);
    }

    [Theory]
    [InlineData(2, 1, 2)]  // mx-rollup-max-connections: 2 at the address for the three domains together
    [InlineData(0, 3, 12)] // no such limit: each domain opens its own (up to 4 each)
    public async Task With_roll_up_the_connections_at_one_MX_address_stay_within_mx_rollup_max_connections(int max, int low, int high)
    {
        await using var mx = TestSmtpReceiver.Start(new TestSmtpReceiverOptions { OfferStartTls = false });
        // A slow final reply keeps the connections busy, so that each domain wants more than one.
        mx.Script = (phase, _, _) =>
        {
            if (phase == SmtpPhase.DataEnd) Thread.Sleep(50);
            return null;
        };
        await using var gw = await GatewayFixture.StartAsync(mx.Port, $$"""
            mtasts.delivery.mx-rollup-max-connections = {{max}}
            mtasts.destinations.default { max-concurrent-connections = 4
              max-messages-per-connection = 100 }
            """);
        var sends = Enumerable.Range(0, 15).SelectMany(i => new[]
        {
            gw.SendAsync("app@sender.test", [$"u{i}@a.test"], $"a{i}"),
            gw.SendAsync("app@sender.test", [$"u{i}@b.test"], $"b{i}"),
            gw.SendAsync("app@sender.test", [$"u{i}@c.test"], $"c{i}"),
        });
        await Task.WhenAll(sends);

        var got = await gw.ReceivedAsync(mx, 45, Wait);
        foreach (var d in new[] { "a", "b", "c" })
            Assert.Equal(15, got.Count(m => m.Recipients[0].Address.EndsWith($"@{d}.test", StringComparison.Ordinal)));
        Assert.InRange(mx.MaxConcurrentSessions, low, high);
    }

    [Fact]
    public async Task An_idle_session_carries_another_domains_mail_when_it_satisfies_that_domains_requirements()
    {
        await using var mx = TestSmtpReceiver.Start(new TestSmtpReceiverOptions { OfferStartTls = false });
        await using var gw = await GatewayFixture.StartAsync(mx.Port, "mtasts.delivery.connection-idle-time = 20s");
        await gw.SendAsync("app@sender.test", ["x@a.test"], "first");
        await gw.ReceivedAsync(mx, 1, Wait);
        await gw.WaitForLineAsync(l => l.Contains("Message finished MID"), Wait);
        await gw.SendAsync("app@sender.test", ["y@b.test"], "second");
        await gw.WaitForLineAsync(l => l.Contains("Message finished MID"), Wait, count: 2);

        var reused = Assert.Single(gw.Lines, l => l.Contains("reused for domain b.test (rolled up from a.test)"));
        Assert.Matches(@"DCID \d+ reused for domain b\.test \(rolled up from a\.test\) as DCID \d+", reused);
        var got = await gw.ReceivedAsync(mx, 2, Wait);
        Assert.Equal(1, mx.TotalSessions); // one connection, two domains
        Assert.Equal(got[0].SessionId, got[1].SessionId);
        Assert.Contains("RSET", mx.Sessions[0].Commands); // a clean state before the other domain's transaction
    }

    [Fact]
    public async Task A_session_that_does_not_satisfy_the_other_domains_TLS_setting_is_not_rolled_up()
    {
        // a.test sends with TLS off; b.test prefers TLS: a's session never tried STARTTLS, so b opens its own.
        await using var mx = TestSmtpReceiver.Start(new TestSmtpReceiverOptions { OfferStartTls = false });
        await using var gw = await GatewayFixture.StartAsync(mx.Port, """
            mtasts.delivery.connection-idle-time = 20s
            mtasts.destinations."b.test".tls-support = preferred
            """);
        await gw.SendAsync("app@sender.test", ["x@a.test"], "first");
        await gw.WaitForLineAsync(l => l.Contains("Message finished MID"), Wait);
        await gw.SendAsync("app@sender.test", ["y@b.test"], "second");
        await gw.WaitForLineAsync(l => l.Contains("Message finished MID"), Wait, count: 2);

        await gw.ReceivedAsync(mx, 2, Wait);
        Assert.DoesNotContain(gw.Lines, l => l.Contains("reused for domain"));
        Assert.Equal(2, mx.TotalSessions);
    }

    [Fact]
    public async Task A_parked_session_that_fails_RSET_is_discarded_and_the_mail_goes_over_a_new_connection()
    {
        await using var mx = TestSmtpReceiver.Start(new TestSmtpReceiverOptions { OfferStartTls = false });
        mx.Script = (phase, _, _) => phase == SmtpPhase.Rset ? "421 4.3.2 shutting down" : null;
        await using var gw = await GatewayFixture.StartAsync(mx.Port, "mtasts.delivery.connection-idle-time = 20s");
        await gw.SendAsync("app@sender.test", ["x@a.test"], "first");
        await gw.WaitForLineAsync(l => l.Contains("Message finished MID"), Wait);
        await gw.SendAsync("app@sender.test", ["y@b.test"], "second");
        await gw.WaitForLineAsync(l => l.Contains("Message finished MID"), Wait, count: 2);

        Assert.Single(gw.Lines, l => l.Contains("discarded: RSET failed before reuse for domain b.test"));
        var got = await gw.ReceivedAsync(mx, 2, Wait);
        Assert.Contains(got, m => m.Recipients[0].Address == "y@b.test");
        Assert.Equal(2, mx.TotalSessions);
        Assert.DoesNotContain(gw.Lines, l => l.Contains("Delayed:")); // not failed for the dead connection
    }
}
