using System.Net;
using System.Net.Sockets;
using MtaSts.Actors.Smtp.Intake;

namespace MtaSts.Actors.Smtp.Tests.Intake;

public sealed class IntakeLifecycleTests
{
    [Fact]
    public async Task Graceful_stop_lets_the_transaction_in_progress_finish_and_closes_idle_sessions()
    {
        await using var h = await new IntakeHarness().StartAsync();
        await using var idle = await h.ConnectAsync();
        Assert.Equal(250, (await idle.CommandAsync("EHLO idle.test")).Code);
        await using var busy = await h.ConnectAsync();
        Assert.Equal(250, (await busy.CommandAsync("EHLO busy.test")).Code);
        Assert.Equal(250, (await busy.CommandAsync("MAIL FROM:<a@x.test>")).Code);

        var stop = h.Listener.StopAsync();

        // The idle session is told at once.
        Assert.StartsWith("421 4.3.2", (await idle.ReadReplyAsync()).Lines[0]);
        Assert.True(await idle.IsClosedAsync());
        // The one inside a transaction may complete it …
        Assert.Equal(250, (await busy.CommandAsync("RCPT TO:<b@y.test>")).Code);
        Assert.Equal(354, (await busy.CommandAsync("DATA")).Code);
        await busy.SendAsync("finishing\r\n.\r\n");
        Assert.Equal(250, (await busy.ReadReplyAsync()).Code);
        // … and is then closed with 421.
        Assert.StartsWith("421 4.3.2", (await busy.ReadReplyAsync()).Lines[0]);
        Assert.True(await busy.IsClosedAsync());
        await stop.WaitAsync(IntakeHarness.Generous);

        Assert.Equal(1, h.Spool.Count);
        Assert.Equal(0, h.Listener.ActiveSessions);
        await Assert.ThrowsAnyAsync<SocketException>(() => RawSmtpClient.ConnectAsync(h.Port));
    }

    [Fact]
    public async Task A_second_listener_on_the_port_of_a_running_one_fails_and_the_first_keeps_serving()
    {
        await using var first = await new IntakeHarness().StartAsync();
        var port = first.Port;
        await using var second = new IntakeHarness(o => o with { Endpoints = [new IPEndPoint(IPAddress.Loopback, port)] });

        var ex = await Assert.ThrowsAsync<ListenerBindException>(() => second.StartAsync());

        Assert.Equal($"SMTP listener cannot bind 127.0.0.1:{port}: address already in use (another gateway or MTA is listening on this port)",
            ex.Message);
        Assert.Equal(SocketError.AddressAlreadyInUse, ex.SocketError);
        Assert.Equal(new IPEndPoint(IPAddress.Loopback, port), ex.Endpoint);
        Assert.Empty(second.Listener.LocalEndpoints);
        // The port still belongs to the first listener alone: every connection is its session and gets its 220.
        for (var i = 0; i < 5; i++)
        {
            await using var c = await first.ConnectAsync();
            Assert.Equal(1, first.Listener.ActiveSessions);
            Assert.Equal(221, (await c.CommandAsync("QUIT")).Code);
            Assert.True(await c.IsClosedAsync());
            var deadline = DateTime.UtcNow + IntakeHarness.Generous;
            while (first.Listener.ActiveSessions > 0 && DateTime.UtcNow < deadline) await Task.Delay(10);
        }
    }

    [Fact]
    public async Task Stop_cuts_transactions_that_outlive_the_grace()
    {
        await using var h = await new IntakeHarness(o => o with { ShutdownGrace = TimeSpan.FromMilliseconds(200) }).StartAsync();
        await using var busy = await h.ConnectAsync();
        await busy.CommandAsync("EHLO busy.test");
        await busy.CommandAsync("MAIL FROM:<a@x.test>");
        await busy.CommandAsync("RCPT TO:<b@y.test>");
        Assert.Equal(354, (await busy.CommandAsync("DATA")).Code);
        await busy.SendAsync("never finished\r\n");
        await h.Listener.StopAsync().WaitAsync(IntakeHarness.Generous);
        Assert.StartsWith("421 4.3.2", (await busy.ReadReplyAsync()).Lines[0]);
        Assert.True(await busy.IsClosedAsync());
        Assert.Equal(0, h.Spool.Count);
    }

    [Fact]
    public async Task Many_concurrent_sessions_spool_every_message_under_distinct_mids()
    {
        await using var h = await new IntakeHarness().StartAsync();
        const int sessions = 20, perSession = 5;
        await Task.WhenAll(Enumerable.Range(0, sessions).Select(async s =>
        {
            await using var c = await h.ConnectAsync();
            await c.CommandAsync($"EHLO c{s}.test");
            for (int i = 0; i < perSession; i++)
            {
                await c.SendAsync($"MAIL FROM:<s{s}@x.test>\r\nRCPT TO:<r{i}@y.test>\r\nDATA\r\n");
                Assert.Equal(250, (await c.ReadReplyAsync()).Code);
                Assert.Equal(250, (await c.ReadReplyAsync()).Code);
                Assert.Equal(354, (await c.ReadReplyAsync()).Code);
                await c.SendAsync($"Subject: {s}/{i}\r\n\r\nbody\r\n.\r\n");
                Assert.Equal(250, (await c.ReadReplyAsync()).Code);
            }
            await c.CommandAsync("QUIT");
        })).WaitAsync(TimeSpan.FromMinutes(2));
        Assert.Equal(sessions * perSession, h.Spool.Count);
        Assert.Equal(sessions * perSession, h.Spool.Appends);
        var mids = h.Spool.Recover().Select(r => r.Message.Mid).ToArray();
        Assert.Equal(mids.Length, mids.Distinct().Count());
    }
}
