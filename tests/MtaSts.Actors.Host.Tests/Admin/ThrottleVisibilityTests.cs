using System.Net.Http.Headers;
using System.Text.Json;
using System.Text.RegularExpressions;
using MailKit.Net.Smtp;
using Microsoft.Playwright;
using MimeKit;
using MtaSts.Actors.Admin;
using MtaSts.Actors.Engine.Hosting;
using MtaSts.Actors.TestInfra.Smtp;

namespace MtaSts.Actors.Host.Tests.Admin;

/// <summary>
/// A destination throttled by a receiver's reply is shown where destinations are shown: the admin API (queue row and
/// status), the CLI's <c>queue show</c> and the metric. In process: a gateway and its admin endpoint; the receiver
/// greets every session with "421 4.7.0 Too many connections from your IP" (the built-in too-many-connections rule).
/// </summary>
public sealed class ThrottleVisibilityTests : IAsyncLifetime
{
    private const string Token = "test-admin-token-throttle-0123";
    private readonly string _dir = Path.Combine(Path.GetTempPath(), "mtasts-throttle-admin-" + Guid.NewGuid().ToString("N"));
    private TestSmtpReceiver _mx = null!;
    private Gateway _gw = null!;

    public async Task InitializeAsync()
    {
        _mx = TestSmtpReceiver.Start(new TestSmtpReceiverOptions { OfferStartTls = false });
        _mx.ReplyAt(SmtpPhase.Banner, "421 4.7.0 Too many connections from your IP");
        _gw = await Gateway.StartAsync(GatewayConfig.Load(GatewayConfig.DefaultFiles(), $$"""
            mtasts {
              data-dir = "{{Path.Combine(_dir, "data").Replace("\\", "/")}}"
              listener.endpoints = ["127.0.0.1:0"]
              delivery.mx-override { "*" = "127.0.0.1:{{_mx.Port}}" }
              log.text = ""
            }
            mtasts.destinations.default { tls-support = none, mta-sts = off }
            mtasts.destinations."throttled.test".throttle-rules = [{ name = never-on-5xx, code = 5xx, text = "blocked", action = none }]
            """));
    }

    [Fact]
    public async Task A_throttled_destination_shows_its_rule_and_limits_in_the_api_the_cli_and_the_metrics()
    {
        await using var admin = await AdminServer.StartAsync(_gw, AdminOptions.FromHocon(Akka.Configuration.ConfigurationFactory.ParseString(
            $"mtasts.admin {{ endpoints = [\"127.0.0.1:0\"], token = \"{Token}\" }}")));
        using var http = new HttpClient { BaseAddress = admin.Urls[0] };
        http.DefaultRequestHeaders.Authorization = new AuthenticationHeaderValue("Bearer", Token);

        var msg = new MimeMessage();
        msg.From.Add(MailboxAddress.Parse("app@sender.test"));
        msg.To.Add(MailboxAddress.Parse("someone@throttled.test"));
        msg.Subject = "throttle";
        msg.Body = new TextPart("plain") { Text = "hello" };
        using (var client = new SmtpClient())
        {
            await client.ConnectAsync("127.0.0.1", _gw.SmtpEndpoints[0].Port, MailKit.Security.SecureSocketOptions.None);
            await client.SendAsync(msg);
            await client.DisconnectAsync(true);
        }

        JsonElement row = default, status = default;
        var deadline = DateTime.UtcNow + TimeSpan.FromMinutes(1);
        while (row.ValueKind != JsonValueKind.Object)
        {
            using var doc = JsonDocument.Parse(await http.GetStringAsync("api/queue/throttled.test"));
            if (doc.RootElement.GetProperty("destination") is { ValueKind: JsonValueKind.Object } d
                && d.GetProperty("throttle").ValueKind == JsonValueKind.Object)
                (row, status) = (d.Clone(), doc.RootElement.GetProperty("status").Clone());
            Assert.True(DateTime.UtcNow < deadline, "the destination was not throttled");
            await Task.Delay(100);
        }
        var throttle = row.GetProperty("throttle");
        Assert.Equal("too-many-connections", throttle.GetProperty("rule").GetString());
        Assert.Equal("421 4.7.0 Too many connections from your IP", throttle.GetProperty("reply").GetString());
        Assert.Equal(1, throttle.GetProperty("connections").GetInt32());
        Assert.False(throttle.GetProperty("ramping").GetBoolean());
        Assert.Equal("too-many-connections", status.GetProperty("throttle").GetProperty("rule").GetString());

        using (var profile = JsonDocument.Parse(await http.GetStringAsync("api/profiles/throttled.test")))
        {
            var rule = Assert.Single(profile.RootElement.GetProperty("throttle_rules").EnumerateArray());
            Assert.Equal("never-on-5xx", rule.GetProperty("name").GetString());
            Assert.Equal("blocked", rule.GetProperty("pattern").GetString());
        }

        var metrics = await http.GetStringAsync("metrics");
        Assert.Matches(new Regex(@"^mtasts_destination_throttled_total\{destination=""throttled\.test"",rule=""too-many-connections""\} [1-9]",
            RegexOptions.Multiline), metrics);

        var cli = await CliRun.RunAsync(null, "queue", "show", "throttled.test", "--admin", admin.Urls[0].ToString().TrimEnd('/'), "--token", Token);
        Assert.True(cli.Exit == 0, cli.ToString());
        Assert.Contains("throttled by rule too-many-connections (421 4.7.0 Too many connections from your IP): 1 connection, held until", cli.Stdout);

        // The status page (Debian's chromium, as AdminPageTests): the queue row and the destination's detail.
        Assert.True(File.Exists("/usr/bin/chromium"), "chromium missing: run tests/setup-env.sh");
        using var playwright = await Playwright.CreateAsync();
        await using var browser = await playwright.Chromium.LaunchAsync(new BrowserTypeLaunchOptions
        {
            ExecutablePath = "/usr/bin/chromium", Headless = true, Args = ["--no-sandbox", "--disable-gpu"],
        });
        var page = await browser.NewPageAsync();
        page.SetDefaultTimeout(60_000);
        await page.GotoAsync(admin.Urls[0].ToString());
        await page.Locator("#token").FillAsync(Token);
        await page.Locator("#connect").ClickAsync();
        var pageRow = page.Locator("#queue tr.dest[data-domain='throttled.test']");
        await pageRow.WaitForAsync();
        await page.WaitForFunctionAsync("() => document.querySelector(\"#queue tr.dest[data-domain='throttled.test']\").textContent.includes('throttled (too-many-connections)')");
        await pageRow.ClickAsync();
        await page.WaitForFunctionAsync("() => document.querySelector('#detail-state').textContent.startsWith('throttled by rule too-many-connections (421 4.7.0 Too many connections from your IP): 1 connection,')");
    }

    [Fact]
    public async Task Config_prints_the_throttle_rules_and_refuses_a_bad_one_naming_its_key()
    {
        Directory.CreateDirectory(_dir);
        var conf = Path.Combine(_dir, "throttle.conf");
        await File.WriteAllTextAsync(conf, """
            mtasts.throttle.rules = [{ name = slow, code = 421, text = "slow down", action = limit-connections, factor = 0.5, duration = 5m }]
            mtasts.destinations."gmail.com".throttle-rules = [{ name = g, code = 421, enhanced = "4.7.28", action = suspend, duration = 2m }]
            """);
        var ok = await CliRun.RunAsync(null, "config", "--config", conf);
        Assert.True(ok.Exit == 0, ok.ToString());
        Assert.Contains("throttle-rules g", ok.Stdout);
        Assert.Contains("throttle rules (mtasts.throttle): slow (limit-connections x0.5 for 5m); built-ins on: gmail-rate-limited,", ok.Stdout);

        await File.WriteAllTextAsync(conf, "mtasts.throttle.rules = [{ name = slow, code = 421, action = limit-connections, factor = 1.5, duration = 5m }]");
        var bad = await CliRun.RunAsync(null, "config", "--config", conf);
        Assert.Equal(2, bad.Exit);
        Assert.Contains("mtasts.throttle.rules[0].factor = 1.5: outside (0, 1]", bad.Stdout + bad.Stderr);
    }

    public async Task DisposeAsync()
    {
        await _gw.DisposeAsync();
        await _mx.DisposeAsync();
        try { Directory.Delete(_dir, recursive: true); } catch (IOException) { } catch (UnauthorizedAccessException) { }
    }
}
