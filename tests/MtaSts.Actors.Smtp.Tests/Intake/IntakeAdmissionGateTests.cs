using MtaSts.Actors.Logging;

namespace MtaSts.Actors.Smtp.Tests.Intake;

/// <summary>The admission gate (SmtpListenerOptions.Admission): a node that may not take mail (not an Up cluster
/// member, actor system terminated) answers 421 4.3.2 at connect, at MAIL and at the end of DATA, never 250, and
/// stores nothing.</summary>
public sealed class IntakeAdmissionGateTests
{
    private sealed class Gate
    {
        private volatile string? _reason;
        public string? Reason { get => _reason; set => _reason = value; }
    }

    private static IntakeHarness Harness(Gate gate) => new(o => o with { Admission = () => gate.Reason });

    [Fact]
    public async Task A_closed_gate_replaces_the_greeting_with_421_and_closes()
    {
        var gate = new Gate { Reason = "not an Up cluster member (status Joining)" };
        await using var h = await Harness(gate).StartAsync();

        await using var c = await h.ConnectAsync(readGreeting: false);
        var reply = await c.ReadReplyAsync();

        Assert.Equal("421 4.3.2 mx.test Service not available: not an Up cluster member (status Joining)", reply.Lines[0]);
        Assert.True(await c.IsClosedAsync());
        var line = await h.WaitForLogAsync(e => e.Event == "icid_not_available");
        Assert.Matches(@"^ICID \d+ refused at connect: service not available: not an Up cluster member \(status Joining\)$", line.Text);
        Assert.Equal(MailLogLevel.Warning, line.Level);
    }

    [Fact]
    public async Task The_gate_opening_admits_the_next_connection()
    {
        var gate = new Gate { Reason = "actor system terminated" };
        await using var h = await Harness(gate).StartAsync();
        await using (var refused = await h.ConnectAsync(readGreeting: false))
            Assert.Equal(421, (await refused.ReadReplyAsync()).Code);

        gate.Reason = null;
        await using var c = await h.OpenDataAsync();
        await c.SendAsync("Subject: t\r\n\r\nhello\r\n.\r\n");

        Assert.Equal(250, (await c.ReadReplyAsync()).Code);
        Assert.Equal(1, h.Spool.Count);
    }

    [Fact]
    public async Task A_gate_closing_before_MAIL_gets_421_and_closes()
    {
        var gate = new Gate();
        await using var h = await Harness(gate).StartAsync();
        await using var c = await h.ConnectAsync();
        Assert.Equal(250, (await c.CommandAsync("EHLO client.test")).Code);

        gate.Reason = "not an Up cluster member (status Down)";
        var reply = await c.CommandAsync("MAIL FROM:<a@x.test>");

        Assert.Equal("421 4.3.2 mx.test Service not available: not an Up cluster member (status Down)", reply.Lines[0]);
        Assert.True(await c.IsClosedAsync());
        Assert.Contains(h.Entries, e => e.Event == "icid_not_available" && e.Text.Contains("refused at MAIL", StringComparison.Ordinal));
    }

    [Fact]
    public async Task A_gate_closing_during_DATA_gets_421_at_the_end_and_the_message_is_not_stored()
    {
        var gate = new Gate();
        await using var h = await Harness(gate).StartAsync();
        await using var c = await h.OpenDataAsync();
        await c.SendAsync("Subject: t\r\n\r\nfirst half\r\n");

        gate.Reason = "actor system terminated";
        await c.SendAsync("second half\r\n.\r\n");
        var reply = await c.ReadReplyAsync();

        Assert.Equal("421 4.3.2 mx.test Service not available: actor system terminated", reply.Lines[0]);
        Assert.True(await c.IsClosedAsync());
        Assert.Equal(0, h.Spool.Count);
        Assert.False(h.TryHandedOff(out _));
        Assert.Equal(0, h.Listener.DataInFlight);
        var line = await h.WaitForLogAsync(e => e.Event == "icid_not_available");
        Assert.Matches(@"^MID \d+ ICID \d+ refused at end of DATA, message not stored: service not available: actor system terminated$", line.Text);
        Assert.DoesNotContain(h.Entries, e => e.Event == "mid_ready");
    }

    [Fact]
    public async Task Repeated_refusals_warn_once_per_interval_and_log_the_rest_at_debug_level()
    {
        var gate = new Gate { Reason = "not an Up cluster member (status Joining)" };
        await using var h = await Harness(gate).StartAsync();

        for (var i = 0; i < 5; i++)
        {
            await using var c = await h.ConnectAsync(readGreeting: false);
            Assert.Equal(421, (await c.ReadReplyAsync()).Code);
            Assert.True(await c.IsClosedAsync());
        }
        var deadline = DateTime.UtcNow + IntakeHarness.Generous;
        while (h.Entries.Count(e => e.Event == "icid_not_available") < 5 && DateTime.UtcNow < deadline) await Task.Delay(20);

        var refusals = h.Entries.Where(e => e.Event == "icid_not_available").ToArray();
        Assert.Equal(5, refusals.Length); // one line per refusal …
        Assert.Single(refusals, e => e.Level == MailLogLevel.Warning); // … one of them a warning
        Assert.All(h.Entries.Where(e => e.Event is "icid_new" or "icid_close"), e => Assert.Equal(MailLogLevel.Debug, e.Level));
    }
}
