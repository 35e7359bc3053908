using System.Net;
using MtaSts.Actors.Logging;
using MtaSts.Actors.Smtp.Intake;
using MtaSts.Actors.Smtp.Intake.Limits;

namespace MtaSts.Actors.Smtp.Tests.Intake;

/// <summary>
/// Per-client limits through the real listener (Postfix anvil-style). The relay network is 127.0.0.1/32, so a client
/// connecting from 127.0.0.2 is an ordinary, unlisted client: its floods must not lock out the relay client.
/// </summary>
public sealed class IntakeClientLimitsTests
{
    private static readonly IPAddress Attacker = IPAddress.Parse("127.0.0.2");
    private static readonly IPAddress Relay = IPAddress.Loopback;

    private static SmtpListenerOptions Unlisted(SmtpListenerOptions o, ClientLimits? limits = null) => o with
    {
        RelayNetworks = [IPNetwork.Parse("127.0.0.1/32")],
        ClientLimits = limits ?? ClientLimits.Default,
    };

    private static async Task<bool> SendsOneMessageAsync(IntakeHarness h)
    {
        await using var c = await h.ConnectAsync(from: Relay);
        await c.CommandAsync("EHLO relay.test");
        await c.CommandAsync("MAIL FROM:<app@x.test>");
        await c.CommandAsync("RCPT TO:<b@y.test>");
        await c.CommandAsync("DATA");
        await c.SendAsync("Subject: still served\r\n\r\nok\r\n.\r\n");
        return (await c.ReadReplyAsync()).Code == 250;
    }

    [Fact]
    public async Task An_idle_connection_flood_from_one_address_takes_its_share_and_no_more()
    {
        // Defect 2: 1,000 idle connections from one address used to fill max-sessions for everyone.
        await using var h = await new IntakeHarness(o => Unlisted(o) with { MaxConcurrentSessions = 60 }).StartAsync();
        var held = new List<RawSmtpClient>();
        int admitted = 0, refused = 0;
        for (int i = 0; i < 100; i++)
        {
            var c = await h.ConnectAsync(readGreeting: false, from: Attacker);
            held.Add(c);
            var greeting = await c.ReadReplyAsync();
            if (greeting.Code == 220) admitted++;
            else
            {
                Assert.Equal("421 4.7.0 mx.test Error: too many sessions from 127.0.0.2 (limit 20)", greeting.Lines[0]);
                refused++;
            }
        }
        Assert.Equal(20, admitted);
        Assert.Equal(80, refused);
        // The relay client is served while the attacker holds its 20 sessions.
        Assert.True(await SendsOneMessageAsync(h));
        // One warning for the flood, not eighty.
        Assert.Single(h.Entries, e => e.Event == "icid_refused" && e.Level == MailLogLevel.Warning);
        foreach (var c in held) await c.DisposeAsync();
    }

    [Fact]
    public async Task The_connection_rate_is_limited_per_address()
    {
        await using var h = await new IntakeHarness(o => Unlisted(o, ClientLimits.Default with { ConnectionsPerMinute = 5 })).StartAsync();
        for (int i = 0; i < 5; i++)
        {
            await using var ok = await h.ConnectAsync(from: Attacker);
            await ok.CommandAsync("QUIT");
        }
        await using var sixth = await h.ConnectAsync(readGreeting: false, from: Attacker);
        Assert.Equal("421 4.7.0 mx.test Error: connection rate limit exceeded for 127.0.0.2 (5 per minute)", (await sixth.ReadReplyAsync()).Lines[0]);
        Assert.True(await SendsOneMessageAsync(h));
    }

    [Fact]
    public async Task Pipelined_noops_hit_the_junk_limit_then_the_tarpit_then_the_error_limit()
    {
        // Defect 2: 20,000 pipelined NOOPs were all answered.
        await using var h = await new IntakeHarness(o => Unlisted(o, ClientLimits.Default with
        {
            MaxNonTransactionCommands = 50, SoftErrorLimit = 3, ErrorDelay = TimeSpan.FromMilliseconds(10),
        })).StartAsync();
        await using var c = await h.ConnectAsync(from: Attacker);
        await c.SendAsync(string.Concat(Enumerable.Repeat("NOOP\r\n", 20_000)));
        int answered = 0;
        while (true)
        {
            SmtpReply r;
            try { r = await c.ReadReplyAsync(); } catch (IOException) { break; }
            if (r.Code == 421) { Assert.Equal("421 4.7.0 mx.test Too many errors, closing transmission channel", r.Lines[0]); break; }
            answered++;
        }
        Assert.InRange(answered, 50, 50 + 21); // the limit, then 21 errors (MaxErrors = 20)
        await h.WaitForLogAsync(e => e.Event == "icid_junk_limit");
    }

    [Fact]
    public async Task A_mail_rset_flood_is_cut_short_and_does_not_flood_the_log()
    {
        // Defect 7: 50,000 MAIL/RSET pairs in 2 s, all answered 250, 100,000 log lines.
        await using var h = await new IntakeHarness(o => Unlisted(o, ClientLimits.Default with
        {
            MessagesPerMinute = 100, ErrorDelay = TimeSpan.FromMilliseconds(10),
        })).StartAsync();
        for (int round = 0; round < 3; round++)
        {
            await using var c = await h.ConnectAsync(from: Attacker);
            await c.CommandAsync("EHLO flood.test");
            await c.SendAsync(string.Concat(Enumerable.Repeat("MAIL FROM:<a@x.test>\r\nRSET\r\n", 5_000)));
            while (true)
            {
                try { if ((await c.ReadReplyAsync()).Code == 421) break; } catch (IOException) { break; }
            }
        }
        int mailAccepted = h.Entries.Count(e => e.Event == "mid_start");
        Assert.InRange(mailAccepted, 1, 100); // the message rate, across the three sessions
        Assert.Single(h.Entries, e => e.Event == "icid_message_rate");
        Assert.True(h.Entries.Count < 400, $"{h.Entries.Count} log events for 15,000 flood commands");
        Assert.True(await SendsOneMessageAsync(h));
    }

    [Fact]
    public async Task A_session_is_closed_when_its_lifetime_is_over_even_if_it_keeps_talking()
    {
        await using var h = await new IntakeHarness(o => Unlisted(o, ClientLimits.Default with { MaxSessionDuration = TimeSpan.FromSeconds(2) })).StartAsync();
        await using var idle = await h.ConnectAsync(from: Attacker);
        await using var chatty = await h.ConnectAsync(from: Attacker);
        var started = DateTime.UtcNow;
        SmtpReply last;
        do last = await chatty.CommandAsync("NOOP"); while (last.Code == 250 && DateTime.UtcNow - started < TimeSpan.FromSeconds(30));
        Assert.Equal("421 4.7.0 mx.test Error: session time limit exceeded, closing transmission channel", last.Lines[0]);
        // The idle one is closed too (the command timeout is a minute: the lifetime cap ends its wait).
        Assert.Equal(421, (await idle.ReadReplyAsync(TimeSpan.FromSeconds(30))).Code);
        Assert.True(await idle.IsClosedAsync());
    }

    [Fact]
    public async Task Relay_networks_get_their_own_limits()
    {
        await using var h = await new IntakeHarness(o => Unlisted(o) with
        {
            RelayClientLimits = ClientLimits.RelayDefault with { MaxSessions = 3 },
        }).StartAsync();
        var held = new List<RawSmtpClient>();
        for (int i = 0; i < 3; i++) held.Add(await h.ConnectAsync(from: Relay));
        await using var fourth = await h.ConnectAsync(readGreeting: false, from: Relay);
        Assert.Equal("421 4.7.0 mx.test Error: too many sessions from 127.0.0.1 (limit 3)", (await fourth.ReadReplyAsync()).Lines[0]);
        foreach (var c in held) await c.DisposeAsync();
    }
}
