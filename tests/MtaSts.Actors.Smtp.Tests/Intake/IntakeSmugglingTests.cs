using MtaSts.Actors.Smtp.Intake;

namespace MtaSts.Actors.Smtp.Tests.Intake;

/// <summary>
/// SMTP smuggling and bare line endings (RFC 5321 §2.3.8, §4.1.1.4): only CRLF.CRLF ends DATA, and whatever the
/// client sends, the stored body (what goes to the next hop) has CRLF line endings only, no NUL, and no "." line.
/// </summary>
public sealed class IntakeSmugglingTests
{
    /// <summary>Every end-of-data lookalike we know of (SEC Consult 2023, Postfix/Sendmail/Exchange advisories).</summary>
    public static TheoryData<string> Lookalikes => new()
    {
        "\n.\n", "\n.\r\n", "\r\n.\n", "\r.\r", "\r.\r\n", "\r\n.\r", "\n.\r", "\r\n\r.\r\n", "\r\n.\r\r\n",
        "\r\n\x00.\r\n", "\r\n.\x00\r\n", "\n..\n", "\r\r\n.\r\r\n",
    };

    private static string Smuggle(string lookalike) =>
        "Subject: outer\r\n\r\nhello" + lookalike +
        "MAIL FROM:<ceo@bank.test>\r\nRCPT TO:<victim@y.test>\r\nDATA\r\nSubject: spoofed\r\n\r\nevil\r\n.\r\n";

    /// <summary>The properties every stored body must have, whatever the client sent.</summary>
    internal static void AssertClean(byte[] body)
    {
        for (int i = 0; i < body.Length; i++)
        {
            Assert.NotEqual(0, body[i]);
            if (body[i] == (byte)'\r') Assert.True(i + 1 < body.Length && body[i + 1] == (byte)'\n', $"bare CR at {i}");
            if (body[i] == (byte)'\n') Assert.True(i > 0 && body[i - 1] == (byte)'\r', $"bare LF at {i}");
        }
        Assert.True(body.Length >= 2 && body[^2] == (byte)'\r' && body[^1] == (byte)'\n', "body ends in CRLF");
    }

    [Theory]
    [MemberData(nameof(Lookalikes))]
    public async Task Reject_mode_refuses_every_lookalike_and_stores_nothing_of_it(string lookalike)
    {
        await using var h = await new IntakeHarness(o => o with { DataTimeout = TimeSpan.FromMinutes(5) }).StartAsync();
        await using var c = await h.OpenDataAsync();
        await c.SendAsync(Smuggle(lookalike));
        // The first reply comes at once (never the 5-minute data timeout): the message is refused.
        var first = await c.ReadReplyAsync(TimeSpan.FromSeconds(20));
        Assert.Equal(550, first.Code);
        Assert.Matches("^550 5\\.(5\\.2|6\\.0) Message refused: ", first.Lines[0]);
        // Nothing from the outer message was stored.
        await Task.Delay(200);
        Assert.All(Enumerable.Range(0, 10), _ => Assert.False(h.TryHandedOff(out var m) && m!.Envelope.ReversePath == "a@x.test"));
        Assert.StartsWith("250 ", (await c.CommandAsync("NOOP")).Lines[^1][..4]);
    }

    [Theory]
    [MemberData(nameof(Lookalikes))]
    public async Task Normalize_mode_stores_only_clean_crlf_lines(string lookalike)
    {
        await using var h = await new IntakeHarness(o => o with
        {
            BareLineEndings = BareLineEndingPolicy.Normalize, DataTimeout = TimeSpan.FromMinutes(5), AddReceivedHeader = false,
        }).StartAsync();
        await using var c = await h.OpenDataAsync();
        await c.SendAsync(Smuggle(lookalike));
        var replies = new List<int> { (await c.ReadReplyAsync(TimeSpan.FromSeconds(20))).Code };
        // Whatever was stored is clean: CRLF only, no NUL, and no lone "." line inside.
        while (h.TryHandedOff(out _) || replies.Count < 2)
        {
            var more = await c.CommandAsync("NOOP");
            if (more.Lines[0].StartsWith("250 2.0.0 Ok", StringComparison.Ordinal) && !more.Lines[0].Contains("queued")) break;
            replies.Add(more.Code);
        }
        foreach (var mid in h.Spool.Recover().Select(r => r.Message.Mid))
        {
            var body = (await h.Spool.ReadBodyAsync(mid)).ToArray();
            // A "." line may be content here (the body is stored unstuffed); the wire test checks the stuffing.
            AssertClean(body);
        }
    }

    [Fact]
    public async Task Normalize_mode_turns_bare_lf_and_bare_cr_into_crlf_and_drops_nul()
    {
        await using var h = await new IntakeHarness(o => o with { BareLineEndings = BareLineEndingPolicy.Normalize, AddReceivedHeader = false }).StartAsync();
        await using var c = await h.OpenDataAsync();
        await c.SendAsync("Subject: t\nline1\rline2\r\nnul\0here\r\n..dot\r\n.\r\n");
        Assert.Equal(250, (await c.ReadReplyAsync()).Code);
        var m = await h.NextHandedOffAsync();
        Assert.Equal("Subject: t\r\nline1\r\nline2\r\nnulhere\r\n.dot\r\n", await h.BodyTextAsync(m.Mid));
        var logged = await h.WaitForLogAsync(e => e.Event == "mid_normalised");
        Assert.Contains("bare LF, bare CR, NUL removed", logged.Text);
    }

    [Fact]
    public async Task Normalize_mode_accepts_commands_ending_in_bare_lf()
    {
        await using var h = await new IntakeHarness(o => o with { BareLineEndings = BareLineEndingPolicy.Normalize }).StartAsync();
        await using var c = await h.ConnectAsync();
        await c.SendAsync("EHLO lf.test\n");
        Assert.Equal(250, (await c.ReadReplyAsync()).Code);
    }

    [Fact]
    public async Task A_bare_lf_client_gets_a_clear_error_at_once_not_a_hang()
    {
        // Defect 8: a client that ends DATA with "\n.\n" used to wait for the data timeout.
        await using var h = await new IntakeHarness(o => o with
        {
            BareLineEndings = BareLineEndingPolicy.Normalize, DataTimeout = TimeSpan.FromMinutes(10),
        }).StartAsync();
        await using var c = await h.ConnectAsync();
        await c.SendAsync("EHLO lf.test\nMAIL FROM:<a@x.test>\nRCPT TO:<b@y.test>\nDATA\n");
        for (int i = 0; i < 4; i++) await c.ReadReplyAsync();
        await c.SendAsync("Subject: unix\n\nbody\n.\n");
        var r = await c.ReadReplyAsync(TimeSpan.FromSeconds(20));
        Assert.Equal("550 5.5.2 Message refused: end of data must be <CR><LF>.<CR><LF>, bare <LF> received", r.Lines[0]);
        await c.SendAsync("QUIT\n");
        Assert.Equal(221, (await c.ReadReplyAsync()).Code);
        Assert.Equal(0, h.Spool.Count);
    }

    [Fact]
    public async Task Reject_mode_closes_a_session_whose_commands_end_in_bare_lf()
    {
        await using var h = await new IntakeHarness().StartAsync();
        await using var c = await h.ConnectAsync();
        await c.SendAsync("EHLO lf.test\n");
        var r = await c.ReadReplyAsync(TimeSpan.FromSeconds(20));
        Assert.Equal("521 5.5.2 mx.test Error: bare <LF> received, commands must end with <CR><LF>", r.Lines[0]);
        Assert.True(await c.IsClosedAsync());
        await h.WaitForLogAsync(e => e.Event == "icid_bare_lf");
    }

    [Theory]
    [InlineData("line\nnext\r\n", "550 5.5.2 Message refused: bare <LF> in message data, lines must end with <CR><LF>")]
    [InlineData("line\rnext\r\n", "550 5.5.2 Message refused: bare <CR> in message data, lines must end with <CR><LF>")]
    [InlineData("nul\0byte\r\n", "550 5.6.0 Message refused: NUL character in message data")]
    public async Task Reject_mode_reads_the_message_to_its_end_then_refuses_it(string content, string expected)
    {
        await using var h = await new IntakeHarness().StartAsync();
        await using var c = await h.OpenDataAsync();
        await c.SendAsync("Subject: x\r\n\r\n" + content + "more\r\n.\r\n");
        Assert.Equal(expected, (await c.ReadReplyAsync()).Lines[0]);
        Assert.Equal(0, h.Spool.Count);
        // In sync: the next transaction works.
        Assert.Equal(250, (await c.CommandAsync("MAIL FROM:<a@x.test>")).Code);
    }

    [Fact]
    public async Task Received_header_never_carries_raw_8bit_or_comment_characters_from_ehlo()
    {
        await using var h = await new IntakeHarness().StartAsync();
        await using var c = await h.ConnectAsync();
        Assert.Equal(250, (await c.CommandAsync("EHLO bad(é)\\name;x")).Code);
        await c.CommandAsync("MAIL FROM:<a@x.test>");
        await c.CommandAsync("RCPT TO:<b@y.test>");
        await c.CommandAsync("DATA");
        await c.SendAsync("Subject: x\r\n\r\nbody\r\n.\r\n");
        Assert.Equal(250, (await c.ReadReplyAsync()).Code);
        var m = await h.NextHandedOffAsync();
        var body = await h.BodyTextAsync(m.Mid);
        Assert.StartsWith("Received: from bad????name?x ([127.0.0.1])\r\n", body);
        Assert.Equal("bad(é)\\name;x", m.Envelope.ClientHelo); // the envelope keeps what was said
    }
}
