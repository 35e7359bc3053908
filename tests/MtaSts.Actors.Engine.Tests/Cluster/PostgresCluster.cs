using MtaSts.Actors.TestInfra.Net;
using System.Net;
using System.Net.Sockets;
using Akka.Actor;
using Akka.Cluster;
using Akka.Cluster.Sharding;
using MtaSts.Actors.Engine.Destination;
using MtaSts.Actors.Engine.Tests.EndToEnd;
using MtaSts.Actors.TestInfra.Postgres;

namespace MtaSts.Actors.Engine.Tests.Cluster;

/// <summary>
/// Helpers for gateways configured with the shipped hocon/cluster-postgres.conf against a private PostgreSQL
/// (<see cref="PostgresInstance"/>): loopback remoting, the database's connection string in all four persistence
/// plugins, explicit seed nodes.
/// </summary>
internal static class PostgresCluster
{
    public static readonly TimeSpan Wait = TimeSpan.FromSeconds(60);

    public static string ConfigFile
    {
        get
        {
            var path = Path.Combine(AppContext.BaseDirectory, "hocon", "cluster-postgres.conf");
            Assert.True(File.Exists(path), $"{path} missing (copied from hocon/ by the test project)");
            return path;
        }
    }

    /// <summary>HOCON for one node: remoting on 127.0.0.1:<paramref name="akkaPort"/>, the seed nodes (empty: the
    /// node joins itself), the test database for the journal and snapshot plugins.</summary>
    public static string NodeHocon(string connectionString, int akkaPort, IEnumerable<int> seedPorts, string extra = "")
    {
        var seeds = string.Join(", ", seedPorts.Select(p => $"\"akka.tcp://mtasts@127.0.0.1:{p}\""));
        var cs = "\"" + connectionString + "\"";
        return $$"""
            akka.remote.dot-netty.tcp.hostname = "127.0.0.1"
            akka.remote.dot-netty.tcp.public-hostname = "127.0.0.1"
            akka.remote.dot-netty.tcp.port = {{akkaPort}}
            akka.cluster.seed-nodes = [{{seeds}}]
            akka.persistence.journal.sql.connection-string = {{cs}}
            akka.persistence.journal.sharding.connection-string = {{cs}}
            akka.persistence.snapshot-store.sql.connection-string = {{cs}}
            akka.persistence.snapshot-store.sharding.connection-string = {{cs}}
            mtasts.hostname = "node{{akkaPort}}.test.invalid"
            {{extra}}
            """;
    }

    public static Task<GatewayFixture> StartNodeAsync(int mxPort, string nodeHocon) =>
        GatewayFixture.StartAsync($"\"*\" = \"127.0.0.1:{mxPort}\"", nodeHocon, null, extraFiles: [ConfigFile]);

    /// <summary>Waits until <paramref name="system"/> sees <paramref name="count"/> members Up.</summary>
    public static async Task WaitForMembersUpAsync(ActorSystem system, int count, TimeSpan timeout)
    {
        var cluster = Akka.Cluster.Cluster.Get(system);
        var deadline = DateTime.UtcNow + timeout;
        while (cluster.State.Members.Count(m => m.Status == MemberStatus.Up) != count)
        {
            if (DateTime.UtcNow > deadline)
                throw new TimeoutException($"{count} members not Up within {timeout}: {string.Join(", ", cluster.State.Members)}");
            await Task.Delay(100);
        }
    }

    /// <summary>Entities per node address (cluster-wide shard statistics from the region of <paramref name="system"/>).</summary>
    public static async Task<IReadOnlyDictionary<Address, int>> EntitiesPerNodeAsync(ActorSystem system)
    {
        var region = ClusterSharding.Get(system).ShardRegion(EngineNames.DestinationRegion);
        var stats = await region.Ask<ClusterShardingStats>(new GetClusterShardingStats(TimeSpan.FromSeconds(10)), TimeSpan.FromSeconds(15));
        return stats.Regions.ToDictionary(kv => kv.Key, kv => kv.Value.Stats.Values.Sum());
    }
}
