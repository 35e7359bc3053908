using Akka.Actor;
using MtaSts.Actors.Dns;
using MtaSts.Actors.Engine.Destination;
using MtaSts.Actors.TestInfra.Smtp;
using Xunit.Abstractions;

namespace MtaSts.Actors.Engine.Tests.EndToEnd;

/// <summary>
/// Reply-driven throttling against a real receiver that starts answering a throttling reply: the concurrency the
/// receiver sees drops to the rule's limit while it holds and comes back after the ramp. Assertions are on the peak
/// concurrency per window (the receiver counts every session), not on timing precision.
/// </summary>
public sealed class ThrottlingEndToEndTests(ITestOutputHelper output)
{
    private static readonly TimeSpan Wait = TimeSpan.FromSeconds(60);

    private static async Task SendManyAsync(GatewayFixture gw, string domain, int count)
    {
        for (var i = 0; i < count; i += 10)
            await Task.WhenAll(Enumerable.Range(i, Math.Min(10, count - i)).Select(n => gw.SendAsync("app@sender.test", [$"u{n}@{domain}"], $"m{n}")));
    }

    [Fact]
    public async Task A_throttling_reply_lowers_the_concurrency_at_the_receiver_and_it_ramps_back_afterwards()
    {
        await using var mx = TestSmtpReceiver.Start(new TestSmtpReceiverOptions { OfferStartTls = false });
        mx.DataEndDelay = TimeSpan.FromMilliseconds(250);
        await using var gw = await GatewayFixture.StartAsync(mx.Port, """
            mtasts.destinations.default { max-concurrent-connections = 8
              max-messages-per-connection = 1000 }
            mtasts.throttle.rules = [{ name = test-slow-down, code = 421, text = "slow down", action = limit-connections,
              connections = 2, duration = 4s, ramp-step = 500ms }]
            """);
        await SendManyAsync(gw, "throttle.test", 300);

        // Unthrottled: slow start takes the destination above the rule's limit.
        var deadline = DateTime.UtcNow + Wait;
        var peak = 0;
        while ((peak = Math.Max(peak, mx.TakePeakSessions())) < 5 && DateTime.UtcNow < deadline) await Task.Delay(50);
        Assert.True(peak >= 5, $"before the throttling reply the destination used {peak} connections");

        // The receiver answers its next 3 MAIL commands with a throttling reply (421 closes those sessions).
        var refusals = 3;
        mx.Script = (phase, _, _) => phase == SmtpPhase.Mail && Interlocked.Decrement(ref refusals) >= 0 ? "421 4.7.0 slow down, please" : null;
        await gw.WaitForLineAsync(l => l.Contains("throttled by rule test-slow-down: 421 4.7.0 slow down, please; connections"), Wait);
        var fired = DateTime.UtcNow;

        // The status shows the throttle where destinations are shown (admin API, CLI, status page).
        var status = await gw.Gateway.Region.Ask<DestinationStatus>(new GetDestinationStatus(DestinationDomain.Parse("throttle.test")), Wait);
        Assert.Equal("test-slow-down", status.Throttle?.Rule);
        Assert.Equal(2, status.Throttle?.Connections);

        // While the rule holds (4 s from its last firing): at most 2 sessions at the receiver, once the connections
        // that were busy at the cut have reported and closed (1 s; a transaction takes 250 ms). The window ends 1 s
        // before the hold does: the ramp must not be in it even when this machine is slow.
        await Task.Delay(TimeSpan.FromSeconds(1));
        mx.TakePeakSessions();
        await Task.Delay(fired + TimeSpan.FromSeconds(3) - DateTime.UtcNow is { Ticks: > 0 } rest ? rest : TimeSpan.Zero);
        var held = mx.TakePeakSessions();
        Assert.InRange(held, 1, 2);

        // Then the ramp (+1 connection every 500 ms) back to the level before, and the throttle ends.
        await gw.WaitForLineAsync(l => l.Contains("throttle by rule test-slow-down expired: ramping back"), Wait);
        await gw.WaitForLineAsync(l => l.Contains("throttle by rule test-slow-down ended: back to the profile limits"), Wait);
        mx.TakePeakSessions();
        await Task.Delay(TimeSpan.FromSeconds(1.5));
        var after = mx.TakePeakSessions();
        Assert.True(after >= 4, $"after the ramp the destination used {after} connections (held: {held})");
        output.WriteLine($"peak sessions: before {peak}, while held {held}, after the ramp {after}");
        var statusAfter = await gw.Gateway.Region.Ask<DestinationStatus>(new GetDestinationStatus(DestinationDomain.Parse("throttle.test")), Wait);
        Assert.Null(statusAfter.Throttle);

        // Nothing is lost: the refused transactions are retried.
        await gw.ReceivedAsync(mx, 300, Wait);
    }

    [Fact]
    public async Task A_refusal_at_the_banner_fires_a_rule_and_a_global_rule_replaces_a_built_in_of_the_same_name()
    {
        // A receiver that allows 2 sessions at once and greets any more with 421 "too many connections": the built-in
        // too-many-connections rule (halve, 5 minutes) is replaced by a shorter one of the same name.
        await using var mx = TestSmtpReceiver.Start(new TestSmtpReceiverOptions { OfferStartTls = false });
        mx.DataEndDelay = TimeSpan.FromMilliseconds(200);
        var refusedAfterFiring = 0;
        var fired = false;
        mx.Script = (phase, _, _) =>
        {
            if (phase != SmtpPhase.Banner || mx.ActiveSessions <= 2) return null;
            if (Volatile.Read(ref fired)) Interlocked.Increment(ref refusedAfterFiring);
            return "421 4.7.0 Too many connections from your IP";
        };
        await using var gw = await GatewayFixture.StartAsync(mx.Port, """
            mtasts.destinations.default { max-concurrent-connections = 10
              max-messages-per-connection = 1000 }
            mtasts.throttle.rules = [{ name = too-many-connections, code = 421, text = "too many connections", action = limit-connections,
              connections = 2, duration = 30s, ramp-step = 1s }]
            """);
        await SendManyAsync(gw, "banner.test", 60);
        await gw.WaitForLineAsync(l => l.Contains("throttled by rule too-many-connections: 421 4.7.0 Too many connections from your IP; connections"), Wait);
        await Task.Delay(500); // connections already opening when the rule fired may still be greeted with 421
        Volatile.Write(ref fired, true);
        await gw.ReceivedAsync(mx, 60, Wait);
        Assert.Equal(0, refusedAfterFiring);
    }
}
