using System.Text.Json;
using Microsoft.Playwright;
using MtaSts.Actors.Host.Tests.Admin;
using Xunit.Abstractions;

namespace MtaSts.Actors.Host.Tests.Cluster;

/// <summary>
/// The cluster members view (<c>GET /api/cluster</c>, <c>mtasts-gateway cluster</c>) and readiness with real processes:
/// 2 nodes, static seed nodes. The second seed is started first: it cannot form a cluster alone, so it is not a member
/// and is not ready; once the first seed is up both see both members Up.
/// </summary>
public sealed class ClusterMembersTests(ITestOutputHelper output)
{
    private static async Task<JsonElement> ClusterAsync(ClusterNode node)
    {
        using var http = new HttpClient { Timeout = TimeSpan.FromSeconds(10) };
        var body = await http.GetStringAsync($"http://127.0.0.1:{node.AdminPort}/api/cluster");
        return JsonDocument.Parse(body).RootElement;
    }

    /// <summary>Polls the node's view until <paramref name="done"/> holds (the admin endpoint starts after the listener).</summary>
    private static async Task<JsonElement> UntilAsync(ClusterTestBed bed, ClusterNode node, Func<JsonElement, bool> done)
    {
        var deadline = DateTime.UtcNow + ClusterTestBed.Generous;
        JsonElement last = default;
        while (DateTime.UtcNow < deadline)
        {
            try
            {
                last = await ClusterAsync(node);
                if (done(last)) return last;
            }
            catch (Exception e) when (e is HttpRequestException or TaskCanceledException) { }
            await Task.Delay(250);
        }
        throw new TimeoutException($"{node.Name}: cluster view not as expected; last {last}\n{bed.Describe()}");
    }

    private static bool BothUp(JsonElement c) =>
        c.GetProperty("members").GetArrayLength() == 2
        && c.GetProperty("members").EnumerateArray().All(m => m.GetProperty("status").GetString() == "up" && m.GetProperty("reachable").GetBoolean())
        && c.GetProperty("leader").ValueKind == JsonValueKind.String && c.GetProperty("oldest").ValueKind == JsonValueKind.String;

    [Fact]
    public async Task A_node_that_is_not_yet_a_member_is_not_ready_then_both_nodes_see_both_members_Up_in_the_api_and_the_cli()
    {
        await using var bed = new ClusterTestBed();
        var nodes = bed.AddNodes(2);
        var (a, b) = (nodes[0], nodes[1]);
        var seeds = $"akka.cluster.seed-nodes = [{string.Join(", ", nodes.Select(n => $"\"{n.SeedNode}\""))}]";
        const string cluster = "formation = seed-nodes";

        // b alone: only the first seed (a) may form the cluster, so b stays outside it.
        bed.Start(b, cluster, seeds);
        var alone = await UntilAsync(bed, b, c => c.GetProperty("clustered").GetBoolean());
        Assert.Equal("seed-nodes", alone.GetProperty("formation").GetString());
        Assert.NotEqual("up", alone.GetProperty("self_status").GetString());
        Assert.Equal("closed", alone.GetProperty("intake").GetString());
        Assert.StartsWith("not an Up cluster member", alone.GetProperty("intake_refusal").GetString());
        Assert.DoesNotContain(alone.GetProperty("members").EnumerateArray(), m => m.GetProperty("status").GetString() == "up");
        using (var http = new HttpClient())
        {
            var ready = await http.GetAsync($"http://127.0.0.1:{b.AdminPort}/health/ready");
            var body = await ready.Content.ReadAsStringAsync();
            Assert.True((int)ready.StatusCode == 503, body);
            var check = JsonDocument.Parse(body).RootElement.GetProperty("checks").GetProperty("cluster");
            Assert.Equal("unhealthy", check.GetProperty("status").GetString());
            Assert.StartsWith("not an Up cluster member", check.GetProperty("detail").GetString());
        }

        bed.Start(a, cluster, seeds);
        await ClusterTestBed.UntilAcceptedAsync(a, "a@members.test", ClusterTestBed.Generous);
        await ClusterTestBed.UntilAcceptedAsync(b, "b@members.test", ClusterTestBed.Generous);
        var fromA = await UntilAsync(bed, a, BothUp);
        var fromB = await UntilAsync(bed, b, BothUp);
        output.WriteLine(fromA.ToString());

        var aAddress = fromA.GetProperty("self_address").GetString()!;
        var bAddress = fromB.GetProperty("self_address").GetString()!;
        Assert.Equal(a.SeedNode, aAddress);
        Assert.Equal(b.SeedNode, bAddress);
        foreach (var (view, self) in new[] { (fromA, aAddress), (fromB, bAddress) })
        {
            Assert.True(view.GetProperty("clustered").GetBoolean());
            Assert.Equal("up", view.GetProperty("self_status").GetString());
            Assert.Equal("open", view.GetProperty("intake").GetString());
            Assert.Equal(0, view.GetProperty("unreachable").GetArrayLength());
            var members = view.GetProperty("members").EnumerateArray().ToArray();
            Assert.Equal(new[] { aAddress, bAddress }.Order(StringComparer.Ordinal), members.Select(m => m.GetProperty("address").GetString()).Order(StringComparer.Ordinal));
            Assert.All(members, m => Assert.Equal(["delivery"], m.GetProperty("roles").EnumerateArray().Select(r => r.GetString())));
            Assert.Equal(self, Assert.Single(members, m => m.GetProperty("self").GetBoolean()).GetProperty("address").GetString());
            // a formed the cluster: it is the oldest member (the shard coordinator runs there); both agree on the leader.
            Assert.Equal(aAddress, view.GetProperty("oldest").GetString());
            Assert.Equal(aAddress, Assert.Single(members, m => m.GetProperty("oldest").GetBoolean()).GetProperty("address").GetString());
            Assert.Equal(fromA.GetProperty("leader").GetString(), view.GetProperty("leader").GetString());
            Assert.Single(members, m => m.GetProperty("leader").GetBoolean());
        }
        Assert.Equal(200, await ClusterTestBed.ReadyAsync(a));
        Assert.Equal(200, await ClusterTestBed.ReadyAsync(b));

        // The CLI against node b: --json is the API's answer; the table names both members.
        var json = await CliRun.RunAsync(null, "cluster", "--json", "--admin", $"http://127.0.0.1:{b.AdminPort}");
        Assert.True(json.Exit == 0, json.ToString());
        using (var doc = JsonDocument.Parse(json.Stdout))
        {
            Assert.True(BothUp(doc.RootElement), json.Stdout);
            Assert.Equal(bAddress, doc.RootElement.GetProperty("self_address").GetString());
        }
        var table = await CliRun.RunAsync(null, "cluster", "--admin", $"http://127.0.0.1:{b.AdminPort}");
        Assert.True(table.Exit == 0, table.ToString());
        output.WriteLine(table.Stdout);
        Assert.Contains($"{bAddress} (up); SMTP intake open", table.Stdout);
        Assert.Contains("2 members: 2 Up, 0 reported unreachable", table.Stdout);
        Assert.Contains(table.Stdout.Split('\n'), l => l.Contains(aAddress, StringComparison.Ordinal) && l.Contains("oldest", StringComparison.Ordinal) && l.Contains(" up ", StringComparison.Ordinal));

        // The status page of node b (no token on these nodes): its cluster section lists both members, Up and reachable.
        const string chromium = "/usr/bin/chromium";
        Assert.True(File.Exists(chromium), "chromium missing: run tests/setup-env.sh");
        using var playwright = await Playwright.CreateAsync();
        await using var browser = await playwright.Chromium.LaunchAsync(new BrowserTypeLaunchOptions
        {
            ExecutablePath = chromium, Headless = true, Args = ["--no-sandbox", "--disable-gpu"],
        });
        var page = await browser.NewPageAsync();
        page.SetDefaultTimeout(60_000);
        await page.GotoAsync($"http://127.0.0.1:{b.AdminPort}/");
        await page.WaitForFunctionAsync("() => document.querySelectorAll('#members tbody tr').length === 2");
        Assert.StartsWith($"2 members, 2 up; this node {bAddress} up; SMTP intake open", await page.Locator("#cluster-summary").InnerTextAsync());
        var rowA = await page.Locator($"#members tr[data-address='{aAddress}']").InnerTextAsync();
        Assert.Contains("up", rowA);
        Assert.Contains("yes", rowA);
        Assert.Contains("oldest", rowA);
        Assert.Contains("self", await page.Locator($"#members tr[data-address='{bAddress}']").InnerTextAsync());
    }
}
