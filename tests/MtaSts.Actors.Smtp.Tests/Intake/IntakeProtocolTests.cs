using System.Net;
using System.Text.RegularExpressions;
using MtaSts.Actors.Spool;

namespace MtaSts.Actors.Smtp.Tests.Intake;

public sealed class IntakeProtocolTests
{
    private static async Task<RawSmtpClient> EhloAsync(IntakeHarness h, string name = "client.test")
    {
        var c = await h.ConnectAsync();
        var ehlo = await c.CommandAsync("EHLO " + name);
        Assert.Equal(250, ehlo.Code);
        return c;
    }

    [Fact]
    public async Task Ehlo_advertises_the_extensions_and_greeting_has_no_enhanced_code()
    {
        await using var h = await new IntakeHarness().StartAsync();
        await using var c = await h.ConnectAsync(readGreeting: false);
        var greeting = await c.ReadReplyAsync();
        Assert.Equal("220 mx.test ESMTP MtaSts.Actors", greeting.Lines[0]);
        var ehlo = await c.CommandAsync("EHLO client.test");
        Assert.Equal("250-mx.test Hello client.test [127.0.0.1]", ehlo.Lines[0]);
        var keywords = ehlo.Lines.Skip(1).Select(l => l[4..]).ToArray();
        Assert.Contains($"SIZE {50L * 1024 * 1024}", keywords);
        foreach (var k in new[] { "PIPELINING", "8BITMIME", "ENHANCEDSTATUSCODES", "DSN", "SMTPUTF8", "HELP" })
            Assert.Contains(k, keywords);
        Assert.DoesNotContain("STARTTLS", keywords); // no certificate configured
        Assert.DoesNotContain(keywords, k => k.StartsWith("AUTH", StringComparison.Ordinal));
        Assert.StartsWith("250 ", ehlo.Lines[^1]);
        Assert.Equal("221 2.0.0 mx.test Service closing transmission channel", (await c.CommandAsync("QUIT")).Lines[0]);
        Assert.True(await c.IsClosedAsync());
    }

    [Fact]
    public async Task Plain_transaction_is_spooled_handed_off_and_logged_in_vendor_vocabulary()
    {
        await using var h = await new IntakeHarness().StartAsync();
        await using var c = await EhloAsync(h);
        Assert.Equal("250 2.1.0 Sender <s@example.org> OK", (await c.CommandAsync("MAIL FROM:<s@example.org>")).Lines[0]);
        Assert.Equal("250 2.1.5 Recipient <r@example.com> OK", (await c.CommandAsync("RCPT TO:<r@example.com>")).Lines[0]);
        Assert.Equal(354, (await c.CommandAsync("DATA")).Code);
        await c.SendAsync("Subject: hi\r\n\r\n..leading dot\r\nbody\r\n.\r\n");
        var done = await c.ReadReplyAsync();
        Assert.Equal(250, done.Code);
        var m = await h.NextHandedOffAsync();
        Assert.Equal($"2.0.0 Ok: queued as {m.Mid}", done.Text);
        Assert.Equal(101, m.Mid); // IdSequence seeded at 100
        Assert.Equal("s@example.org", m.Envelope.ReversePath);
        Assert.Equal("client.test", m.Envelope.ClientHelo);
        Assert.Equal("127.0.0.1", m.Envelope.ClientAddress);
        var body = await h.BodyTextAsync(m.Mid);
        Assert.StartsWith("Received: from client.test ([127.0.0.1])\r\n\tby mx.test (MtaSts.Actors) with ESMTP id 101\r\n\tfor <r@example.com>; ", body);
        Assert.EndsWith("\r\nSubject: hi\r\n\r\n.leading dot\r\nbody\r\n", body); // dot-unstuffed (RFC 5321 §4.5.2)
        Assert.Equal(m.BodyLength, body.Length);
        await c.CommandAsync("QUIT");

        await h.WaitForLogAsync(e => e.Event == "icid_close");
        var icid = m.Envelope.Icid;
        var texts = h.LogTexts.ToList();
        Assert.Contains(texts, t => Regex.IsMatch(t, $@"^New SMTP ICID {icid} interface 127\.0\.0\.1 address 127\.0\.0\.1 port {h.Port}$"));
        Assert.Contains($"Start MID 101 ICID {icid}", texts);
        Assert.Contains($"MID 101 ICID {icid} From: <s@example.org>", texts);
        Assert.Contains($"MID 101 ICID {icid} RID 0 To: <r@example.com>", texts);
        Assert.Contains($"MID 101 ready {m.BodyLength} bytes from <s@example.org>", texts);
        Assert.Contains("MID 101 queued for delivery", texts);
        Assert.Contains($"ICID {icid} close", texts);
        Assert.True(texts.IndexOf($"MID 101 ready {m.BodyLength} bytes from <s@example.org>") < texts.IndexOf("MID 101 queued for delivery"));
        var rcpt = h.Entries.Single(e => e.Event == "mid_rcpt");
        Assert.Contains(("mid", (object?)101L), rcpt.Fields);
        Assert.Contains(("rid", (object?)0), rcpt.Fields);
        Assert.Contains(("icid", (object?)icid), rcpt.Fields);
    }

    [Fact]
    public async Task Pipelined_commands_get_replies_in_order()
    {
        await using var h = await new IntakeHarness().StartAsync();
        await using var c = await h.ConnectAsync();
        // RFC 2920: one write, replies in order; the failed RCPT does not disturb the rest.
        await c.SendAsync("EHLO pipe.test\r\nMAIL FROM:<a@x.test>\r\nRCPT TO:<b@y.test>\r\nRCPT TO:<bad\r\nRCPT TO:<c@z.test>\r\nNOOP\r\nDATA\r\n");
        Assert.Equal(250, (await c.ReadReplyAsync()).Code);
        Assert.StartsWith("250 2.1.0", (await c.ReadReplyAsync()).Lines[0]);
        Assert.StartsWith("250 2.1.5 Recipient <b@y.test>", (await c.ReadReplyAsync()).Lines[0]);
        Assert.StartsWith("501 5.1.3", (await c.ReadReplyAsync()).Lines[0]);
        Assert.StartsWith("250 2.1.5 Recipient <c@z.test>", (await c.ReadReplyAsync()).Lines[0]);
        Assert.StartsWith("250 2.0.0", (await c.ReadReplyAsync()).Lines[0]);
        Assert.Equal(354, (await c.ReadReplyAsync()).Code);
        // End of data, a second whole transaction and QUIT in one write.
        await c.SendAsync("one\r\n.\r\nMAIL FROM:<>\r\nRCPT TO:<d@w.test>\r\nDATA\r\n");
        Assert.StartsWith("250 2.0.0 Ok: queued as", (await c.ReadReplyAsync()).Lines[0]);
        Assert.StartsWith("250 2.1.0 Sender <> OK", (await c.ReadReplyAsync()).Lines[0]);
        Assert.StartsWith("250 2.1.5", (await c.ReadReplyAsync()).Lines[0]);
        Assert.Equal(354, (await c.ReadReplyAsync()).Code);
        await c.SendAsync("two\r\n.\r\nQUIT\r\n");
        Assert.StartsWith("250 2.0.0", (await c.ReadReplyAsync()).Lines[0]);
        Assert.Equal(221, (await c.ReadReplyAsync()).Code);

        var first = await h.NextHandedOffAsync();
        Assert.Equal(["b@y.test", "c@z.test"], first.Envelope.Recipients.Select(r => r.Address));
        Assert.Equal([0, 1], first.Envelope.Recipients.Select(r => r.Rid));
        var second = await h.NextHandedOffAsync();
        Assert.Equal("", second.Envelope.ReversePath); // null reverse-path
        Assert.Equal(2, h.Spool.Count);
    }

    [Fact]
    public async Task Malformed_and_out_of_sequence_commands_get_precise_replies()
    {
        await using var h = await new IntakeHarness(o => o with { MaxErrors = 100 }).StartAsync();
        await using var c = await h.ConnectAsync();
        async Task Expect(string command, string expectedStart) =>
            Assert.StartsWith(expectedStart, (await c.CommandAsync(command)).Lines[0]);

        await Expect("MAIL FROM:<a@x.test>", "503 5.5.1");
        await Expect("EHLO", "501 5.5.4");
        await Expect("FOO bar", "500 5.5.1");
        await Expect("", "500 5.5.2");
        await Expect("EXPN staff", "502 5.5.1");
        await Expect("BDAT 10 LAST", "502 5.5.1");
        await Expect("STARTTLS", "502 5.5.1"); // no certificate
        await Expect("AUTH PLAIN", "502 5.5.1"); // no users
        await Expect("EHLO client.test", "250");
        await Expect("RCPT TO:<b@y.test>", "503 5.5.1");
        await Expect("DATA", "503 5.5.1");
        await Expect("MAIL TO:<a@x.test>", "501 5.5.4");
        await Expect("MAIL FROM:<a@@x.test>", "501 5.1.7");
        await Expect("MAIL FROM:<a@x..test>", "501 5.1.7");
        await Expect("MAIL FROM:<a@x.test", "501 5.1.7");
        await Expect("MAIL FROM:<a@x.test> FOO=BAR", "555 5.5.4");
        await Expect("MAIL FROM:<a@x.test> SIZE=abc", "501 5.5.4");
        await Expect("MAIL FROM:<a@x.test> BODY=BINARYMIME", "501 5.5.4");
        await Expect("MAIL FROM:<a@x.test> RET=ALL", "501 5.5.4");
        await Expect("MAIL FROM:<a@x.test> SIZE=1 SIZE=2", "501 5.5.4");
        await Expect("MAIL FROM:<@relay.test:a@x.test>", "250 2.1.0 Sender <a@x.test>"); // source route ignored (§4.1.1.3)
        await Expect("MAIL FROM:<b@x.test>", "503 5.5.1");
        await Expect("DATA", "554 5.5.1");
        await Expect("RCPT TO:<>", "501 5.1.3");
        await Expect("RCPT TO:<b@y.test> NOTIFY=NEVER,SUCCESS", "501 5.5.4");
        await Expect("RCPT TO:<b@y.test> NOTIFY=SOMETIMES", "501 5.5.4");
        await Expect("RCPT TO:<b@y.test> ORCPT=rfc822;b+zz@y.test", "501 5.5.4");
        await Expect("RCPT TO:<b@[127.0.0.1]>", "250 2.1.5");
        await Expect("RCPT TO:<\"quoted local\"@y.test>", "250 2.1.5");
        await Expect("RCPT TO: <spaced@y.test>", "250 2.1.5");
        await Expect("RSET now", "501 5.5.4");
        await Expect("RSET", "250 2.0.0");
        await Expect("DATA", "503 5.5.1");
        await Expect("VRFY someone", "252 2.5.0");
        await Expect("VRFY", "501 5.5.4");
        await Expect("NOOP anything", "250 2.0.0");
        await Expect("HELP", "214 2.0.0");
        await Expect("DATA now", "503 5.5.1");
        await Expect("HELO old.client", "250 mx.test");
        await Expect("MAIL FROM:<a@x.test> SIZE=10", "555 5.5.4"); // no ESMTP parameters after HELO
        await Expect("MAIL FROM:<a@x.test>", "250 2.1.0");
        await Expect("QUIT", "221 2.0.0");
    }

    [Fact]
    public async Task Too_many_errors_close_the_session()
    {
        await using var h = await new IntakeHarness(o => o with { MaxErrors = 3 }).StartAsync();
        await using var c = await h.ConnectAsync();
        for (int i = 0; i < 3; i++) Assert.Equal(500, (await c.CommandAsync("BOGUS")).Code);
        await c.SendAsync("BOGUS\r\n");
        Assert.Equal(500, (await c.ReadReplyAsync()).Code);
        Assert.StartsWith("421 4.7.0", (await c.ReadReplyAsync()).Lines[0]);
        Assert.True(await c.IsClosedAsync());
    }

    [Fact]
    public async Task Overlong_command_lines_get_500_and_the_session_stays_in_sync()
    {
        await using var h = await new IntakeHarness().StartAsync();
        await using var c = await h.ConnectAsync();
        Assert.Equal("500 5.5.2 Line too long", (await c.CommandAsync("NOOP " + new string('x', 600))).Lines[0]);
        Assert.Equal("500 5.5.2 Line too long", (await c.CommandAsync("NOOP " + new string('y', 100_000))).Lines[0]);
        Assert.StartsWith("250 2.0.0", (await c.CommandAsync("NOOP")).Lines[0]);
        Assert.Equal(250, (await c.CommandAsync("EHLO client.test")).Code);
        // MAIL may exceed 512 by the parameter allowance (ENVID/AUTH=, RFC 3461 §4, RFC 4954 §5).
        Assert.StartsWith("250 2.1.0", (await c.CommandAsync("MAIL FROM:<a@x.test> AUTH=<> ENVID=" + new string('e', 100) + " BODY=8BITMIME SIZE=1000" + new string(' ', 400))).Lines[0]);
    }

    [Fact]
    public async Task Overlong_text_line_rejects_the_message_after_the_final_dot()
    {
        await using var h = await new IntakeHarness().StartAsync();
        await using var c = await EhloAsync(h);
        await c.CommandAsync("MAIL FROM:<a@x.test>");
        await c.CommandAsync("RCPT TO:<b@y.test>");
        Assert.Equal(354, (await c.CommandAsync("DATA")).Code);
        await c.SendAsync("Subject: long\r\n\r\n" + new string('z', 999) + "\r\nshort\r\n.\r\n"); // 1001 octets with CRLF
        Assert.Equal("500 5.5.2 Line too long", (await c.ReadReplyAsync()).Lines[0]);
        Assert.Equal(0, h.Spool.Count);
        // The connection is still usable: a line of exactly 1000 octets (with CRLF) is fine.
        await c.CommandAsync("MAIL FROM:<a@x.test>");
        await c.CommandAsync("RCPT TO:<b@y.test>");
        await c.CommandAsync("DATA");
        await c.SendAsync(new string('z', 998) + "\r\n.\r\n");
        Assert.Equal(250, (await c.ReadReplyAsync()).Code);
        Assert.Equal(1, h.Spool.Count);
    }

    [Fact]
    public async Task Too_many_recipients_get_452()
    {
        await using var h = await new IntakeHarness(o => o with { MaxRecipients = 3 }).StartAsync();
        await using var c = await EhloAsync(h);
        await c.CommandAsync("MAIL FROM:<a@x.test>");
        for (int i = 0; i < 3; i++) Assert.Equal(250, (await c.CommandAsync($"RCPT TO:<r{i}@y.test>")).Code);
        Assert.Equal("452 4.5.3 Too many recipients", (await c.CommandAsync("RCPT TO:<r3@y.test>")).Lines[0]);
        await c.CommandAsync("DATA");
        await c.SendAsync("x\r\n.\r\n");
        Assert.Equal(250, (await c.ReadReplyAsync()).Code);
        Assert.Equal(3, (await h.NextHandedOffAsync()).Envelope.Recipients.Count);
    }

    [Fact]
    public async Task Oversize_is_refused_by_SIZE_parameter_and_by_actual_size()
    {
        await using var h = await new IntakeHarness(o => o with { MaxMessageSize = 2000 }).StartAsync();
        await using var c = await EhloAsync(h);
        Assert.Equal("552 5.3.4 Message size exceeds fixed maximum message size", (await c.CommandAsync("MAIL FROM:<a@x.test> SIZE=2001")).Lines[0]);
        Assert.Equal(250, (await c.CommandAsync("MAIL FROM:<a@x.test> SIZE=1500")).Code);
        await c.CommandAsync("RCPT TO:<b@y.test>");
        await c.CommandAsync("DATA");
        var line = new string('q', 98) + "\r\n";
        await c.SendAsync(string.Concat(Enumerable.Repeat(line, 25)) + ".\r\n"); // 2500 octets
        Assert.Equal("552 5.3.4 Message size exceeds fixed maximum message size", (await c.ReadReplyAsync()).Lines[0]);
        Assert.Equal(0, h.Spool.Count);
        await c.CommandAsync("MAIL FROM:<a@x.test>");
        await c.CommandAsync("RCPT TO:<b@y.test>");
        await c.CommandAsync("DATA");
        await c.SendAsync(string.Concat(Enumerable.Repeat(line, 20)) + ".\r\n"); // 2000 octets: exactly the limit
        Assert.Equal(250, (await c.ReadReplyAsync()).Code);
    }

    [Fact]
    public async Task Dsn_and_body_parameters_are_parsed_into_the_envelope()
    {
        await using var h = await new IntakeHarness().StartAsync();
        await using var c = await EhloAsync(h);
        Assert.Equal(250, (await c.CommandAsync("MAIL FROM:<a@x.test> RET=HDRS ENVID=QQ+2B1+3Dx BODY=8BITMIME SIZE=100")).Code);
        Assert.Equal(250, (await c.CommandAsync("RCPT TO:<b@y.test> NOTIFY=SUCCESS,DELAY ORCPT=rfc822;B+2Bx@Y.test")).Code);
        Assert.Equal(250, (await c.CommandAsync("RCPT TO:<c@z.test> notify=never")).Code);
        Assert.Equal(250, (await c.CommandAsync("RCPT TO:<d@z.test>")).Code);
        await c.CommandAsync("DATA");
        await c.SendAsync("x\r\n.\r\n");
        Assert.Equal(250, (await c.ReadReplyAsync()).Code);
        var m = await h.NextHandedOffAsync();
        // Check what was fsync'd, not only what was handed off.
        var stored = h.Spool.Recover().Single(r => r.Message.Mid == m.Mid).Message.Envelope;
        Assert.Equal("QQ+1=x", stored.EnvId);
        Assert.Equal(DsnRet.Headers, stored.Ret);
        Assert.True(stored.EightBitMime);
        Assert.False(stored.SmtpUtf8);
        Assert.Equal(new Recipient(0, "b@y.test", DsnNotify.Success | DsnNotify.Delay, "rfc822;B+x@Y.test"), stored.Recipients[0]);
        Assert.Equal(new Recipient(1, "c@z.test", DsnNotify.Never), stored.Recipients[1]);
        Assert.Equal(new Recipient(2, "d@z.test"), stored.Recipients[2]);
    }

    [Fact]
    public async Task Smtputf8_addresses_need_the_parameter()
    {
        await using var h = await new IntakeHarness().StartAsync();
        await using var c = await EhloAsync(h);
        Assert.StartsWith("553 5.6.7", (await c.CommandAsync("MAIL FROM:<пользователь@пример.рф>")).Lines[0]);
        Assert.Equal(250, (await c.CommandAsync("MAIL FROM:<пользователь@пример.рф> SMTPUTF8")).Code);
        Assert.Equal(250, (await c.CommandAsync("RCPT TO:<δοκιμή@παράδειγμα.δοκιμή> ORCPT=utf-8;\\x{3B4}x@y")).Code);
        await c.CommandAsync("DATA");
        await c.SendAsync("Subject: ünïcödé\r\n\r\nx\r\n.\r\n");
        Assert.Equal(250, (await c.ReadReplyAsync()).Code);
        var m = await h.NextHandedOffAsync();
        Assert.True(m.Envelope.SmtpUtf8);
        Assert.Equal("пользователь@пример.рф", m.Envelope.ReversePath);
        Assert.Equal("δοκιμή@παράδειγμα.δοκιμή", m.Envelope.Recipients[0].Address);
        Assert.Equal("utf-8;δx@y", m.Envelope.Recipients[0].OriginalRecipient);
        Assert.Contains(" with UTF8SMTP id ", await h.BodyTextAsync(m.Mid));
    }

    [Fact]
    public async Task Relaying_is_denied_outside_the_relay_networks()
    {
        // Loopback is not in the relay networks here, so the test client is a stranger.
        await using var h = await new IntakeHarness(o => o with { RelayNetworks = [IPNetwork.Parse("10.0.0.0/8")] }).StartAsync();
        await using var c = await EhloAsync(h);
        Assert.Equal(250, (await c.CommandAsync("MAIL FROM:<a@x.test>")).Code);
        Assert.Equal("554 5.7.1 Relaying denied", (await c.CommandAsync("RCPT TO:<b@y.test>")).Lines[0]);
        Assert.Equal("554 5.5.1 No valid recipients", (await c.CommandAsync("DATA")).Lines[0]);
        Assert.Equal(0, h.Spool.Count);
        var denied = await h.WaitForLogAsync(e => e.Event == "icid_relay_denied");
        Assert.Matches(@"^ICID \d+ Relaying denied address 127\.0\.0\.1 To: <b@y\.test>$", denied.Text);
    }

    [Fact]
    public async Task Command_timeout_gets_421_and_close()
    {
        await using var h = await new IntakeHarness(o => o with { CommandTimeout = TimeSpan.FromSeconds(1) }).StartAsync();
        await using var c = await h.ConnectAsync();
        var r = await c.ReadReplyAsync(); // send nothing; the server gives up
        Assert.Equal("421 4.4.2 mx.test Error: timeout exceeded", r.Lines[0]);
        Assert.True(await c.IsClosedAsync());
        await h.WaitForLogAsync(e => e.Event == "icid_timeout");
    }

    [Fact]
    public async Task Data_timeout_gets_421_and_nothing_is_spooled()
    {
        await using var h = await new IntakeHarness(o => o with { DataTimeout = TimeSpan.FromSeconds(1) }).StartAsync();
        await using var c = await EhloAsync(h);
        await c.CommandAsync("MAIL FROM:<a@x.test>");
        await c.CommandAsync("RCPT TO:<b@y.test>");
        await c.CommandAsync("DATA");
        await c.SendAsync("Subject: slow\r\n"); // and then nothing
        Assert.StartsWith("421 4.4.2", (await c.ReadReplyAsync()).Lines[0]);
        Assert.True(await c.IsClosedAsync());
        Assert.Equal(0, h.Spool.Count);
    }

    [Fact]
    public async Task Sessions_beyond_the_limit_get_421()
    {
        await using var h = await new IntakeHarness(o => o with { MaxConcurrentSessions = 1 }).StartAsync();
        await using var first = await h.ConnectAsync();
        await using var second = await h.ConnectAsync(readGreeting: false);
        Assert.StartsWith("421 4.3.2", (await second.ReadReplyAsync()).Lines[0]);
        Assert.True(await second.IsClosedAsync());
        Assert.StartsWith("250", (await first.CommandAsync("NOOP")).Lines[0]);
        await first.CommandAsync("QUIT");
        await h.WaitForLogAsync(e => e.Event == "icid_close" && h.Listener.ActiveSessions == 0);
        await using var third = await h.ConnectAsync(); // the slot is free again
    }
}
