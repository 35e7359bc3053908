using System.Net;
using System.Text;
using MtaSts.Actors.Smtp.Batv;
using MtaSts.Actors.Smtp.Tests.Intake;

namespace MtaSts.Actors.Smtp.Tests.Batv;

/// <summary>The listener with bounce verification on for example.org, the client outside the relay networks (as a
/// receiver returning a bounce is): tagged bounces are accepted and relayed untagged, forged ones refused at RCPT.</summary>
public sealed class IntakeBounceVerificationTests
{
    private static readonly BounceAddressTagger Tagger =
        new([new BounceTagKey(4, Encoding.UTF8.GetBytes("listener-test-secret-1234"))], TimeSpan.FromDays(7), ["example.org"]);

    private static IntakeHarness Harness() => new(o => o with
    {
        RelayNetworks = [IPNetwork.Parse("192.0.2.0/24")],
        BounceVerification = () => Tagger,
    });

    private static async Task<RawSmtpClient> BounceAsync(IntakeHarness h)
    {
        var c = await h.ConnectAsync();
        Assert.Equal(250, (await c.CommandAsync("EHLO mx.receiver.test")).Code);
        Assert.Equal(250, (await c.CommandAsync("MAIL FROM:<>")).Code);
        return c;
    }

    [Fact]
    public async Task A_validly_tagged_bounce_is_accepted_and_spooled_for_the_untagged_address()
    {
        await using var h = await Harness().StartAsync();
        var tagged = Tagger.Tag("alice@example.org", DateTimeOffset.UtcNow);
        await using var c = await BounceAsync(h);

        Assert.Equal(250, (await c.CommandAsync($"RCPT TO:<{tagged}>")).Code);
        Assert.Equal(354, (await c.CommandAsync("DATA")).Code);
        await c.SendAsync("Subject: Undelivered Mail\r\n\r\nbounce\r\n.\r\n");
        Assert.Equal(250, (await c.ReadReplyAsync()).Code);

        var m = await h.NextHandedOffAsync();
        Assert.Equal("", m.Envelope.ReversePath);
        Assert.Equal("alice@example.org", Assert.Single(m.Envelope.Recipients).Address);
        var line = await h.WaitForLogAsync(e => e.Event == "mid_bounce_verified");
        Assert.Matches($@"^MID \d+ ICID \d+ Bounce verification passed To: <{System.Text.RegularExpressions.Regex.Escape(tagged)}> key 4: relayed to <alice@example.org>$", line.Text);
    }

    [Theory]
    [InlineData("alice@example.org", "address is not tagged (bounce verification is on for its domain)")]
    [InlineData("prvs=4000abcdef=alice@example.org", "tag signature does not match")]
    [InlineData("prvs=7000abcdef=alice@example.org", "tag signed with unknown key 7")]
    [InlineData("prvs=4000abc=alice@example.org", "malformed prvs tag")]
    public async Task A_forged_or_untagged_bounce_is_refused_with_550_5_7_1_and_logged(string rcpt, string reason)
    {
        await using var h = await Harness().StartAsync();
        await using var c = await BounceAsync(h);

        var reply = await c.CommandAsync($"RCPT TO:<{rcpt}>");

        Assert.Equal($"550 5.7.1 Bounce verification failed: {reason}", reply.Lines[0]);
        var line = await h.WaitForLogAsync(e => e.Event == "icid_bounce_refused");
        Assert.Matches($@"^ICID \d+ MID \d+ Bounce verification failed address 127\.0\.0\.1 To: <{System.Text.RegularExpressions.Regex.Escape(rcpt)}>: {System.Text.RegularExpressions.Regex.Escape(reason)}$", line.Text);
        Assert.Equal(554, (await c.CommandAsync("DATA")).Code); // no valid recipient: nothing is stored
        Assert.Equal(0, h.Spool.Count);
    }

    [Fact]
    public async Task An_expired_tag_is_refused()
    {
        await using var h = await Harness().StartAsync();
        var old = Tagger.Tag("alice@example.org", DateTimeOffset.UtcNow.AddDays(-9));
        await using var c = await BounceAsync(h);

        Assert.Equal("550 5.7.1 Bounce verification failed: tag expired", (await c.CommandAsync($"RCPT TO:<{old}>")).Lines[0]);
    }

    [Fact]
    public async Task A_bounce_to_another_domain_or_mail_with_a_sender_still_needs_relay_rights()
    {
        await using var h = await Harness().StartAsync();
        await using (var c = await BounceAsync(h))
            Assert.Equal("554 5.7.1 Relaying denied", (await c.CommandAsync("RCPT TO:<bob@elsewhere.test>")).Lines[0]);

        var tagged = Tagger.Tag("alice@example.org", DateTimeOffset.UtcNow);
        await using var s = await h.ConnectAsync();
        Assert.Equal(250, (await s.CommandAsync("EHLO mx.receiver.test")).Code);
        Assert.Equal(250, (await s.CommandAsync("MAIL FROM:<someone@receiver.test>")).Code);
        Assert.Equal("554 5.7.1 Relaying denied", (await s.CommandAsync($"RCPT TO:<{tagged}>")).Lines[0]);
    }

    [Fact]
    public async Task Without_bounce_verification_an_outside_bounce_is_not_relayed()
    {
        await using var h = await new IntakeHarness(o => o with { RelayNetworks = [IPNetwork.Parse("192.0.2.0/24")] }).StartAsync();
        var tagged = Tagger.Tag("alice@example.org", DateTimeOffset.UtcNow);
        await using var c = await BounceAsync(h);
        Assert.Equal("554 5.7.1 Relaying denied", (await c.CommandAsync($"RCPT TO:<{tagged}>")).Lines[0]);
    }
}
