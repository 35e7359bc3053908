using System.Collections.Concurrent;
using MailKit.Net.Smtp;
using MimeKit;
using MtaSts.Actors.Engine.Hosting;
using MtaSts.Actors.TestInfra.Smtp;

namespace MtaSts.Actors.Engine.Tests.Hosting;

/// <summary>Destination controls change without a restart; a broken reload keeps the previous configuration.</summary>
public sealed class ConfigReloadTests : IAsyncLifetime
{
    private readonly string _dir = Path.Combine(Path.GetTempPath(), "mtasts-reload-" + Guid.NewGuid().ToString("N"));
    private readonly ConcurrentQueue<string> _log = new();
    private string ControlsFile => Path.Combine(_dir, "controls.conf");

    public Task InitializeAsync()
    {
        Directory.CreateDirectory(_dir);
        return Task.CompletedTask;
    }

    public Task DisposeAsync()
    {
        try { Directory.Delete(_dir, true); } catch (IOException) { }
        return Task.CompletedTask;
    }

    private async Task<Gateway> StartAsync(int mxPort)
    {
        var config = GatewayConfig.Load(GatewayConfig.DefaultFiles().Append(ControlsFile), $$"""
            mtasts {
              data-dir = "{{_dir.Replace("\\", "/")}}/data"
              listener.endpoints = ["127.0.0.1:0"]
              delivery {
                mx-override { "*" = "127.0.0.1:{{mxPort}}" }
                connection-idle-time = 200ms
              }
              log.text = ""
            }
            mtasts.destinations.default.tls-support = none
            mtasts.destinations.default.mta-sts = off   # no DNS for the test domains
            """);
        var gw = await Gateway.StartAsync(config);
        gw.Log.Written += e => _log.Enqueue(e.Text);
        return gw;
    }

    private static async Task SendAsync(Gateway gw, string to, string from = "app@sender.test")
    {
        var msg = new MimeMessage();
        msg.From.Add(MailboxAddress.Parse(from.Length == 0 ? "postmaster@receiver.test" : from));
        msg.To.Add(MailboxAddress.Parse(to));
        msg.Subject = "reload";
        msg.Body = new TextPart("plain") { Text = "hello" };
        using var c = new SmtpClient();
        await c.ConnectAsync("127.0.0.1", gw.SmtpEndpoints[0].Port, MailKit.Security.SecureSocketOptions.None);
        await c.SendAsync(msg, new MailboxAddress("", from), msg.To.Mailboxes);
        await c.DisconnectAsync(true);
    }

    private static async Task WriteAsync(string path, string text)
    {
        await File.WriteAllTextAsync(path, text);
        // Poll-based watcher: make sure the modification time moves even on coarse file systems.
        File.SetLastWriteTimeUtc(path, DateTime.UtcNow.AddSeconds(Random.Shared.Next(1, 1000)));
    }

    private async Task WaitLogAsync(string fragment)
    {
        var deadline = DateTime.UtcNow.AddSeconds(30);
        while (!_log.Any(l => l.Contains(fragment, StringComparison.Ordinal)))
        {
            Assert.True(DateTime.UtcNow < deadline, $"log line '{fragment}' not seen:\n{string.Join("\n", _log)}");
            await Task.Delay(50);
        }
    }

    [Fact]
    public async Task A_reloaded_limit_releases_held_mail_and_a_bad_reload_keeps_the_previous_controls()
    {
        // 0 recipients per window holds the destination's mail (vendor semantics).
        await WriteAsync(ControlsFile, "mtasts.destinations.\"hold.test\".recipient-limit { recipients = 0\nminutes = 1 }\n");
        await using var mx = TestSmtpReceiver.Start(new TestSmtpReceiverOptions { OfferStartTls = false });
        await using var gw = await StartAsync(mx.Port);
        Assert.Equal(0, gw.Destinations.Resolve("hold.test").Profile.RecipientLimit!.Recipients);

        await SendAsync(gw, "x@hold.test");
        await SendAsync(gw, "y@free.test");
        await mx.WaitForMessagesAsync(1, TimeSpan.FromSeconds(30));
        await Task.Delay(1000);
        Assert.Equal("y@free.test", Assert.Single(Assert.Single(mx.Messages).Recipients).Address);

        // A broken edit: rejected with the profile, the setting and the range; the hold stays.
        await WriteAsync(ControlsFile, "mtasts.destinations.\"hold.test\".max-concurrent-connections = 5000\n");
        await WaitLogAsync("previous configuration stays in force");
        Assert.Contains(_log, l => l.Contains("max-concurrent-connections", StringComparison.Ordinal));
        Assert.Equal(0, gw.Destinations.Resolve("hold.test").Profile.RecipientLimit!.Recipients);
        Assert.Single(mx.Messages);

        // A good edit lifts the limit: the held mail goes without a restart.
        await WriteAsync(ControlsFile, "mtasts.destinations.\"hold.test\".max-concurrent-connections = 2\n");
        await WaitLogAsync("Destination controls reloaded");
        var got = await mx.WaitForMessagesAsync(2, TimeSpan.FromSeconds(30));
        Assert.Contains(got, m => m.Recipients.Any(r => r.Address == "x@hold.test"));
        Assert.Equal(2, gw.Destinations.Resolve("hold.test").Profile.MaxConcurrentConnections);
    }

    private async Task ApplyAsync(Gateway gw, string controls, Func<GatewayConfig, bool> applied)
    {
        await WriteAsync(ControlsFile, controls);
        var deadline = DateTime.UtcNow.AddSeconds(30);
        while (!applied(gw.Configuration))
        {
            Assert.True(DateTime.UtcNow < deadline, $"reload not applied:\n{string.Join("\n", _log)}");
            gw.ReloadConfiguration();
            await Task.Delay(50);
        }
    }

    [Fact]
    public async Task A_rotated_bounce_verification_key_applies_to_tagging_and_verification_without_a_restart()
    {
        const string Key1 = "{ id = 1, secret = \"reload-secret-one-0123\" }", Key2 = "{ id = 2, secret = \"reload-secret-two-0123\" }";
        static string Controls(string keys) =>
            $"mtasts.bounce-verification {{ keys = [{keys}], domains = [\"example.org\"] }}\nmtasts.destinations.default.bounce-verification = on\n";
        await WriteAsync(ControlsFile, Controls(Key1));
        await using var mx = TestSmtpReceiver.Start(new TestSmtpReceiverOptions { OfferStartTls = false });
        await using var gw = await StartAsync(mx.Port);

        await SendAsync(gw, "bob@partner.test", from: "alice@example.org");
        var oldTag = (await mx.WaitForMessagesAsync(1, TimeSpan.FromSeconds(30)))[0].MailFrom;
        Assert.StartsWith("prvs=1", oldTag);

        // Rotation: key 2 appended signs new mail; a bounce to the key-1 tag still verifies.
        await ApplyAsync(gw, Controls($"{Key1}, {Key2}"), c => c.BounceVerification?.Current.Id == 2);
        await SendAsync(gw, "carol@partner.test", from: "alice@example.org");
        await SendAsync(gw, oldTag, from: "");
        var got = await mx.WaitForMessagesAsync(3, TimeSpan.FromSeconds(30));
        Assert.StartsWith("prvs=2", Assert.Single(got, m => m.Recipients[0].Address == "carol@partner.test").MailFrom);
        Assert.Single(got, m => m.MailFrom.Length == 0 && m.Recipients[0].Address == "alice@example.org");

        // Key 1 retired: its tag is refused at the listener.
        await ApplyAsync(gw, Controls(Key2), c => c.BounceVerification?.Current.Id == 2 && c.HoconText.Contains("reload-secret-one") == false);
        var e = await Assert.ThrowsAsync<SmtpCommandException>(() => SendAsync(gw, oldTag, from: ""));
        Assert.Contains("Bounce verification failed: tag signed with unknown key 1", e.Message);
    }

    [Fact]
    public void A_source_address_must_be_an_ip_or_a_named_virtual_gateway()
    {
        File.WriteAllText(ControlsFile, "mtasts.destinations.\"a.test\".source-address = vg-bulk\n");
        var e = Assert.Throws<GatewayConfigException>(() => GatewayConfig.Load(GatewayConfig.DefaultFiles().Append(ControlsFile)));
        Assert.Contains(e.Errors, x => x.Contains("vg-bulk", StringComparison.Ordinal) && x.Contains("virtual gateway", StringComparison.Ordinal));

        var ok = GatewayConfig.Load(GatewayConfig.DefaultFiles().Append(ControlsFile), "mtasts.virtual-gateways { \"vg-bulk\" = \"127.0.0.2\" }");
        Assert.Equal("127.0.0.2", ok.SourceAddressFor(ok.Destinations.Resolve("a.test").Profile.SourceAddress)!.ToString());
        Assert.Null(ok.SourceAddressFor(null));
    }
}
