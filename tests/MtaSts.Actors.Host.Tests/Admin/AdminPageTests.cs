using Microsoft.Playwright;

namespace MtaSts.Actors.Host.Tests.Admin;

/// <summary>
/// The status page in a real browser: Playwright drives Debian's chromium (installed by tests/setup-env.sh; no browser
/// download) against a real <c>serve</c> process. Mail for a held destination appears in the queue table, its detail
/// shows the last error, "Deliver now" reaches the gateway, and the charts draw.
/// </summary>
public sealed class AdminPageTests(AdminGateway gw) : IClassFixture<AdminGateway>
{
    private const string Chromium = "/usr/bin/chromium";

    [Fact]
    public async Task The_page_shows_a_held_destination_its_error_and_deliver_now_works()
    {
        Assert.True(File.Exists(Chromium), "chromium missing: run tests/setup-env.sh");
        await gw.SubmitAsync("page@held-page.test");

        using var playwright = await Playwright.CreateAsync();
        await using var browser = await playwright.Chromium.LaunchAsync(new BrowserTypeLaunchOptions
        {
            ExecutablePath = Chromium, Headless = true, Args = ["--no-sandbox", "--disable-gpu"],
        });
        var page = await browser.NewPageAsync();
        page.SetDefaultTimeout(60_000);
        await page.GotoAsync(gw.Http.BaseAddress!.ToString());

        // No token yet: the page asks for one (the API answered 401), then loads the queue with it.
        await page.Locator("#token").FillAsync(AdminGateway.Token);
        await page.Locator("#connect").ClickAsync();
        var row = page.Locator("#queue tr.dest[data-domain='held-page.test']");
        var steps = new PageSteps(page, gw.LogText);
        await row.WaitForAsync();
        // The first attempt fails (connection refused): the row and the detail show the error.
        await steps.Until("the row shows the 4.4.x error", "() => [...document.querySelectorAll(\"#queue tr.dest[data-domain='held-page.test'] td.err\")].some(td => td.textContent.includes('4.4.'))");
        await row.ClickAsync();
        await steps.Until("the detail shows the error", "() => document.querySelector('#detail-error').textContent.includes('4.4.')");
        Assert.Contains("page@held-page.test", await page.Locator("#messages tbody").InnerTextAsync());

        await page.Locator("#deliver-now").ClickAsync();
        await steps.Until("deliver now answered", "() => document.querySelector('#action-result').textContent === 'deliver now done'");
        var deadline = DateTime.UtcNow + AdminGateway.Generous;
        while (!gw.LogText().Contains("Operator action: deliver now destination held-page.test by admin token from 127.0.0.1"))
        {
            Assert.True(DateTime.UtcNow < deadline, "deliver now not logged");
            await Task.Delay(100);
        }
        // Suspend and resume from the page: the detail and the queue row show the state.
        await page.Locator("#suspend").ClickAsync();
        await steps.Until("the detail says suspended", "() => document.querySelector('#detail-state').textContent.startsWith('suspended since')");
        await steps.Until("the row says suspended", "() => document.querySelector(\"#queue tr.dest[data-domain='held-page.test']\").textContent.includes('suspended')");
        await page.Locator("#resume").ClickAsync();
        await steps.Until("the detail says delivering", "() => document.querySelector('#detail-state').textContent === 'delivering'");
        // Live charts: a polyline appears after a few refreshes, without reloading the page.
        await page.Locator("#chart-queue polyline").WaitForAsync(new() { State = WaitForSelectorState.Attached });
        Assert.Equal("ready", await page.Locator("#health").InnerTextAsync());
        Assert.StartsWith("not clustered (single-node): akka.tcp://", await page.Locator("#cluster-summary").InnerTextAsync());
        Assert.False(await page.Locator("#members").IsVisibleAsync());
        if (Environment.GetEnvironmentVariable("MTASTS_SCREENSHOT") is { Length: > 0 } shot)
        {
            await page.SetViewportSizeAsync(1400, 900);
            await Task.Delay(4000); // a few chart points
            await page.ScreenshotAsync(new() { Path = shot, FullPage = true });
        }
        // Filter: a domain that matches nothing hides the row.
        await page.Locator("#filter").FillAsync("no-such-domain");
        Assert.Equal(0, await row.CountAsync());
    }
}

/// <summary>The browser proof: mail queued for a suspended destination shows as suspended on the status page;
/// "Resume" there changes its state and the mail reaches the receiver; "Suspend" holds it again.</summary>
public sealed class OperatorPageTests(OperatorGateway gw) : IClassFixture<OperatorGateway>
{
    private const string Chromium = "/usr/bin/chromium";

    [Fact]
    public async Task Suspend_and_resume_on_the_page_change_the_state_and_resume_delivers_the_held_mail()
    {
        Assert.True(File.Exists(Chromium), "chromium missing: run tests/setup-env.sh");
        await gw.JsonAsync(await gw.Http.PostAsync("api/destinations/page-held.test/suspend", null));
        await gw.SubmitAsync("app@sender.test", "one@page-held.test");

        using var playwright = await Playwright.CreateAsync();
        await using var browser = await playwright.Chromium.LaunchAsync(new BrowserTypeLaunchOptions
        {
            ExecutablePath = Chromium, Headless = true, Args = ["--no-sandbox", "--disable-gpu"],
        });
        var page = await browser.NewPageAsync();
        page.SetDefaultTimeout(60_000);
        await page.GotoAsync(gw.Url + "/");
        await page.Locator("#token").FillAsync(OperatorGateway.AliceToken);
        await page.Locator("#connect").ClickAsync();
        var row = page.Locator("#queue tr.dest[data-domain='page-held.test']");
        // Each wait names its step: a timeout reports the step, what the page showed and the gateway log's tail.
        var steps = new PageSteps(page, gw.LogText);
        await steps.Until("the held destination's row says suspended",
            "() => document.querySelector(\"#queue tr.dest[data-domain='page-held.test']\")?.textContent.includes('suspended')");
        await row.ClickAsync();
        await steps.Until("the detail says suspended", "() => document.querySelector('#detail-state').textContent.startsWith('suspended since')");
        Assert.Contains("admin token", await page.Locator("#detail-state").InnerTextAsync());
        await Task.Delay(2000);
        Assert.Empty(gw.To("one@page-held.test"));

        await page.Locator("#resume").ClickAsync();
        await steps.Until("resume answered", "() => document.querySelector('#action-result').textContent === 'resume done'");
        await OperatorGateway.Eventually(() => Task.FromResult(gw.To("one@page-held.test").Length == 1), () => "not delivered after resume");
        // Delivered: the destination leaves the queue table (and its detail said "delivering" in between, or is gone).
        await steps.Until("the delivered destination left the queue table", "() => !document.querySelector(\"#queue tr.dest[data-domain='page-held.test']\")");

        // Suspend again from the page: the next mail stays queued and the row says so.
        await page.Locator("#suspend").ClickAsync();
        await steps.Until("suspend answered", "() => document.querySelector('#action-result').textContent === 'suspend done'");
        await gw.SubmitAsync("app@sender.test", "two@page-held.test");
        await steps.Until("the new mail's row says suspended",
            "() => document.querySelector(\"#queue tr.dest[data-domain='page-held.test']\")?.textContent.includes('suspended')");
        await Task.Delay(2000);
        Assert.Empty(gw.To("two@page-held.test"));
        var log = gw.LogText();
        Assert.Contains("Operator action: resume destination page-held.test by admin token \"alice\" from 127.0.0.1", log);
        Assert.Contains("Operator action: suspend destination page-held.test by admin token \"alice\" from 127.0.0.1", log);
    }
}

/// <summary>Named waits on the status page: a timeout says which step, what the page showed (action result, detail
/// state, queue rows) and the tail of the gateway's log, so a failure far away (CI) can be read without a rerun.</summary>
internal sealed class PageSteps(IPage page, Func<string> log)
{
    public async Task Until(string step, string predicate)
    {
        try { await page.WaitForFunctionAsync(predicate); }
        catch (TimeoutException ex)
        {
            var shown = await page.EvaluateAsync<string>("""
                () => ['action-result', 'detail-domain', 'detail-state', 'detail-error'].map(id => id + ': ' + document.getElementById(id)?.textContent).join('\n')
                  + '\nqueue rows:\n' + [...document.querySelectorAll('#queue tr.dest')].map(tr => tr.textContent.replace(/\s+/g, ' ')).join('\n')
                """);
            var lines = log().Split('\n');
            throw new TimeoutException($"step \"{step}\" timed out ({ex.Message})\npage:\n{shown}\ngateway log (last 40 lines):\n" +
                string.Join('\n', lines.TakeLast(40)), ex);
        }
    }
}
