using MailKit.Net.Smtp;
using MtaSts.Actors.TestInfra.Smtp;

namespace MtaSts.Actors.Engine.Tests.EndToEnd;

/// <summary>
/// Bounce verification through a real gateway: mail from our domain (example.org) to a destination whose profile has
/// bounce-verification = on leaves with a prvs-tagged envelope sender; the receiver's bounce to that tagged address,
/// submitted back to the gateway's listener, is verified, untagged and relayed to example.org's own server; a forged
/// bounce is refused at RCPT.
/// </summary>
public sealed class BounceVerificationEndToEndTests
{
    private static readonly TimeSpan Wait = TimeSpan.FromSeconds(60);

    private const string Config = """
        mtasts.bounce-verification {
          keys = [{ id = 3, secret = "end-to-end-secret-0123" }]
          validity = 7d
          domains = ["example.org"]
        }
        mtasts.destinations { "partner.test" { bounce-verification = on } }
        """;

    [Fact]
    public async Task The_sender_is_tagged_and_the_bounce_to_it_is_verified_and_relayed_untagged()
    {
        await using var partner = TestSmtpReceiver.Start(new TestSmtpReceiverOptions { OfferStartTls = false });
        await using var home = TestSmtpReceiver.Start(new TestSmtpReceiverOptions { OfferStartTls = false, Hostname = "mail.example.org" });
        await using var gw = await GatewayFixture.StartAsync(
            $"\"example.org\" = \"127.0.0.1:{home.Port}\"\n\"*\" = \"127.0.0.1:{partner.Port}\"", Config, null);

        await gw.SendAsync("alice@example.org", ["bob@partner.test"], "tagged");
        await gw.SendAsync("alice@example.org", ["carol@other.test"], "not tagged"); // profile off: sender as submitted

        var sent = await gw.ReceivedAsync(partner, 2, Wait);
        var tagged = Assert.Single(sent, m => m.Recipients[0].Address == "bob@partner.test").MailFrom;
        Assert.Matches("^prvs=3[0-9]{3}[0-9a-f]{6}=alice@example\\.org$", tagged);
        Assert.Equal("alice@example.org", Assert.Single(sent, m => m.Recipients[0].Address == "carol@other.test").MailFrom);

        // partner.test bounces the message to the tagged address, through the gateway.
        await gw.SendAsync("", [tagged], "Undelivered Mail Returned to Sender");
        var bounced = Assert.Single(await gw.ReceivedAsync(home, 1, Wait));
        Assert.Equal("", bounced.MailFrom);
        Assert.Equal("alice@example.org", Assert.Single(bounced.Recipients).Address);
        Assert.Contains(gw.Lines, l => l.Contains($"Bounce verification passed To: <{tagged}> key 3: relayed to <alice@example.org>"));
    }

    [Theory]
    [InlineData("alice@example.org", "address is not tagged")]
    [InlineData("prvs=3123abcdef=alice@example.org", "tag signature does not match")]
    public async Task A_forged_bounce_is_refused_at_RCPT_and_nothing_is_relayed(string rcpt, string reason)
    {
        await using var home = TestSmtpReceiver.Start(new TestSmtpReceiverOptions { OfferStartTls = false });
        await using var gw = await GatewayFixture.StartAsync(home.Port, Config);

        var e = await Assert.ThrowsAsync<SmtpCommandException>(() => gw.SendAsync("", [rcpt], "backscatter"));

        Assert.Equal(550, (int)e.StatusCode);
        Assert.Contains("5.7.1 Bounce verification failed: " + reason, e.Message);
        Assert.Contains(gw.Lines, l => l.Contains($"Bounce verification failed address 127.0.0.1 To: <{rcpt}>: {reason}"));
        await Task.Delay(500);
        Assert.Empty(home.Messages);
    }
}
