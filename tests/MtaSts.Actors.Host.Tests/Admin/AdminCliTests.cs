using System.Diagnostics;
using System.Globalization;
using System.Text.Json;
using MtaSts.Actors.Admin;
using MtaSts.Actors.Host.Tests.Serve;
using MtaSts.Actors.TestInfra.Net;

namespace MtaSts.Actors.Host.Tests.Admin;

/// <summary>One run of the built CLI (<c>dotnet mtasts-gateway.dll ARGS</c>) as its own process.</summary>
public sealed record CliRun(int Exit, string Stdout, string Stderr)
{
    public override string ToString() => $"exit {Exit}\n--- stdout\n{Stdout}\n--- stderr\n{Stderr}";

    public static async Task<CliRun> RunAsync(IReadOnlyDictionary<string, string?>? environment, params string[] args)
    {
        var psi = new ProcessStartInfo("dotnet") { UseShellExecute = false, RedirectStandardOutput = true, RedirectStandardError = true };
        psi.ArgumentList.Add(GatewayProcess.Dll);
        foreach (var a in args) psi.ArgumentList.Add(a);
        psi.Environment.Remove("MTASTS_ADMIN_TOKEN");
        foreach (var (k, v) in environment ?? new Dictionary<string, string?>()) psi.Environment[k] = v;
        using var p = Process.Start(psi)!;
        var stdout = p.StandardOutput.ReadToEndAsync();
        var stderr = p.StandardError.ReadToEndAsync();
        using var cts = new CancellationTokenSource(TimeSpan.FromMinutes(2));
        try
        {
            await p.WaitForExitAsync(cts.Token);
        }
        catch (OperationCanceledException)
        {
            p.Kill(entireProcessTree: true);
            throw new TimeoutException($"mtasts-gateway {string.Join(' ', args)} did not exit within 2 minutes");
        }
        return new CliRun(p.ExitCode, await stdout, await stderr);
    }
}

/// <summary>The admin commands of the CLI, run as real processes against a real <c>serve</c> (<see cref="AdminGateway"/>:
/// mail for held.test stays queued because its MX refuses connections).</summary>
[Collection(AdminGatewayCollection.Name)]
public sealed class AdminCliTests(AdminGateway gw)
{
    private string Url => $"http://127.0.0.1:{gw.AdminPort}";

    private Task<CliRun> Cli(params string[] args) => CliRun.RunAsync(null, [.. args, "--admin", Url, "--token", AdminGateway.Token]);

    /// <summary>Submits to held.test and waits until the queue shows it, deferred after the refused first attempt.</summary>
    private async Task<long> QueuedAsync(string to)
    {
        var mid = await gw.SubmitAsync(to);
        var deadline = DateTime.UtcNow + AdminGateway.Generous;
        while (true)
        {
            // Queued, and its first attempt made (refused: the destination has a last error).
            var detail = await gw.GetJsonAsync("api/queue/held.test");
            if (detail.GetProperty("messages").EnumerateArray().Any(m => m.GetProperty("mid").GetInt64() == mid)
                && detail.GetProperty("destination") is { ValueKind: JsonValueKind.Object } d
                && d.GetProperty("last_error").ValueKind == JsonValueKind.String) return mid;
            Assert.True(DateTime.UtcNow < deadline, $"MID {mid} not in the queue");
            await Task.Delay(200);
        }
    }

    [Fact]
    public async Task Queue_prints_the_shape_by_destination_and_age_and_json_parses()
    {
        await QueuedAsync("shape@held.test");

        var run = await Cli("queue");
        Assert.True(run.Exit == 0, run.ToString());
        foreach (var word in new[] { "destination", "total", "0-5m", "5-10m", "10-20m", "20-40m", "40-80m", "80-160m", "160m+", "TOTAL", "held.test" })
            Assert.Contains(word, run.Stdout);
        // held.test's row: its recipients are all under 5 minutes old (column 3 = 0-5m equals column 2 = total).
        var row = run.Stdout.Split('\n').Select(l => l.Split(' ', StringSplitOptions.RemoveEmptyEntries)).Single(c => c.Length > 0 && c[0] == "held.test");
        Assert.Equal(9, row.Length);
        Assert.True(int.Parse(row[1], CultureInfo.InvariantCulture) >= 1, run.Stdout);
        Assert.Equal(row[1], row[2]);
        Assert.All(row[3..], c => Assert.Equal("0", c));
        Assert.Matches(@"\d+ destinations? with queued mail, \d+ recipients?, \d+ messages? in the spool", run.Stdout);
        Assert.Equal("", run.Stderr);

        var json = await Cli("queue", "--json");
        Assert.True(json.Exit == 0, json.ToString());
        using var doc = JsonDocument.Parse(json.Stdout);
        var held = doc.RootElement.GetProperty("destinations").EnumerateArray().Single(d => d.GetProperty("domain").GetString() == "held.test");
        Assert.Equal(held.GetProperty("recipients").GetInt32(), held.GetProperty("recipients_by_age").GetProperty("0-5m").GetInt32());
        Assert.Equal(QueueView.AgeBuckets.Select(b => b.Label), held.GetProperty("recipients_by_age").EnumerateObject().Select(p => p.Name));
        Assert.True(doc.RootElement.GetProperty("total").GetProperty("recipients_by_age").GetProperty("0-5m").GetInt32() >= 1);
    }

    [Fact]
    public async Task Cluster_on_a_single_node_says_not_clustered_and_json_parses()
    {
        await gw.ClusterViewUpAsync();
        var run = await Cli("cluster");
        Assert.True(run.Exit == 0, run.ToString());
        Assert.Matches(@"^not clustered \(mtasts\.cluster\.formation = single-node\): this node akka\.tcp://\S+ is up; SMTP intake open$", run.Stdout.Trim());
        var json = await Cli("cluster", "--json");
        Assert.True(json.Exit == 0, json.ToString());
        using var doc = JsonDocument.Parse(json.Stdout);
        Assert.False(doc.RootElement.GetProperty("clustered").GetBoolean());
    }

    [Fact]
    public async Task Deliver_now_retries_a_destination_or_all_and_is_logged()
    {
        await QueuedAsync("retry@held.test");

        var one = await Cli("deliver-now", "held.test");
        Assert.True(one.Exit == 0, one.ToString());
        Assert.Equal("deliver now: destination held.test retried at once", one.Stdout.Trim());

        var all = await Cli("deliver-now", "--json");
        Assert.True(all.Exit == 0, all.ToString());
        using var doc = JsonDocument.Parse(all.Stdout);
        Assert.True(doc.RootElement.GetProperty("destinations").GetInt32() >= 1, all.Stdout);

        var deadline = DateTime.UtcNow + AdminGateway.Generous;
        while (!(gw.LogText().Contains("Operator action: deliver now destination held.test by admin token from 127.0.0.1") && gw.LogText().Contains("Operator action: deliver now all destinations by admin token from 127.0.0.1")))
        {
            Assert.True(DateTime.UtcNow < deadline, gw.LogText());
            await Task.Delay(100);
        }
    }

    [Fact]
    public async Task Queue_show_and_message_print_the_queued_mail_and_unknown_ones_exit_1()
    {
        var mid = await QueuedAsync("detail@held.test");
        var midText = mid.ToString(CultureInfo.InvariantCulture);

        // The destination's status (last error) comes from an ask to its actor, which can be busy with a retry that
        // another test's deliver-now started: look again for a while rather than race it.
        var show = await Cli("queue", "show", "held.test", "--limit", "1000");
        for (var until = DateTime.UtcNow + AdminGateway.Generous; !show.Stdout.Contains("4.4.", StringComparison.Ordinal) && DateTime.UtcNow < until;)
        {
            await Task.Delay(500);
            show = await Cli("queue", "show", "held.test", "--limit", "1000");
        }
        Assert.True(show.Exit == 0, show.ToString());
        foreach (var word in new[] { "destination", "held.test", "deferred", "connections", "last error", "4.4.", "MID", midText, "app@sender.test", "detail@held.test" })
            Assert.Contains(word, show.Stdout);

        var page = await Cli("queue", "show", "held.test", "--offset", "0", "--limit", "1", "--json");
        Assert.True(page.Exit == 0, page.ToString());
        using (var doc = JsonDocument.Parse(page.Stdout)) Assert.Single(doc.RootElement.GetProperty("messages").EnumerateArray());

        var message = await Cli("message", midText);
        Assert.True(message.Exit == 0, message.ToString());
        foreach (var word in new[] { "MID", midText, "from", "app@sender.test", "RID", "detail@held.test", "held.test" })
            Assert.Contains(word, message.Stdout);
        var messageJson = await Cli("message", midText, "--json");
        using (var doc = JsonDocument.Parse(messageJson.Stdout)) Assert.Equal(mid, doc.RootElement.GetProperty("mid").GetInt64());

        var missing = await Cli("message", "999999999");
        Assert.Equal(1, missing.Exit);
        Assert.Equal("", missing.Stdout);
        Assert.Equal("mtasts-gateway message: MID 999999999 is not queued on this node", missing.Stderr.Trim());

        var empty = await Cli("queue", "show", "nothing-queued.test");
        Assert.True(empty.Exit == 0, empty.ToString());
        Assert.Contains("nothing queued for nothing-queued.test", empty.Stdout);
    }

    [Fact]
    public async Task Policy_show_and_purge_of_an_uncached_domain_exit_1_with_the_api_text()
    {
        var show = await Cli("policy", "show", "nothing-cached.test");
        Assert.Equal(1, show.Exit);
        Assert.Equal("mtasts-gateway policy show: no cached MTA-STS policy for nothing-cached.test", show.Stderr.Trim());

        var purge = await Cli("policy", "purge", "nothing-cached.test");
        Assert.Equal(1, purge.Exit);
        Assert.Equal("mtasts-gateway policy purge: no cached MTA-STS policy for nothing-cached.test", purge.Stderr.Trim());
    }

    [Fact]
    public async Task An_unreachable_endpoint_or_a_rejected_token_exits_3()
    {
        var port = LoopbackPort.Free();
        var down = await CliRun.RunAsync(null, "queue", "--admin", $"http://127.0.0.1:{port}", "--token", AdminGateway.Token);
        Assert.Equal(3, down.Exit);
        Assert.StartsWith($"mtasts-gateway queue: cannot reach the admin endpoint at http://127.0.0.1:{port}/ (is `serve` running? see mtasts.admin.endpoints)", down.Stderr);
        Assert.Equal("", down.Stdout);

        var wrong = await CliRun.RunAsync(null, "deliver-now", "--admin", Url, "--token", "not-the-token-at-all");
        Assert.Equal(3, wrong.Exit);
        Assert.Contains("admin token rejected", wrong.Stderr);

        var none = await CliRun.RunAsync(null, "queue", "--admin", Url);
        Assert.Equal(3, none.Exit);
        Assert.Contains("admin token rejected", none.Stderr);
        Assert.Contains("none given", none.Stderr);
    }

    [Fact]
    public async Task The_token_comes_from_the_environment_a_file_or_the_config_which_also_gives_the_endpoint()
    {
        var env = await CliRun.RunAsync(new Dictionary<string, string?> { ["MTASTS_ADMIN_TOKEN"] = AdminGateway.Token }, "queue", "--admin", Url, "--json");
        Assert.True(env.Exit == 0, env.ToString());
        JsonDocument.Parse(env.Stdout).Dispose();

        var file = Path.Combine(gw.Work, "token");
        await File.WriteAllTextAsync(file, AdminGateway.Token + "\n");
        var fromFile = await CliRun.RunAsync(null, "queue", "--admin", Url, "--token-file", file, "--json");
        Assert.True(fromFile.Exit == 0, fromFile.ToString());

        // --config: the gateway's own configuration names the endpoint (mtasts.admin.endpoints) and the token.
        var fromConfig = await CliRun.RunAsync(null, "queue", "--config", Path.Combine(gw.Work, "gw.conf"), "--json");
        Assert.True(fromConfig.Exit == 0, fromConfig.ToString());
        JsonDocument.Parse(fromConfig.Stdout).Dispose();
    }

    [Theory]
    [InlineData("queue show")]
    [InlineData("policy")]
    [InlineData("policy show user@example.test")]
    [InlineData("message not-a-number")]
    [InlineData("queue show held.test --limit 0")]
    [InlineData("queue --admin ftp://127.0.0.1:8025")]
    [InlineData("frobnicate example.test")]
    [InlineData("suspend")]
    [InlineData("message bounce not-a-number")]
    [InlineData("destconfig import")]
    public async Task Usage_errors_exit_2(string commandLine)
    {
        var run = await CliRun.RunAsync(null, commandLine.Split(' '));
        Assert.True(run.Exit == 2, run.ToString());
        Assert.Equal("", run.Stdout);
        Assert.StartsWith("mtasts-gateway", run.Stderr);
    }

    [Fact]
    public async Task Help_lists_the_commands_and_exit_codes_and_the_suggest_directive_completes()
    {
        var help = await CliRun.RunAsync(null, "--help");
        Assert.Equal(0, help.Exit);
        foreach (var word in new[] { "serve", "check", "config", "queue", "message", "deliver-now", "suspend", "resume", "destconfig", "policy", "Exit codes", "3 admin endpoint unreachable", "[suggest" })
            Assert.Contains(word, help.Stdout);
        var queueHelp = await CliRun.RunAsync(null, "queue", "--help");
        foreach (var word in new[] { "--admin", "--token", "--token-file", "--config", "--json", "show", "0-5m", "Exit codes" })
            Assert.Contains(word, queueHelp.Stdout);

        var suggest = await CliRun.RunAsync(null, "[suggest:7]", "policy ");
        Assert.Equal(0, suggest.Exit);
        Assert.Equal(["purge", "refresh", "show"], suggest.Stdout.Split('\n', StringSplitOptions.RemoveEmptyEntries | StringSplitOptions.TrimEntries).Where(s => !s.StartsWith('-') && !s.StartsWith('/')).Order());
    }
}

public sealed class QueueShapeTests
{
    [Theory]
    [InlineData(-30, "0-5m")]
    [InlineData(0, "0-5m")]
    [InlineData(299, "0-5m")]
    [InlineData(300, "5-10m")]
    [InlineData(1199, "10-20m")]
    [InlineData(1200, "20-40m")]
    [InlineData(4799, "40-80m")]
    [InlineData(9599, "80-160m")]
    [InlineData(9600, "160m+")]
    [InlineData(86400 * 30, "160m+")]
    public void A_message_age_falls_in_its_qshape_bucket(int seconds, string label) =>
        Assert.Equal(label, QueueView.AgeBuckets[QueueView.AgeBucket(TimeSpan.FromSeconds(seconds))].Label);
}
