using System.Net;
using System.Text;
using MtaSts.Actors.Logging;
using MtaSts.Actors.Smtp.Outbound;
using MtaSts.Actors.Spool;
using MtaSts.Actors.TestInfra.Smtp;
using MtaSts.Actors.Tls;

namespace MtaSts.Actors.Smtp.Tests.Outbound;

/// <summary>The body goes out streamed from the spool: byte for byte, CRLF only, dot-stuffed, BODY=8BITMIME from the envelope.</summary>
public sealed class OutboundBodyTests
{
    /// <summary>The rule, written plainly: CRLF stays, a bare CR or bare LF becomes CRLF, a last line gets its CRLF.</summary>
    private static byte[] Reference(byte[] input)
    {
        var o = new List<byte>();
        for (int i = 0; i < input.Length; i++)
        {
            if (input[i] == '\r') { o.Add((byte)'\r'); o.Add((byte)'\n'); if (i + 1 < input.Length && input[i + 1] == '\n') i++; }
            else if (input[i] == '\n') { o.Add((byte)'\r'); o.Add((byte)'\n'); }
            else o.Add(input[i]);
        }
        if (o.Count > 0 && o[^1] != '\n') { o.Add((byte)'\r'); o.Add((byte)'\n'); }
        return o.ToArray();
    }

    private static byte[] Normalize(byte[] input, params int[] cuts)
    {
        var n = new CrlfNormalizer();
        var output = new List<byte>();
        var buffer = new byte[CrlfNormalizer.MaxOutput(input.Length)];
        var start = 0;
        foreach (var end in cuts.Append(input.Length))
        {
            var k = n.Transform(input.AsSpan(start, end - start), buffer);
            output.AddRange(buffer.AsSpan(0, k).ToArray());
            start = end;
        }
        output.AddRange(buffer.AsSpan(0, n.Finish(buffer)).ToArray());
        return output.ToArray();
    }

    [Theory]
    [InlineData("a\r\nb\r\n")]
    [InlineData("a\nb\rc\r\r\n\n\r")]
    [InlineData("\r\n.\n.\r\r.\r\n")]
    [InlineData("no final newline")]
    [InlineData("\r")]
    [InlineData("")]
    public void Every_line_ending_becomes_crlf_wherever_the_chunks_split(string text)
    {
        var input = Encoding.Latin1.GetBytes(text);
        var expected = Reference(input);
        for (int cut = 0; cut <= input.Length; cut++)
            Assert.Equal(expected, Normalize(input, cut));
        for (int a = 0; a <= input.Length; a++)
            for (int b = a; b <= input.Length; b++)
                Assert.Equal(expected, Normalize(input, a, b));
    }

    /// <summary>The DATA form, written plainly: the repaired lines, each that starts with "." given one more (RFC 5321 §4.5.2).</summary>
    private static byte[] Stuffed(byte[] input)
    {
        var o = new List<byte>();
        foreach (var line in Encoding.Latin1.GetString(Reference(input)).Split("\r\n")[..^1])
            o.AddRange(Encoding.Latin1.GetBytes((line.StartsWith('.') ? "." + line : line) + "\r\n"));
        return o.ToArray();
    }

    private static byte[] NormalizeStuffed(byte[] input, params int[] cuts)
    {
        var n = new CrlfNormalizer(dotStuff: true);
        var output = new List<byte>();
        var buffer = new byte[CrlfNormalizer.MaxOutput(input.Length)];
        var start = 0;
        foreach (var end in cuts.Append(input.Length))
        {
            var k = n.Transform(input.AsSpan(start, end - start), buffer);
            Assert.True(k <= CrlfNormalizer.MaxOutput(end - start));
            output.AddRange(buffer.AsSpan(0, k).ToArray());
            start = end;
        }
        output.AddRange(buffer.AsSpan(0, n.Finish(buffer)).ToArray());
        return output.ToArray();
    }

    [Theory]
    [InlineData(".")]
    [InlineData("..\r\n.\r\n")]
    [InlineData(".a\r\n.\n.\r.\r\n..")]
    [InlineData("\r.\r\n\n.x\r\r\n.")]
    [InlineData("a.b\r\n c.\r\n.\r\n\r\n.")]
    [InlineData("no dots\r\nat all")]
    public void Dot_stuffing_in_the_same_pass_stuffs_every_line_start_wherever_the_chunks_split(string text)
    {
        var input = Encoding.Latin1.GetBytes(text);
        var expected = Stuffed(input);
        for (int a = 0; a <= input.Length; a++)
            for (int b = a; b <= input.Length; b++)
                Assert.Equal(Encoding.Latin1.GetString(expected), Encoding.Latin1.GetString(NormalizeStuffed(input, a, b)));
        // Without stuffing the same input is only repaired.
        Assert.Equal(Reference(input), Normalize(input));
    }

    /// <summary>Lines that start with "." right at the 16 KB read-chunk boundaries (after a CRLF, after a CRLF split
    /// across the boundary, after a bare LF) and a lone "." line: each arrives stuffed, the receiver unstuffs them to
    /// the spooled bytes, and the message is not cut short.</summary>
    [Fact]
    public async Task Dots_at_read_chunk_boundaries_are_stuffed_on_the_wire()
    {
        const int chunk = OutboundBody.ChunkSize;
        var body = new byte[4 * chunk + 10];
        for (int i = 0; i < body.Length; i++) body[i] = (byte)('a' + i % 26);
        void At(int pos, string s) => Encoding.ASCII.GetBytes(s).CopyTo(body, pos);
        At(chunk - 2, "\r\n.");          // "." is the first byte of the second chunk
        At(2 * chunk - 1, "\r\n..x");    // CR ends the second chunk, LF starts the third, then a dot line
        At(3 * chunk - 1, "\n.\r\n");    // bare LF ends the third chunk; a lone "." line follows
        At(body.Length - 4, "\r\n.z");
        await using var rx = new RawCaptureReceiver();
        await using var c = Connect(rx.Port);
        Assert.True((await c.ConnectAsync()).Ready);
        using var stream = OutboundBody.FromStream(new MemoryStream(body, writable: false));
        var res = await c.SendAsync(new OutboundMessage(8, "a@sender.test", [new Recipient(0, "b@example.com")], stream));
        Assert.True(res.AllAccepted);
        var wire = Assert.Single(rx.Data);
        Assert.Equal(Encoding.Latin1.GetString([.. Stuffed(body), .. ".\r\n"u8.ToArray()]), Encoding.Latin1.GetString(wire));
    }

    private static OutboundConnection Connect(int port, OutboundOptions? options = null) =>
        new(new MxTarget("mx.example.com", IPAddress.Loopback, port),
            SecurityPlanner.Plan(new SecurityContext("example.com", "mx.example.com", TlsSupport.None, DaneSupport.None, MtaStsMode.None, true, null)),
            options ?? new OutboundOptions { HeloName = "gateway.test" }, MailLog.Null, 1);

    /// <summary>Larger than the 32 KB read chunk, a CRLF split across a chunk boundary, dots at line starts, 8-bit
    /// bytes, a bare LF and a bare CR, no final CRLF: the wire carries exactly the repaired, dot-stuffed bytes.</summary>
    private static byte[] AwkwardBody()
    {
        var sb = new StringBuilder("DKIM-Signature: v=1; a=rsa-sha256;\r\n\tb=abc\r\nSubject: caf\u00e9\r\n\r\n");
        while (sb.Length < 32 * 1024 - 1) sb.Append(".dot line\r\n");
        sb.Length = 32 * 1024 - 1;
        sb.Append("\r\n."); // CR is the last byte of the first chunk, LF the first of the second
        for (int i = 0; i < 3000; i++) sb.Append(i % 7 == 0 ? ".\r\n" : "line \u00ff ").Append(i % 11 == 0 ? "\n" : i % 13 == 0 ? "\r" : "\r\n");
        sb.Append("..last line without CRLF");
        return Encoding.Latin1.GetBytes(sb.ToString());
    }

    [Fact]
    public async Task The_wire_carries_the_spooled_bytes_repaired_and_dot_stuffed()
    {
        await using var rx = new RawCaptureReceiver();
        await using var c = Connect(rx.Port);
        Assert.True((await c.ConnectAsync()).Ready);
        var body = AwkwardBody();
        using var stream = OutboundBody.FromStream(new MemoryStream(body, writable: false));
        var res = await c.SendAsync(new OutboundMessage(5, "a@sender.test", [new Recipient(0, "b@example.com")], stream));
        Assert.True(res.AllAccepted);
        var expected = new List<byte>();
        var lines = Encoding.Latin1.GetString(Reference(body)).Split("\r\n")[..^1];
        foreach (var line in lines) expected.AddRange(Encoding.Latin1.GetBytes((line.StartsWith('.') ? "." + line : line) + "\r\n"));
        expected.AddRange(".\r\n"u8.ToArray());
        var wire = Assert.Single(rx.Data);
        Assert.Equal(Encoding.Latin1.GetString(expected.ToArray()), Encoding.Latin1.GetString(wire));
    }

    [Theory]
    [InlineData(true, true)]
    [InlineData(false, true)]
    [InlineData(false, false)]
    public async Task Body_8bitmime_follows_the_envelope_and_size_is_the_spooled_length(bool eightBit, bool offered)
    {
        await using var rx = TestSmtpReceiver.Start(new TestSmtpReceiverOptions { OfferEightBitMime = offered, MaxSize = 10_000_000 });
        await using var c = Connect(rx.Port);
        Assert.True((await c.ConnectAsync()).Ready);
        var body = Encoding.Latin1.GetBytes("Subject: caf\u00e9\r\nContent-Transfer-Encoding: 8bit\r\n\r\n\u00e9t\u00e9\r\n.x\r\n");
        var res = await c.SendAsync(new OutboundMessage(6, "a@sender.test", [new Recipient(0, "b@example.com")], body, EightBitMime: eightBit));
        Assert.True(res.AllAccepted);
        var m = Assert.Single(rx.Messages);
        Assert.Equal(body, m.Data); // byte for byte after unstuffing: no MIME re-encoding
        Assert.Equal(eightBit && offered, m.MailParameters.Contains("BODY=8BITMIME"));
        Assert.Contains($"SIZE={body.Length}", m.MailParameters);
    }

    private static async Task<(SendResult Result, TestSmtpReceiver Rx)> SendToServerWithout8BitMimeAsync(string body)
    {
        var rx = TestSmtpReceiver.Start(new TestSmtpReceiverOptions { OfferEightBitMime = false, MaxSize = 10_000_000 });
        await using var c = Connect(rx.Port);
        Assert.True((await c.ConnectAsync()).Ready);
        var res = await c.SendAsync(new OutboundMessage(7, "a@sender.test", [new Recipient(0, "b@example.com")],
            Encoding.Latin1.GetBytes(body), EightBitMime: true));
        return (res, rx);
    }

    /// <summary>RFC 6152 §3: 8-bit body parts become quoted-printable (or base64) for a server without 8BITMIME; the
    /// receiver gets 7-bit MIME whose decoded text is the original.</summary>
    [Fact]
    public async Task An_8bit_body_is_converted_to_7bit_mime_for_a_server_without_8bitmime()
    {
        const string text = "\u00e9t\u00e9 \u00e0 la plage\r\n.dot line\r\n";
        var (res, rx) = await SendToServerWithout8BitMimeAsync(
            "From: a@sender.test\r\nTo: b@example.com\r\nSubject: summer\r\nMIME-Version: 1.0\r\n" +
            "Content-Type: text/plain; charset=iso-8859-1\r\nContent-Transfer-Encoding: 8bit\r\n\r\n" + text);
        await using (rx)
        {
            Assert.True(res.AllAccepted);
            var m = Assert.Single(rx.Messages);
            Assert.DoesNotContain("BODY=8BITMIME", m.MailParameters);
            Assert.DoesNotContain(m.Data, b => b >= 0x80);
            var parsed = MimeKit.MimeMessage.Load(new MemoryStream(m.Data));
            Assert.Equal("summer", parsed.Subject);
            var part = Assert.IsType<MimeKit.TextPart>(parsed.Body);
            Assert.NotEqual(MimeKit.ContentEncoding.EightBit, part.ContentTransferEncoding);
            Assert.Equal(text.Replace("\r\n", "\n", StringComparison.Ordinal), part.GetText(Encoding.Latin1).Replace("\r\n", "\n", StringComparison.Ordinal));
        }
    }

    [Fact]
    public async Task A_message_declared_8bit_without_8bit_bytes_goes_as_it_is_without_the_body_parameter()
    {
        const string body = "Subject: plain\r\n\r\nonly ascii\r\n";
        var (res, rx) = await SendToServerWithout8BitMimeAsync(body);
        await using (rx)
        {
            Assert.True(res.AllAccepted);
            var m = Assert.Single(rx.Messages);
            Assert.Equal(Encoding.ASCII.GetBytes(body), m.Data);
            Assert.DoesNotContain("BODY=8BITMIME", m.MailParameters);
        }
    }

    /// <summary>Raw 8-bit in a header has no 7-bit form that keeps the header as sent: returned with 5.6.3.</summary>
    [Fact]
    public async Task An_8bit_header_for_a_server_without_8bitmime_is_refused_permanently_with_5_6_3()
    {
        var (res, rx) = await SendToServerWithout8BitMimeAsync("Subject: caf\u00e9\r\n\r\nbody\r\n");
        await using (rx)
        {
            var r = Assert.Single(res.Recipients);
            Assert.Equal(RecipientStatus.Permanent, r.Status);
            Assert.Equal("5.6.3", r.Reply.Enhanced?.ToString());
            Assert.Empty(rx.Messages);
        }
    }

    /// <summary>RFC 6531 §3.2: SMTPUTF8 mail is not sent to a server that does not offer SMTPUTF8 (returned, 5.6.7).</summary>
    [Fact]
    public async Task Smtputf8_mail_to_a_server_without_smtputf8_is_refused_permanently_with_5_6_7()
    {
        await using var rx = TestSmtpReceiver.Start(new TestSmtpReceiverOptions { OfferSmtpUtf8 = false });
        await using var c = Connect(rx.Port);
        Assert.True((await c.ConnectAsync()).Ready);
        var res = await c.SendAsync(new OutboundMessage(8, "a@sender.test", [new Recipient(0, "b@example.com")],
            Encoding.UTF8.GetBytes("Subject: caf\u00e9\r\n\r\nx\r\n"), EightBitMime: true, SmtpUtf8: true));
        var r = Assert.Single(res.Recipients);
        Assert.Equal(RecipientStatus.Permanent, r.Status);
        Assert.Equal("5.6.7", r.Reply.Enhanced?.ToString());
        Assert.Empty(rx.Messages);
    }
}
