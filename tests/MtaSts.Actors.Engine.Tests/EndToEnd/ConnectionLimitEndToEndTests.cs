using MtaSts.Actors.TestInfra.Smtp;

namespace MtaSts.Actors.Engine.Tests.EndToEnd;

/// <summary>The node-wide outbound connection limit (<c>mtasts.delivery.max-connections</c>) through a real gateway:
/// many destinations with mail due at once share it, none is starved, nothing is lost.</summary>
public sealed class ConnectionLimitEndToEndTests
{
    private static readonly TimeSpan Wait = TimeSpan.FromSeconds(90);

    [Theory]
    [InlineData("on")]
    [InlineData("off")]
    public async Task Deliver_now_over_many_deferred_destinations_opens_no_more_than_the_nodes_limit(string rollup)
    {
        await using var mx = TestSmtpReceiver.Start(new TestSmtpReceiverOptions { OfferStartTls = false });
        var accepting = 0;
        // First every destination defers (451 to each RCPT); then the receiver accepts, slowly enough that each
        // destination wants its 5 initial connections at once.
        mx.Script = (phase, _, _) => phase switch
        {
            SmtpPhase.Rcpt when Volatile.Read(ref accepting) == 0 => "451 4.3.0 try again later",
            SmtpPhase.DataEnd => Sleep(30),
            _ => null,
        };
        await using var gw = await GatewayFixture.StartAsync(mx.Port, $"""
            mtasts.delivery.max-connections = 3
            mtasts.delivery.mx-rollup = {rollup}
            mtasts.destinations.default {"{"} max-concurrent-connections = 10 {"}"}
            """);
        const int domains = 30, perDomain = 3;
        await Task.WhenAll(Enumerable.Range(0, domains).SelectMany(d => Enumerable.Range(0, perDomain)
            .Select(m => gw.SendAsync("app@sender.test", [$"u{m}@d{d}.test"], $"d{d}-{m}"))));
        await gw.WaitForLineAsync(l => l.Contains("Delayed:"), Wait, count: domains * perDomain);
        Assert.InRange(GatewayFixture.PeakOpen(gw.Lines), 1, 3); // the deferring round was limited too

        Interlocked.Exchange(ref accepting, 1);
        Assert.Equal(domains, await gw.Gateway.DeliverNowAsync());
        var got = await gw.ReceivedAsync(mx, domains * perDomain, Wait);

        Assert.Equal(domains * perDomain, got.Select(m => m.Recipients[0].Address).Distinct().Count()); // every domain served
        Assert.InRange(mx.MaxConcurrentSessions, 1, 3);
        Assert.InRange(GatewayFixture.PeakOpen(gw.Lines), 1, 3);
        Assert.Contains(gw.Lines, l => l.Contains("Outbound connection limit reached (3 connections, mtasts.delivery.max-connections)"));
        // Every token comes back: nothing is left counted once the connections are gone.
        await gw.WaitForLineAsync(_ => gw.Gateway.ConnectionBudget!.InUse == 0, Wait);
        Assert.Equal(0, gw.Gateway.ConnectionBudget!.Waiting);

        static string? Sleep(int ms)
        {
            Thread.Sleep(ms);
            return null;
        }
    }
}
