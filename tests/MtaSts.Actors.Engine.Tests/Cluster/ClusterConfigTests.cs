using MtaSts.Actors.Engine.Hosting;

namespace MtaSts.Actors.Engine.Tests.Cluster;

/// <summary>hocon/cluster-postgres.conf loads over the shipped defaults; a wildcard bind address needs a public host name.</summary>
public sealed class ClusterConfigTests
{
    private static IEnumerable<string> Files => GatewayConfig.DefaultFiles().Append(PostgresCluster.ConfigFile);

    [Fact]
    public void Cluster_config_without_public_hostname_is_refused_because_the_node_would_advertise_0_0_0_0()
    {
        if (!string.IsNullOrEmpty(Environment.GetEnvironmentVariable("MTASTS_PUBLIC_HOSTNAME"))) return; // the environment supplies it
        var e = Assert.Throws<GatewayConfigException>(() => GatewayConfig.Load(Files, ""));
        Assert.Contains("MTASTS_PUBLIC_HOSTNAME", e.Message);
    }

    [Fact]
    public void Cluster_config_with_public_hostname_loads_postgres_persistence_and_the_seed_nodes()
    {
        var cfg = GatewayConfig.Load(Files, "akka.remote.dot-netty.tcp.public-hostname = \"node1.internal\"\nmtasts.hostname = \"node1.internal\"");
        Assert.Equal("PostgreSQL.15", cfg.Hocon.GetString("akka.persistence.journal.sql.provider-name"));
        Assert.Equal("PostgreSQL.15", cfg.Hocon.GetString("akka.persistence.snapshot-store.sharding.provider-name"));
        Assert.Equal("sharding_journal", cfg.Hocon.GetString("akka.persistence.journal.sharding.default.journal.table-name"));
        Assert.Equal(2, cfg.Hocon.GetStringList("akka.cluster.seed-nodes").Count);
    }

    [Fact]
    public void Cluster_nodes_need_their_own_hostname_because_destination_entities_are_per_node()
    {
        if (!string.IsNullOrEmpty(Environment.GetEnvironmentVariable("MTASTS_HOSTNAME"))) return; // the environment supplies it
        var e = Assert.Throws<GatewayConfigException>(() => GatewayConfig.Load(Files, "akka.remote.dot-netty.tcp.public-hostname = \"node1.internal\""));
        Assert.Contains("MTASTS_HOSTNAME", e.Message);
    }
}
