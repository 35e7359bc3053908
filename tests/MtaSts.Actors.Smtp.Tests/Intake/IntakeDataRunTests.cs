using System.Text;
using MtaSts.Actors.Smtp.Intake;

namespace MtaSts.Actors.Smtp.Tests.Intake;

/// <summary>DATA takes buffered clean lines as runs written at once: whatever the client's write boundaries (mid-line,
/// between CR and LF, one line per write, everything at once), the stored body is exactly the unstuffed, normalised
/// message.</summary>
public sealed class IntakeDataRunTests
{
    [Theory]
    [InlineData(1, false)]
    [InlineData(2, false)]
    [InlineData(3, true)]
    [InlineData(4, true)]
    public async Task Body_is_byte_exact_whatever_the_write_boundaries(int seed, bool bareLf)
    {
        var random = new Random(seed);
        var wire = new StringBuilder();
        var expected = new StringBuilder();
        for (int i = 0; i < 3000; i++)
        {
            var text = new string((char)('a' + i % 26), random.Next(0, 120));
            switch (random.Next(8))
            {
                case 0: wire.Append("..").Append(text).Append("\r\n"); expected.Append('.').Append(text).Append("\r\n"); break; // §4.5.2
                case 1: wire.Append("\r\n"); expected.Append("\r\n"); break;
                case 2 when bareLf: wire.Append('x').Append(text).Append('\n'); expected.Append('x').Append(text).Append("\r\n"); break;
                default: wire.Append(text).Append("\r\n"); expected.Append(text).Append("\r\n"); break;
            }
        }
        wire.Append(".\r\n");
        await using var h = await new IntakeHarness(o => o with
        {
            AddReceivedHeader = false,
            BareLineEndings = bareLf ? BareLineEndingPolicy.Normalize : BareLineEndingPolicy.Reject,
        }).StartAsync();
        await using var c = await h.OpenDataAsync();
        await SendInRandomWritesAsync(c, wire.ToString(), random, 20000);
        var done = await c.ReadReplyAsync();
        Assert.Equal(250, done.Code);
        var m = await h.NextHandedOffAsync();
        Assert.Equal(expected.ToString(), await h.BodyTextAsync(m.Mid));
    }

    /// <summary>A large body is read through a wider buffer that is handed back at the end of DATA: two 200 KB messages
    /// in one session, each sent in one write with the next transaction's commands pipelined right behind its end of data
    /// (RFC 2920), lines with leading dots and CRLFs wherever the 8 KB and 64 KB reads fall: both bodies are byte-exact
    /// and the pipelined commands are answered in order.</summary>
    [Fact]
    public async Task Large_bodies_with_pipelined_commands_behind_them_stay_exact()
    {
        string Body(int seed, out string expected)
        {
            var random = new Random(seed);
            var wire = new StringBuilder();
            var plain = new StringBuilder();
            while (plain.Length < 200_000)
            {
                var text = new string((char)('a' + random.Next(26)), random.Next(0, 200));
                if (random.Next(5) == 0) { wire.Append("..").Append(text).Append("\r\n"); plain.Append('.').Append(text).Append("\r\n"); }
                else { wire.Append(text).Append("\r\n"); plain.Append(text).Append("\r\n"); }
            }
            expected = plain.ToString();
            return wire.Append(".\r\n").ToString();
        }
        await using var h = await new IntakeHarness(o => o with { AddReceivedHeader = false }).StartAsync();
        await using var c = await h.OpenDataAsync();
        var first = Body(7, out var firstExpected);
        var second = Body(8, out var secondExpected);
        await c.SendAsync(first + "MAIL FROM:<a@x.test>\r\nRCPT TO:<b@y.test>\r\nDATA\r\n");
        Assert.Equal(250, (await c.ReadReplyAsync()).Code);
        Assert.Equal(250, (await c.ReadReplyAsync()).Code);
        Assert.Equal(250, (await c.ReadReplyAsync()).Code);
        Assert.Equal(354, (await c.ReadReplyAsync()).Code);
        await c.SendAsync(second + "QUIT\r\n");
        Assert.Equal(250, (await c.ReadReplyAsync()).Code);
        Assert.Equal(221, (await c.ReadReplyAsync()).Code);
        Assert.Equal(firstExpected, await h.BodyTextAsync((await h.NextHandedOffAsync()).Mid));
        Assert.Equal(secondExpected, await h.BodyTextAsync((await h.NextHandedOffAsync()).Mid));
    }
    /// <summary>Plain lines are taken as whole runs; every line that needs a check (a bare CR or NUL inside, a leading
    /// dot, a bare LF, a line of exactly the maximum length) stops the run and gets the line-by-line treatment, wherever
    /// the client's writes fall.</summary>
    [Theory]
    [InlineData(11)]
    [InlineData(12)]
    [InlineData(13)]
    public async Task Plain_runs_stop_at_every_line_that_needs_a_check(int seed)
    {
        var random = new Random(seed);
        var wire = new StringBuilder();
        var expected = new StringBuilder();
        for (int i = 0; i < 4000; i++)
        {
            var text = new string((char)('a' + i % 26), random.Next(0, 90));
            switch (random.Next(12))
            {
                case 0: wire.Append("..").Append(text).Append("\r\n"); expected.Append('.').Append(text).Append("\r\n"); break;
                case 1: wire.Append(text).Append("\rz\r\n"); expected.Append(text).Append("\r\nz\r\n"); break; // bare CR → CRLF
                case 2: wire.Append(text).Append("\0z\r\n"); expected.Append(text).Append("z\r\n"); break;     // NUL dropped
                case 3: wire.Append('y').Append(text).Append('\n'); expected.Append('y').Append(text).Append("\r\n"); break; // bare LF
                case 4: wire.Append(new string('m', 998)).Append("\r\n"); expected.Append(new string('m', 998)).Append("\r\n"); break; // 1,000 octets: the maximum
                case 5: wire.Append("..\r\n"); expected.Append(".\r\n"); break; // "..": a stuffed lone dot
                default: wire.Append(text).Append("\r\n"); expected.Append(text).Append("\r\n"); break;
            }
        }
        wire.Append("last\r\n.\r\n"); // a "." right after a bare-LF line would be a lookalike end (refused)
        expected.Append("last\r\n");
        await using var h = await new IntakeHarness(o => o with { AddReceivedHeader = false, BareLineEndings = BareLineEndingPolicy.Normalize }).StartAsync();
        await using var c = await h.OpenDataAsync();
        await SendInRandomWritesAsync(c, wire.ToString(), random, 30000);
        Assert.Equal(250, (await c.ReadReplyAsync()).Code);
        var m = await h.NextHandedOffAsync();
        Assert.Equal(expected.ToString(), await h.BodyTextAsync(m.Mid));
    }

    /// <summary>A line one octet over the maximum in the middle of a buffered run of plain lines is still seen: 500 5.5.2
    /// for that message; the same line one octet shorter is taken. In reject mode a NUL or a bare CR inside such a run
    /// refuses the message.</summary>
    [Theory]
    [InlineData(998, BareLineEndingPolicy.Reject, 250)]
    [InlineData(999, BareLineEndingPolicy.Reject, 500)]
    [InlineData(-1, BareLineEndingPolicy.Reject, 550)]  // NUL
    [InlineData(-2, BareLineEndingPolicy.Reject, 550)]  // bare CR
    [InlineData(-2, BareLineEndingPolicy.Normalize, 250)]
    public async Task A_line_that_needs_a_check_inside_a_plain_run_is_seen(int special, BareLineEndingPolicy policy, int code)
    {
        var line = string.Concat(Enumerable.Repeat("plain line of text in a long body\r\n", 1500));
        var odd = special switch { -1 => "nul\0here\r\n", -2 => "bare\rcr\r\n", var n => new string('q', n) + "\r\n" };
        await using var h = await new IntakeHarness(o => o with { AddReceivedHeader = false, BareLineEndings = policy }).StartAsync();
        await using var c = await h.OpenDataAsync();
        await c.SendAsync(line + odd + line + ".\r\n");
        Assert.Equal(code, (await c.ReadReplyAsync()).Code);
    }

    /// <summary>Sends <paramref name="all"/> in writes of 1 octet, a few octets, up to <paramref name="largest"/> octets or all
    /// the rest, at random: DATA must not depend on where the client's writes fall.</summary>
    private static async Task SendInRandomWritesAsync(RawSmtpClient c, string all, Random random, int largest)
    {
        for (int at = 0; at < all.Length;)
        {
            int n = random.Next(4) switch { 0 => 1, 1 => random.Next(1, 64), 2 => random.Next(64, largest), _ => all.Length };
            n = Math.Min(n, all.Length - at);
            await c.SendAsync(all.Substring(at, n));
            at += n;
        }
    }
}
