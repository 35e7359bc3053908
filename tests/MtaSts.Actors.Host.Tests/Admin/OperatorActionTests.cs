using System.Globalization;
using System.Net;
using System.Net.Http.Headers;
using System.Net.Sockets;
using System.Text;
using System.Text.Json;
using MtaSts.Actors.Host.Tests.Serve;
using MtaSts.Actors.TestInfra.Certificates;
using MtaSts.Actors.TestInfra.Dns;
using MtaSts.Actors.TestInfra.Http;
using MtaSts.Actors.TestInfra.Net;
using MtaSts.Actors.TestInfra.Smtp;

namespace MtaSts.Actors.Host.Tests.Admin;

/// <summary>A real <c>serve</c> process that delivers every domain to one test receiver (mx-override), with the admin
/// token and a named token "alice"; it can be restarted on the same data directory.</summary>
public sealed class OperatorGateway : IAsyncLifetime
{
    public const string Token = "operator-admin-token-0123456789";
    public const string AliceToken = "alice-token-abcdefghijklmnop";
    public string Work { get; } = Path.Combine(Path.GetTempPath(), "mtasts-operator-" + Guid.NewGuid().ToString("N"));
    public int SmtpPort { get; } = LoopbackPort.Free();
    public int AdminPort { get; } = LoopbackPort.Free();
    public TestSmtpReceiver Receiver { get; } = TestSmtpReceiver.Start(new TestSmtpReceiverOptions { OfferStartTls = false });
    /// <summary>The gateway's DNS and the MTA-STS policy host (test CA in mtasts.policy.extra-ca-bundle).</summary>
    public TestDnsServer Dns { get; } = TestDnsServer.Start();
    public TestCertificateAuthority Ca { get; } = new();
    public PolicyHttpsServer Policies { get; private set; } = null!;
    public GatewayProcess Process { get; private set; } = null!;
    public HttpClient Http { get; } = new() { Timeout = TimeSpan.FromSeconds(60) };
    public HttpClient Alice { get; } = new() { Timeout = TimeSpan.FromSeconds(60) };
    public string Url => $"http://127.0.0.1:{AdminPort}";
    private string Config => Path.Combine(Work, "gw.conf");

    public async Task InitializeAsync()
    {
        Directory.CreateDirectory(Work);
        File.WriteAllText(Path.Combine(Work, "alice.token"), AliceToken + "\n");
        Policies = await PolicyHttpsServer.StartAsync(Ca);
        var caBundle = Ca.WriteRootPem(Work);
        File.WriteAllText(Config, $$"""
            mtasts {
              data-dir = "{{Work}}/data"
              listener.endpoints = ["127.0.0.1:{{SmtpPort}}"]
              admin {
                endpoints = ["127.0.0.1:{{AdminPort}}"]
                token = "{{Token}}"
                tokens = [{ name = "alice", token-file = "{{Work}}/alice.token" }]
              }
              delivery.mx-override { "*" = "127.0.0.1:{{Receiver.Port}}" }
              dns { servers = ["127.0.0.1:{{Dns.Port}}"], timeout = 2s, retries = 0 }
              policy { extra-ca-bundle = "{{caBundle}}", https-port = {{Policies.Port}} }
              log.text = "{{Work}}/mail.log"
            }
            mtasts.destinations.default.tls-support = none
            mtasts.destinations.default.mta-sts = off   # no DNS for the test domains
            """);
        Http.BaseAddress = Alice.BaseAddress = new Uri(Url + "/");
        Http.DefaultRequestHeaders.Authorization = new AuthenticationHeaderValue("Bearer", Token);
        Alice.DefaultRequestHeaders.Authorization = new AuthenticationHeaderValue("Bearer", AliceToken);
        await StartAsync();
    }

    public async Task StartAsync()
    {
        Process = GatewayProcess.Start(Config);
        await Process.WaitForAdminAsync(SmtpPort, Http, AdminGateway.Generous);
    }

    /// <summary>Graceful stop (SIGTERM) and a new process on the same data directory.</summary>
    public async Task RestartAsync()
    {
        await Process.DisposeAsync();
        await StartAsync();
    }

    public Task<CliRun> Cli(params string[] args) => CliRun.RunAsync(null, [.. args, "--admin", Url, "--token", Token]);

    public Task<long> SubmitAsync(string from, string to) =>
        SmtpSubmission.SubmitAsync(SmtpPort, "operator.test", from, to, $"Subject: to {to}\r\n\r\nbody");

    public async Task<JsonElement> JsonAsync(HttpResponseMessage res)
    {
        var body = await res.Content.ReadAsStringAsync();
        Assert.True(res.IsSuccessStatusCode, $"{res.RequestMessage?.RequestUri}: {(int)res.StatusCode} {body}");
        return JsonDocument.Parse(body).RootElement;
    }

    public async Task<JsonElement> GetJsonAsync(string path) => await JsonAsync(await Http.GetAsync(path));

    /// <summary>Messages the receiver got for this recipient address.</summary>
    public ReceivedMessage[] To(string address) =>
        Receiver.Messages.Where(m => m.Recipients.Any(r => r.Address.Equals(address, StringComparison.OrdinalIgnoreCase))).ToArray();

    public string LogText() => GatewayProcess.ReadShared(Path.Combine(Work, "mail.log"));

    public static async Task Eventually(Func<Task<bool>> condition, Func<string> why)
    {
        var deadline = DateTime.UtcNow + AdminGateway.Generous;
        while (!await condition())
        {
            Assert.True(DateTime.UtcNow < deadline, why());
            await Task.Delay(200);
        }
    }

    public async Task DisposeAsync()
    {
        Http.Dispose();
        Alice.Dispose();
        if (Process is not null) await Process.DisposeAsync();
        await Receiver.DisposeAsync();
        if (Policies is not null) await Policies.DisposeAsync();
        await Dns.DisposeAsync();
        Ca.Dispose();
        try { Directory.Delete(Work, recursive: true); } catch (IOException) { } catch (UnauthorizedAccessException) { }
    }
}

/// <summary>
/// The operator's actions end to end against a real gateway and a real receiver: suspend (persisted across a
/// restart) and resume, bounce (the DSN arrives) and delete (nothing arrives) of one message or a whole queue,
/// policy refresh, destconfig export/import, each logged with who did it.
/// </summary>
public sealed class OperatorActionTests(OperatorGateway gw) : IClassFixture<OperatorGateway>
{
    private static readonly TimeSpan Quiet = TimeSpan.FromSeconds(4);

    private async Task<int> QueuedFor(string domain)
    {
        var d = await gw.GetJsonAsync($"api/queue/{domain}");
        return d.GetProperty("messages").GetArrayLength();
    }

    [Fact]
    public async Task Suspended_mail_waits_across_a_restart_bounce_sends_a_dsn_delete_sends_nothing_and_resume_delivers()
    {
        // Suspend three destinations before any mail: one over the API with the named token, two with the CLI.
        var held = await gw.JsonAsync(await gw.Alice.PostAsync("api/destinations/held.test/suspend", null));
        Assert.True(held.GetProperty("suspended").GetBoolean());
        Assert.Equal("admin token \"alice\" from 127.0.0.1", held.GetProperty("suspended_by").GetString());
        foreach (var d in new[] { "bounce.test", "delete.test" })
        {
            var run = await gw.Cli("suspend", d);
            Assert.True(run.Exit == 0, run.ToString());
            Assert.StartsWith($"destination {d} suspended since ", run.Stdout);
        }

        var heldMid = await gw.SubmitAsync("app@sender.test", "a@held.test");
        var bounceMid1 = await gw.SubmitAsync("app@sender.test", "b1@bounce.test");
        await gw.SubmitAsync("app@sender.test", "b2@bounce.test");
        var deleteMid1 = await gw.SubmitAsync("app@sender.test", "c1@delete.test");
        await gw.SubmitAsync("app@sender.test", "c2@delete.test");

        // Suspended: no connection, nothing arrives, the queue shows the mail and the suspension.
        await Task.Delay(Quiet);
        Assert.Equal(0, gw.Receiver.TotalSessions);
        var queue = await gw.GetJsonAsync("api/queue");
        var row = queue.GetProperty("destinations").EnumerateArray().Single(r => r.GetProperty("domain").GetString() == "held.test");
        Assert.True(row.GetProperty("suspended").GetBoolean());
        Assert.Equal(1, row.GetProperty("recipients").GetInt32());
        Assert.Contains("alice", row.GetProperty("suspended_by").GetString());
        var show = await gw.Cli("queue", "show", "held.test");
        Assert.True(show.Exit == 0, show.ToString());
        Assert.Contains("suspended since", show.Stdout);

        // Bounce one message, then the rest of its destination: one DSN each, to the sender, 5.0.0 "deleted by the operator".
        var b1 = await gw.Cli("message", "bounce", bounceMid1.ToString(CultureInfo.InvariantCulture));
        Assert.True(b1.Exit == 0, b1.ToString());
        Assert.Equal($"MID {bounceMid1}: 1 recipient of 1 message bounced (DSN to the sender)", b1.Stdout.Trim());
        var b2 = await gw.Cli("queue", "bounce", "bounce.test");
        Assert.True(b2.Exit == 0, b2.ToString());
        Assert.Equal("destination bounce.test: 1 recipient of 1 message bounced (DSN to the sender)", b2.Stdout.Trim());
        await OperatorGateway.Eventually(() => Task.FromResult(gw.To("app@sender.test").Length == 2), () => $"2 DSNs expected\n{gw.LogText()}");
        foreach (var dsn in gw.To("app@sender.test"))
        {
            Assert.Equal("", dsn.MailFrom);
            Assert.Contains("Action: failed", dsn.Text);
            Assert.Contains("Status: 5.0.0", dsn.Text);
            Assert.Contains("Diagnostic-Code: X-MtaSts; deleted by the operator", dsn.Text);
        }
        Assert.Contains(gw.To("app@sender.test"), m => m.Text.Contains("b1@bounce.test"));
        Assert.Contains(gw.To("app@sender.test"), m => m.Text.Contains("b2@bounce.test"));

        // Delete one message over the API, the rest of the destination with the CLI: no DSN.
        var del = await gw.JsonAsync(await gw.Http.DeleteAsync($"api/messages/{deleteMid1}"));
        Assert.Equal(1, del.GetProperty("recipients").GetInt32());
        var d2 = await gw.Cli("queue", "delete", "delete.test");
        Assert.True(d2.Exit == 0, d2.ToString());
        Assert.Equal("destination delete.test: 1 recipient of 1 message deleted (no DSN)", d2.Stdout.Trim());
        Assert.Equal(1, (await gw.Cli("message", "delete", deleteMid1.ToString(CultureInfo.InvariantCulture))).Exit); // gone: not found
        await OperatorGateway.Eventually(async () => await QueuedFor("bounce.test") == 0 && await QueuedFor("delete.test") == 0,
            () => "bounce.test and delete.test should be empty");

        // Restart: still suspended (the journal), the bounced and deleted mail does not come back (the spool).
        await gw.RestartAsync();
        // "status" is null while the destination, recovering its journal on a loaded machine, has not answered in time.
        System.Text.Json.JsonElement after = default;
        await OperatorGateway.Eventually(async () =>
                (after = await gw.GetJsonAsync("api/queue/held.test")).GetProperty("status").ValueKind == System.Text.Json.JsonValueKind.Object,
            () => $"held.test did not answer its status after the restart: {after}");
        Assert.True(after.GetProperty("status").GetProperty("suspended").GetBoolean(), after.ToString());
        Assert.Equal("admin token \"alice\" from 127.0.0.1", after.GetProperty("status").GetProperty("suspended_by").GetString());
        Assert.Equal(heldMid, after.GetProperty("messages")[0].GetProperty("mid").GetInt64());
        Assert.Equal(0, await QueuedFor("bounce.test"));
        Assert.Equal(0, await QueuedFor("delete.test"));
        await Task.Delay(Quiet);
        Assert.Empty(gw.To("a@held.test"));

        // Resume: held.test's mail is delivered; the other two destinations have nothing left to deliver.
        var resumed = await gw.Cli("resume", "held.test");
        Assert.True(resumed.Exit == 0, resumed.ToString());
        Assert.StartsWith("destination held.test delivering", resumed.Stdout);
        foreach (var d in new[] { "bounce.test", "delete.test" })
            Assert.False((await gw.JsonAsync(await gw.Http.PostAsync($"api/destinations/{d}/resume", null))).GetProperty("suspended").GetBoolean());
        await OperatorGateway.Eventually(() => Task.FromResult(gw.To("a@held.test").Length == 1), () => $"held mail not delivered\n{gw.LogText()}");
        await Task.Delay(Quiet);
        Assert.Empty(gw.To("b1@bounce.test").Concat(gw.To("b2@bounce.test")).Concat(gw.To("c1@delete.test")).Concat(gw.To("c2@delete.test")));
        Assert.Equal(2, gw.To("app@sender.test").Length); // no DSN for the deleted mail

        var log = gw.LogText();
        foreach (var line in new[]
                 {
                     "Operator action: suspend destination held.test by admin token \"alice\" from 127.0.0.1",
                     "Operator action: suspend destination bounce.test by admin token from 127.0.0.1",
                     $"Operator action: bounce MID {bounceMid1} by admin token from 127.0.0.1: 1 recipients of 1 messages bounced",
                     "Operator action: bounce the queue of destination bounce.test by admin token from 127.0.0.1",
                     $"Operator action: delete MID {deleteMid1} by admin token from 127.0.0.1: 1 recipients of 1 messages deleted (no DSN)",
                     "Operator action: delete the queue of destination delete.test by admin token from 127.0.0.1",
                     "Operator action: resume destination held.test by admin token from 127.0.0.1",
                     "Destination held.test suspended by admin token \"alice\" from 127.0.0.1",
                     $"Deleted: MID {deleteMid1} to RID [0] by the operator",
                 })
            Assert.True(log.Contains(line, StringComparison.Ordinal), $"missing: {line}\n{log}");
    }

    [Fact]
    public async Task Unknown_messages_and_bad_domains_are_refused()
    {
        Assert.Equal(HttpStatusCode.NotFound, (await gw.Http.PostAsync("api/messages/999999999/bounce", null)).StatusCode);
        Assert.Equal(HttpStatusCode.NotFound, (await gw.Http.DeleteAsync("api/messages/999999999")).StatusCode);
        Assert.Equal(HttpStatusCode.BadRequest, (await gw.Http.PostAsync("api/destinations/not..valid/suspend", null)).StatusCode);
        var bounce = await gw.Cli("message", "bounce", "999999999");
        Assert.True(bounce.Exit == 1, bounce.ToString());
        Assert.Contains("MID 999999999 is not queued", bounce.Stderr);
        Assert.Equal(1, (await gw.Cli("delete", "999999999")).Exit);
        var nothing = await gw.Cli("bounce", "--domain", "nothing-here.test");
        Assert.True(nothing.Exit == 0, nothing.ToString());
        Assert.Equal("destination nothing-here.test: 0 recipients of 0 messages bounced (DSN to the sender)", nothing.Stdout.Trim());
        foreach (var args in new[] { new[] { "bounce" }, ["delete", "12", "--domain", "x.test"], ["delete", "--domain", "a@x.test"] })
        {
            var usage = await CliRun.RunAsync(null, [.. args, "--admin", gw.Url]);
            Assert.True(usage.Exit == 2, usage.ToString());
        }
        // A destination without mail: nothing to remove, still a 200 with zero counts.
        var empty = await gw.JsonAsync(await gw.Http.DeleteAsync("api/destinations/nothing-here.test/queue"));
        Assert.Equal(0, empty.GetProperty("recipients").GetInt32());
    }

    [Fact]
    public async Task Policy_refresh_fetches_the_published_policy_now_and_reports_why_there_is_none()
    {
        // Published policy id 1: the refresh fetches it (nothing was cached) and caches it.
        gw.Dns.AddTxt("_mta-sts.sts.test", "v=STSv1; id=1;").AddA("mta-sts.sts.test", "127.0.0.1");
        gw.Policies.ServePolicy("sts.test", "version: STSv1\nmode: enforce\nmx: mx.sts.test\nmax_age: 86400\n");
        var first = await gw.JsonAsync(await gw.Http.PostAsync("api/policies/sts.test/refresh", null));
        Assert.Equal("policy", first.GetProperty("result").GetString());
        Assert.Equal("fetched", first.GetProperty("source").GetString());
        Assert.Equal("1", first.GetProperty("policy").GetProperty("id").GetString());
        Assert.Equal("enforce", first.GetProperty("policy").GetProperty("mode").GetString());

        // A new policy under the same id: only a forced fetch sees it (a normal resolution would use the cache).
        gw.Policies.ServePolicy("sts.test", "version: STSv1\nmode: testing\nmx: mx.sts.test\nmax_age: 3600\n");
        var fetchesBefore = gw.Policies.Requests("sts.test");
        var cli = await gw.Cli("policy", "refresh", "sts.test");
        Assert.True(cli.Exit == 0, cli.ToString());
        Assert.Contains("testing", cli.Stdout);
        Assert.Equal(fetchesBefore + 1, gw.Policies.Requests("sts.test"));
        Assert.Equal("testing", (await gw.GetJsonAsync("api/policies/sts.test")).GetProperty("mode").GetString());

        // No TXT record: no policy, and why.
        var none = await gw.JsonAsync(await gw.Http.PostAsync("api/policies/no-policy.test/refresh", null));
        Assert.Equal("no-policy", none.GetProperty("result").GetString());
        Assert.Contains("no _mta-sts TXT record", none.GetProperty("error").GetString());
        var noneCli = await gw.Cli("policy", "refresh", "no-policy.test");
        Assert.True(noneCli.Exit == 1, noneCli.ToString()); // no usable policy
        Assert.Contains("no _mta-sts TXT record", noneCli.Stdout);

        var log = gw.LogText();
        Assert.Contains("Operator action: refresh MTA-STS policy for the domain (sts.test) by admin token from 127.0.0.1: policy id 1 mode enforce (fetched)", log);
        Assert.Contains("Operator action: refresh MTA-STS policy for the domain (no-policy.test) by admin token from 127.0.0.1: no-policy: no _mta-sts TXT record", log);
    }

    [Fact]
    public async Task Destconfig_export_import_round_trips_and_a_bad_file_is_refused_with_its_line()
    {
        var dir = Path.Combine(gw.Work, "destconfig");
        Directory.CreateDirectory(dir);
        var exported = Path.Combine(dir, "export.conf");
        var export = await gw.Cli("destconfig", "export", "--file", exported);
        Assert.True(export.Exit == 0, export.ToString());
        var before = Body(File.ReadAllText(exported));
        Assert.Contains("\"example.com\" {", before); // the shipped hocon/destinations.conf examples
        Assert.Contains("tls-support = none", before); // this gateway's default profile

        var dry = await gw.Cli("destconfig", "import", exported, "--dry-run");
        Assert.True(dry.Exit == 0, dry.ToString());
        Assert.Contains("is valid (dry run: nothing installed)", dry.Stdout);
        Assert.Contains("destinations added: none; removed: none; changed: none", dry.Stdout);
        Assert.False(File.Exists(Path.Combine(gw.Work, "data", "destconfig.conf")));

        var import = await gw.Cli("destconfig", "import", exported);
        Assert.True(import.Exit == 0, import.ToString());
        Assert.Contains("installed as", import.Stdout);
        Assert.True(File.Exists(Path.Combine(gw.Work, "data", "destconfig.conf")));
        var again = await gw.Cli("destconfig", "export");
        Assert.True(again.Exit == 0, again.ToString());
        Assert.Equal(before, Body(again.Stdout)); // identical effective profiles

        // A change through import applies live: a new destination profile shows in the effective profile.
        File.WriteAllText(Path.Combine(dir, "changed.conf"), File.ReadAllText(exported).Replace("    \"example.com\" {",
            "    \"imported.test\" {\n      max-concurrent-connections = 7\n    }\n    \"example.com\" {"));
        var changed = await gw.Cli("destconfig", "import", Path.Combine(dir, "changed.conf"));
        Assert.True(changed.Exit == 0, changed.ToString());
        Assert.Contains("destinations added: imported.test", changed.Stdout);
        Assert.Equal(7, (await gw.GetJsonAsync("api/profiles/imported.test")).GetProperty("max_concurrent_connections").GetInt32());

        // Invalid: every error with its line and setting; nothing installed.
        var bad = Path.Combine(dir, "bad.conf");
        File.WriteAllText(bad, """
            mtasts {
              destinations {
                default { tls-support = none }
                "bad.test" {
                  max-concurrent-connections = 0
                  tls-suport = required
                }
              }
              listener.endpoints = ["0.0.0.0:25"]
            }
            """);
        var refused = await gw.Cli("destconfig", "import", bad);
        Assert.True(refused.Exit == 2, refused.ToString());
        Assert.Contains("\"mtasts.listener\" does not belong in a destconfig file", refused.Stderr);
        var bad2 = Path.Combine(dir, "bad2.conf");
        File.WriteAllText(bad2, File.ReadAllText(bad).Replace("  listener.endpoints = [\"0.0.0.0:25\"]\n", ""));
        var refused2 = await gw.Cli("destconfig", "import", bad2);
        Assert.True(refused2.Exit == 2, refused2.ToString());
        Assert.Contains("line 5: destination \"bad.test\": max-concurrent-connections = 0 is out of range 1..1000", refused2.Stderr);
        Assert.Contains("line 6: destination \"bad.test\": unknown setting \"tls-suport\" (did you mean \"tls-support\"?)", refused2.Stderr);
        Assert.Equal(7, (await gw.GetJsonAsync("api/profiles/imported.test")).GetProperty("max_concurrent_connections").GetInt32());

        // Back to the first export for the other tests; logged with who did it.
        Assert.Equal(0, (await gw.Cli("destconfig", "import", exported)).Exit);
        Assert.Contains("Operator action: destconfig import into ", gw.LogText());
        Assert.Contains("Operator action: destconfig import (dry run) by admin token from 127.0.0.1: valid, nothing applied", gw.LogText());
    }

    /// <summary>The export without its comment header (which names the time and the source).</summary>
    private static string Body(string text) => string.Join('\n', text.Split('\n').Where(l => !l.StartsWith('#')));
}
