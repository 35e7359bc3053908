using MtaSts.Actors.TestInfra.Net;
using Akka.Actor;
using Akka.Cluster.Sharding;
using MtaSts.Actors.Engine.Destination;
using MtaSts.Actors.Engine.Tests.EndToEnd;
using MtaSts.Actors.TestInfra.Postgres;
using MtaSts.Actors.TestInfra.Smtp;

namespace MtaSts.Actors.Engine.Tests.Cluster;

/// <summary>
/// Two gateways in one process (own data dir, listener and remoting port each) forming one Akka cluster over the same
/// PostgreSQL, node 1 the seed: one entity per destination domain in the whole cluster, mail accepted on either node
/// delivered by the domain's owner from the cluster spool; node 2 leaving hands its destinations (and their queues)
/// to node 1.
/// </summary>
public sealed class PostgresTwoNodeTests
{
    private sealed class TwoNodes : IAsyncDisposable
    {
        public required PostgresInstance Pg { get; init; }
        public required TestSmtpReceiver Mx { get; init; }
        public required GatewayFixture Node1 { get; init; }
        public required GatewayFixture Node2 { get; init; }

        public static async Task<TwoNodes> StartAsync()
        {
            var pg = await PostgresInstance.StartAsync();
            var cs = await pg.CreateDatabaseAsync("mtasts");
            var mx = TestSmtpReceiver.Start(new TestSmtpReceiverOptions { OfferStartTls = false });
            var p1 = LoopbackPort.Free();
            var p2 = LoopbackPort.Free();
            var n1 = await PostgresCluster.StartNodeAsync(mx.Port, PostgresCluster.NodeHocon(cs, p1, [p1]));
            var n2 = await PostgresCluster.StartNodeAsync(mx.Port, PostgresCluster.NodeHocon(cs, p2, [p1]));
            await PostgresCluster.WaitForMembersUpAsync(n1.Gateway.System, 2, PostgresCluster.Wait);
            await PostgresCluster.WaitForMembersUpAsync(n2.Gateway.System, 2, PostgresCluster.Wait);
            return new TwoNodes { Pg = pg, Mx = mx, Node1 = n1, Node2 = n2 };
        }

        public async ValueTask DisposeAsync()
        {
            await Node2.DisposeAsync();
            await Node1.DisposeAsync();
            await Mx.DisposeAsync();
            await Pg.DisposeAsync();
        }
    }

    /// <summary>Starts (or finds) the entities of <paramref name="domains"/> through <paramref name="system"/>'s region.</summary>
    private static async Task TouchAsync(ActorSystem system, IEnumerable<string> domains)
    {
        var region = ClusterSharding.Get(system).ShardRegion(EngineNames.DestinationRegion);
        await Task.WhenAll(domains.Select(d => region.Ask<DestinationStatus>(new GetDestinationStatus(Dom(d)), TimeSpan.FromSeconds(30))));
    }

    /// <summary>Entity ids (domains) hosted by <paramref name="system"/>'s own region.</summary>
    private static async Task<HashSet<string>> LocalEntitiesAsync(ActorSystem system)
    {
        var region = ClusterSharding.Get(system).ShardRegion(EngineNames.DestinationRegion);
        var state = await region.Ask<CurrentShardRegionState>(GetShardRegionState.Instance, TimeSpan.FromSeconds(15));
        return state.Shards.SelectMany(s => s.EntityIds).ToHashSet();
    }

    [Fact]
    public async Task One_owner_per_domain_in_the_cluster_delivers_mail_from_both_nodes_and_node1_takes_over_when_node2_leaves()
    {
        await using var c = await TwoNodes.StartAsync();
        var domains = Enumerable.Range(0, 10).Select(i => $"d{i}.owner.test").ToArray();
        foreach (var d in domains)
        {
            await c.Node1.SendAsync("app@sender.test", [$"a@{d}"], "via-node1 " + d);
            await c.Node2.SendAsync("app@sender.test", [$"b@{d}"], "via-node2 " + d);
        }
        await c.Node1.ReceivedAsync(c.Mx, 2 * domains.Length, PostgresCluster.Wait);

        // One entity per domain for the cluster: each domain is on exactly one node, under its own name.
        var onNode1 = await LocalEntitiesAsync(c.Node1.Gateway.System);
        var onNode2 = await LocalEntitiesAsync(c.Node2.Gateway.System);
        Assert.Empty(onNode1.Intersect(onNode2));
        Assert.All(domains, d => Assert.True(onNode1.Contains(d) || onNode2.Contains(d), $"{d}: no entity"));

        // Mail that node 2's domains cannot deliver yet (451) stays queued there; node 2 leaves; node 1 becomes the
        // owner of every domain, loads the queue from the cluster spool and delivers it once the receiver accepts.
        var refuse = 1;
        c.Mx.Script = (phase, _, _) => phase == SmtpPhase.Rcpt && Volatile.Read(ref refuse) == 1 ? "451 4.3.0 try later" : null;
        foreach (var d in domains) await c.Node2.SendAsync("app@sender.test", [$"c@{d}"], "queued " + d);
        await c.Node2.WaitForLineAsync(l => l.Contains("Delayed: DCID"), PostgresCluster.Wait);
        await c.Node2.StopAsync();
        await PostgresCluster.WaitForMembersUpAsync(c.Node1.Gateway.System, 1, PostgresCluster.Wait);
        Volatile.Write(ref refuse, 0);
        await c.Node1.Gateway.DeliverNowAsync();
        foreach (var d in domains) await c.Node1.SendAsync("app@sender.test", [$"e@{d}"], "after-leave " + d);
        var got = await c.Node1.ReceivedAsync(c.Mx, 4 * domains.Length, PostgresCluster.Wait);
        await Task.Delay(300);
        Assert.Equal(4 * domains.Length, c.Mx.Messages.Count);
        foreach (var d in domains)
            foreach (var (user, subject) in new[] { ("a", "via-node1 "), ("b", "via-node2 "), ("c", "queued "), ("e", "after-leave ") })
            {
                var m = Assert.Single(got, m => m.Recipients.Any(r => r.Address == $"{user}@{d}"));
                Assert.Contains("Subject: " + subject + d, m.Text);
            }
        Assert.Equal(domains.Order(), (await LocalEntitiesAsync(c.Node1.Gateway.System)).Where(domains.Contains).Order());
        await WaitForAsync(() => c.Node1.Gateway.Spool.Count == 0, PostgresCluster.Wait);
    }

    private static async Task WaitForAsync(Func<bool> condition, TimeSpan timeout)
    {
        var deadline = DateTime.UtcNow + timeout;
        while (!condition())
        {
            if (DateTime.UtcNow > deadline) throw new TimeoutException("condition not met within " + timeout);
            await Task.Delay(100);
        }
    }

    /// <summary>
    /// Regression (node-local spools, per-node MID sequences): an entity on the other node read the body by MID from ITS
    /// OWN spool: 10 of 30 recipients got another message's body in one run. With the cluster spool MIDs are unique in
    /// the cluster and every owner reads the one body of each message.
    /// </summary>
    [Fact]
    public async Task Mail_submitted_to_both_nodes_for_many_domains_is_delivered_exactly_once_with_its_own_body()
    {
        await using var c = await TwoNodes.StartAsync();
        const int n = 30;
        for (var i = 0; i < n; i++)
        {
            var node = i % 2 == 0 ? c.Node1 : c.Node2;
            await node.SendAsync("app@sender.test", [$"u{i}@d{i}.both.test"], $"m{i}", $"body of m{i}");
        }
        var deadline = DateTime.UtcNow + TimeSpan.FromSeconds(30);
        while (c.Mx.Messages.Count < n && DateTime.UtcNow < deadline) await Task.Delay(200);
        await Task.Delay(2000);
        var report = new List<string>();
        for (var i = 0; i < n; i++)
        {
            var copies = c.Mx.Messages.Where(m => m.Recipients.Any(r => r.Address == $"u{i}@d{i}.both.test")).ToArray();
            var own = copies.Count(m => m.Text.Contains($"Subject: m{i}\r\n") || m.Text.Contains($"Subject: m{i}\n"));
            if (copies.Length != 1 || own != 1)
                report.Add($"u{i}@d{i}.both.test (sent to node {(i % 2 == 0 ? 1 : 2)}): {copies.Length} copies, {own} with its own body" +
                           (copies.Length > own ? $"; foreign subjects: {string.Join(",", copies.Select(Subject))}" : ""));
        }
        // The cluster spool's count is a cluster-wide figure refreshed every 2 s.
        var countDeadline = DateTime.UtcNow + TimeSpan.FromSeconds(10);
        while ((c.Node1.Gateway.Spool.Count | c.Node2.Gateway.Spool.Count) != 0 && DateTime.UtcNow < countDeadline) await Task.Delay(200);
        var spool1 = c.Node1.Gateway.Spool.Count;
        var spool2 = c.Node2.Gateway.Spool.Count;
        Assert.True(report.Count == 0 && spool1 == 0 && spool2 == 0,
            $"received {c.Mx.Messages.Count}/{n}; spool node1 {spool1}, node2 {spool2}; pending node1 {c.Node1.Gateway.Pending.Messages}, " +
            $"node2 {c.Node2.Gateway.Pending.Messages}\n{string.Join("\n", report)}\n--- node1 log:\n{string.Join("\n", c.Node1.Lines.TakeLast(60))}" +
            $"\n--- node2 log:\n{string.Join("\n", c.Node2.Lines.TakeLast(60))}");
    }

    private static string Subject(ReceivedMessage m) =>
        m.Text.Split('\n').FirstOrDefault(l => l.StartsWith("Subject:", StringComparison.Ordinal))?.Trim() ?? "?";
}
