using MtaSts.Actors.Engine.Hosting;

namespace MtaSts.Actors.Engine.Tests.Cluster;

/// <summary>mtasts.cluster: formation mode and split-brain strategy are validated at load and become Akka settings.</summary>
public sealed class ClusterFormationConfigTests
{
    // A clustered node needs the shared PostgreSQL journal (a SQLite one is refused): loads use one.
    private const string Postgres = "akka.persistence.journal.sql { provider-name = \"PostgreSQL.15\", connection-string = \"Host=db\" }\n";

    private static GatewayConfig Load(string hocon) => GatewayConfig.Load(GatewayConfig.DefaultFiles(), Postgres + hocon);

    private static GatewayConfigException Refused(string hocon) =>
        Assert.Throws<GatewayConfigException>(() => GatewayConfig.Load(GatewayConfig.DefaultFiles(), hocon));

    [Fact]
    public void The_default_is_a_single_node_with_keep_majority_and_downing_that_terminates_the_actor_system()
    {
        if (!string.IsNullOrEmpty(Environment.GetEnvironmentVariable("MTASTS_SEED_NODES"))) return; // the environment makes it a cluster
        var c = Load("");
        Assert.Equal(ClusterFormationMode.SingleNode, c.Cluster.Mode);
        Assert.False(c.Cluster.IsClustered);
        Assert.Equal("keep-majority", c.Hocon.GetString("akka.cluster.split-brain-resolver.active-strategy"));
        Assert.Equal("Akka.Cluster.SBR.SplitBrainResolverProvider, Akka.Cluster", c.Hocon.GetString("akka.cluster.downing-provider-class"));
        Assert.True(c.Hocon.GetBoolean("akka.cluster.run-coordinated-shutdown-when-down"));
        Assert.False(c.Hocon.GetBoolean("akka.coordinated-shutdown.exit-clr"));
    }

    [Fact]
    public void Seed_nodes_without_a_formation_setting_mean_seed_nodes_as_before()
    {
        var c = Load("""
            akka.cluster.seed-nodes = ["akka.tcp://mtasts@127.0.0.1:4053"]
            mtasts.hostname = "node1.internal"
            """);
        Assert.Equal(ClusterFormationMode.SeedNodes, c.Cluster.Mode);
        Assert.True(c.Cluster.IsClustered);
    }

    [Fact]
    public void Keep_oldest_sets_the_strategy_with_down_if_alone()
    {
        var c = Load("mtasts.cluster.split-brain = keep-oldest");
        Assert.Equal(SplitBrainStrategy.KeepOldest, c.Cluster.SplitBrain);
        Assert.Equal("keep-oldest", c.Hocon.GetString("akka.cluster.split-brain-resolver.active-strategy"));
        Assert.True(c.Hocon.GetBoolean("akka.cluster.split-brain-resolver.keep-oldest.down-if-alone"));
    }

    [Theory]
    [InlineData("mtasts.cluster.formation = mesh", "mtasts.cluster.formation = \"mesh\": unknown value, expected single-node, seed-nodes or bootstrap")]
    [InlineData("mtasts.cluster.split-brain = static-quorum", "mtasts.cluster.split-brain = \"static-quorum\": unknown value, expected keep-majority or keep-oldest")]
    [InlineData("akka.cluster.split-brain-resolver.active-strategy = keep-oldest", "set mtasts.cluster.split-brain")]
    [InlineData("mtasts.cluster.formation = seed-nodes", "mtasts.cluster.formation = seed-nodes needs akka.cluster.seed-nodes")]
    [InlineData("mtasts.cluster.formation = bootstrap\nmtasts.hostname = n1", "mtasts.cluster.bootstrap.contact-points is empty")]
    [InlineData("mtasts.cluster.bootstrap.contact-points = [\"127.0.0.1:8558\"]", "mtasts.cluster.bootstrap is set but mtasts.cluster.formation is single-node")]
    [InlineData("mtasts.cluster { formation = bootstrap, bootstrap.discovery = dns }\nmtasts.hostname = n1", "mtasts.cluster.bootstrap.discovery = \"dns\": unknown value, expected config or kubernetes-api")]
    [InlineData("mtasts.cluster { formation = bootstrap, bootstrap { contact-points = [\"127.0.0.1:8558\"], required-contact-point-nr = 2 } }\nmtasts.hostname = n1",
        "required-contact-point-nr = 2 exceeds the 1 contact points")]
    [InlineData("mtasts.cluster { formation = bootstrap, bootstrap.contact-points = [\"node1\"] }\nmtasts.hostname = n1", "\"node1\" is not host:port")]
    [InlineData("mtasts.cluster.formation = bootstrap\nmtasts.cluster.bootstrap.contact-points = [\"127.0.0.1:8558\", \"127.0.0.1:8559\"]",
        "journal is not PostgreSQL")]
    public void Invalid_cluster_settings_are_refused_naming_the_key(string hocon, string message)
    {
        if (!string.IsNullOrEmpty(Environment.GetEnvironmentVariable("MTASTS_SEED_NODES"))) return;
        Assert.Contains(message, Refused(hocon).Message);
    }

    [Fact]
    public void Bootstrap_with_config_discovery_becomes_management_discovery_and_bootstrap_settings()
    {
        var c = Load("""
            mtasts.hostname = "node2.internal"
            mtasts.cluster {
              formation = bootstrap
              split-brain = keep-majority
              bootstrap { contact-points = ["127.0.0.1:8558", "127.0.0.1:8559", "127.0.0.1:8560"], required-contact-point-nr = 2, management-port = 8559 }
            }
            """);
        Assert.Equal(ClusterFormationMode.Bootstrap, c.Cluster.Mode);
        Assert.Equal("127.0.0.1", c.Hocon.GetString("akka.management.http.hostname"));
        Assert.Equal(8559, c.Hocon.GetInt("akka.management.http.port"));
        Assert.Equal("config", c.Hocon.GetString("akka.discovery.method"));
        Assert.Equal(["127.0.0.1:8558", "127.0.0.1:8559", "127.0.0.1:8560"], c.Hocon.GetStringList("akka.discovery.config.services.mtasts.endpoints"));
        Assert.Equal(2, c.Hocon.GetInt("akka.management.cluster.bootstrap.contact-point-discovery.required-contact-point-nr"));
        Assert.False(c.Hocon.GetBoolean("akka.management.cluster.bootstrap.contact-point-discovery.contact-with-all-contact-points"));
        Assert.False(c.Hocon.GetBoolean("akka.management.cluster.bootstrap.contact-point.filter-on-fallback-port"));
        Assert.Empty(c.Hocon.GetStringList("akka.cluster.seed-nodes"));
    }

    [Fact]
    public void Bootstrap_settings_come_from_the_environment()
    {
        var hocon = GatewayConfig.EnvironmentOverrides(v => v switch
        {
            "MTASTS_CLUSTER_FORMATION" => "bootstrap",
            "MTASTS_CONTACT_POINTS" => "127.0.0.1:8558, 127.0.0.1:8559,127.0.0.1:8560",
            "MTASTS_MANAGEMENT_PORT" => "8560",
            "MTASTS_REQUIRED_CONTACT_POINTS" => "3",
            "MTASTS_SPLIT_BRAIN" => "keep-oldest",
            _ => null,
        });
        var c = Load(hocon + "\nmtasts.hostname = \"node3.internal\"");
        Assert.Equal(ClusterFormationMode.Bootstrap, c.Cluster.Mode);
        Assert.Equal(SplitBrainStrategy.KeepOldest, c.Cluster.SplitBrain);
        Assert.Equal(["127.0.0.1:8558", "127.0.0.1:8559", "127.0.0.1:8560"], c.Cluster.ContactPoints);
        Assert.Equal(8560, c.Cluster.ManagementPort);
        Assert.Equal(3, c.Cluster.RequiredContactPointNr);
    }
}
