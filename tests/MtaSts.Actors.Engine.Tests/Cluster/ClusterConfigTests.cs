using MtaSts.Actors.Engine.Hosting;
using MtaSts.Actors.DestinationControls;

namespace MtaSts.Actors.Engine.Tests.Cluster;

/// <summary>hocon/cluster-postgres.conf loads over the shipped defaults; a wildcard bind address needs a public host name; a cluster needs PostgreSQL.</summary>
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
    public void A_cluster_on_a_sqlite_journal_is_refused_because_the_nodes_could_not_share_the_spool()
    {
        var e = Assert.Throws<GatewayConfigException>(() => GatewayConfig.Load(GatewayConfig.DefaultFiles(),
            "akka.cluster.seed-nodes = [\"akka.tcp://mtasts@127.0.0.1:4053\"]"));
        Assert.Contains("journal is not PostgreSQL", e.Message);
    }

    [Fact]
    public void A_cluster_config_is_clustered_and_its_spool_defaults_to_the_journal_database()
    {
        var cfg = GatewayConfig.Load(Files, "akka.remote.dot-netty.tcp.public-hostname = \"node1.internal\"");
        Assert.True(cfg.Clustered);
        Assert.Equal(cfg.Hocon.GetString("akka.persistence.journal.sql.connection-string"), cfg.ClusterSpoolConnectionString);
        var own = GatewayConfig.Load(Files, "akka.remote.dot-netty.tcp.public-hostname = \"n\"\nmtasts.cluster.spool.connection-string = \"Host=db2\"");
        Assert.Equal("Host=db2", own.ClusterSpoolConnectionString);
        Assert.False(GatewayConfig.Load(GatewayConfig.DefaultFiles(), "").Clustered);
    }

    [Fact]
    public void Per_gateway_hostname_limits_are_refused_in_a_cluster_because_one_owner_counts_for_all_nodes()
    {
        var e = Assert.Throws<GatewayConfigException>(() => GatewayConfig.Load(Files,
            "akka.remote.dot-netty.tcp.public-hostname = \"n1\"\nmtasts.destinations.default.limit-scope = per-gateway-hostname"));
        Assert.Contains("per-gateway-hostname is not supported in a cluster", e.Message);
        // The same key is accepted on a single node (where it equals system-wide).
        GatewayConfig.Load(GatewayConfig.DefaultFiles(), "mtasts.destinations.default.limit-scope = per-gateway-hostname");
    }

    [Fact]
    public void Per_mx_ip_limits_are_refused_in_a_cluster_because_each_node_counts_its_own_connections()
    {
        var e = Assert.Throws<GatewayConfigException>(() => GatewayConfig.Load(Files,
            "akka.remote.dot-netty.tcp.public-hostname = \"n1\"\nmtasts.destinations.\"a.test\".limit-type = mx-ip"));
        Assert.Contains("destination \"a.test\": limit-type = mx-ip is not supported in a cluster", e.Message);
        // Accepted on a single node, where the node's count is the gateway's.
        Assert.Equal(LimitType.PerMxIp, GatewayConfig.Load(GatewayConfig.DefaultFiles(), "mtasts.destinations.\"a.test\".limit-type = mx-ip")
            .Destinations.Resolve("a.test").Profile.LimitType);
    }
}
