using System.Text;

namespace MtaSts.Actors.Smtp.Tests.Intake;

/// <summary>Bodies are streamed to the spool's spill directory beyond the memory limit, and all sessions together
/// hold at most MaxDataInFlight unspooled bytes.</summary>
public sealed class IntakeDataBudgetTests
{
    private static string Lines(int count, char fill) =>
        string.Concat(Enumerable.Range(0, count).Select(i => $"{i:D6} {new string(fill, 90)}\r\n"));

    [Fact]
    public async Task Large_bodies_are_spilled_while_they_arrive_and_stored_intact()
    {
        await using var h = await new IntakeHarness(o => o with { BodyMemoryLimit = 16 * 1024, AddReceivedHeader = false }).StartAsync();
        var text = Lines(20_000, 'q'); // ≈ 2 MB
        var clients = await Task.WhenAll(Enumerable.Range(0, 4).Select(_ => h.OpenDataAsync()));
        await Task.WhenAll(clients.Select(c => c.SendAsync(text + ".\r\n")));
        foreach (var c in clients) Assert.Equal(250, (await c.ReadReplyAsync()).Code);
        for (int i = 0; i < 4; i++)
        {
            var m = await h.NextHandedOffAsync();
            Assert.Equal(text, await h.BodyTextAsync(m.Mid));
        }
        // Spill files go with their message once it is in the spool; reservations end just after the hand-off.
        var until = DateTime.UtcNow + IntakeHarness.Generous;
        while (h.Listener.DataInFlight != 0 && DateTime.UtcNow < until) await Task.Delay(20);
        Assert.Empty(Directory.GetFiles(h.Spool.SpillDirectory));
        Assert.Equal(0, h.Listener.DataInFlight);
        foreach (var c in clients) await c.DisposeAsync();
    }

    [Fact]
    public async Task A_message_beyond_the_in_flight_budget_gets_452_and_the_session_goes_on()
    {
        await using var h = await new IntakeHarness(o => o with
        {
            MaxMessageSize = 1024 * 1024, MaxDataInFlight = 1024 * 1024, BodyMemoryLimit = 16 * 1024,
        }).StartAsync();
        // Session 1 holds ≈ 700 KB unspooled (DATA not finished).
        await using var holder = await h.OpenDataAsync();
        await holder.SendAsync(Lines(7_000, 'h'));
        // MAIL with a SIZE that no longer fits: 452 at once (RFC 1870 §6.1).
        await using var sized = await h.ConnectAsync();
        await sized.CommandAsync("EHLO client.test");
        var deadline = DateTime.UtcNow + IntakeHarness.Generous;
        while (h.Listener.DataInFlight < 600_000 && DateTime.UtcNow < deadline) await Task.Delay(20);
        Assert.Equal("452 4.3.1 Insufficient system storage, try again later",
            (await sized.CommandAsync("MAIL FROM:<a@x.test> SIZE=500000")).Lines[0]);
        // Without SIZE: the overflow is noticed during DATA and answered after the final dot.
        await using var c = await h.OpenDataAsync();
        await c.SendAsync(Lines(5_000, 'o') + ".\r\n");
        Assert.Equal("452 4.3.1 Insufficient system storage, try again later", (await c.ReadReplyAsync()).Lines[0]);
        Assert.Equal(250, (await c.CommandAsync("MAIL FROM:<a@x.test>")).Code);
        // The first message completes normally and its reservation is released.
        await holder.SendAsync(".\r\n");
        Assert.Equal(250, (await holder.ReadReplyAsync()).Code);
        // Released when the session is done with the message (just after its 250 and hand-off).
        var until = DateTime.UtcNow + IntakeHarness.Generous;
        while (h.Listener.DataInFlight != 0 && DateTime.UtcNow < until) await Task.Delay(20);
        Assert.Equal(0, h.Listener.DataInFlight);
        var m = await h.NextHandedOffAsync();
        Assert.Equal(Encoding.ASCII.GetByteCount(Lines(7_000, 'h')), m.BodyLength - (await h.BodyTextAsync(m.Mid)).IndexOf("000000 ", StringComparison.Ordinal));
    }
}
