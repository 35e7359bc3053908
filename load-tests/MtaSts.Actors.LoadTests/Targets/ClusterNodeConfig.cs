using System.Globalization;
using System.Text;

namespace MtaSts.Actors.LoadTests.Targets;

/// <summary>One gateway node of a loopback cluster: its ports, data directory and node name.</summary>
/// <param name="Index">1-based; node 1 is started first.</param>
/// <param name="ManagementPort">The node's bootstrap contact point (management) port (only written in <see cref="ClusterBootstrap.Management"/> mode).</param>
public sealed record ClusterNode(int Index, int SmtpPort, int AkkaPort, int AdminPort, int ManagementPort, string DataDir)
{
    /// <summary>mtasts.hostname: the EHLO name the node delivers with, so the receiver can tell the nodes apart.</summary>
    public string Hostname => $"node{Index.ToString(CultureInfo.InvariantCulture)}.cluster.test";
}

/// <summary>How the nodes find each other. Switch with --bootstrap (tests/cluster/run.sh).</summary>
public enum ClusterBootstrap
{
    /// <summary>Static akka.cluster.seed-nodes (nodes 1 and 2, as in hocon/cluster-postgres.conf); node 1 first.</summary>
    StaticSeeds,
    /// <summary>The gateway's <c>mtasts.cluster.formation = bootstrap</c> (Akka.Management cluster bootstrap, config
    /// discovery over the 3 contact points, 2 required): no seed nodes, no special node, any two form the cluster.</summary>
    Management,
}

/// <summary>
/// THE cluster node configuration, in one place: the cluster test (tests/cluster) and the load-test target
/// gateway-cluster both start nodes with <c>serve --config &lt;ConfigFiles&gt;… --config &lt;node file with Hocon(…)&gt;</c>.
/// When the cluster work lands (cluster spool, domain = entity id, fail-safe membership, Akka.Management), only this
/// file (or the --cluster-conf / --node-extra / --bootstrap options that feed it) should need to change.
/// </summary>
public static class ClusterNodeConfig
{
    /// <summary>Files layered after the shipped defaults, before the per-node file. Default: hocon/cluster-postgres.conf.</summary>
    public static IReadOnlyList<string> ConfigFiles(string repoRoot, string? clusterConf = null) =>
        [clusterConf ?? Path.Combine(repoRoot, "hocon", "cluster-postgres.conf")];

    /// <summary>
    /// The per-node HOCON. <paramref name="extra"/> is appended verbatim (destination profiles of a scenario, or
    /// settings a future cluster mode needs). Akka's HOCON parser: no ${…} substitutions, one key per line.
    /// </summary>
    public static string Hocon(ClusterNode node, IReadOnlyList<ClusterNode> all, string pgConnectionString, int receiverPort,
        ClusterBootstrap bootstrap = ClusterBootstrap.StaticSeeds, string extra = "")
    {
        static string Q(string v) => "\"" + v.Replace("\\", "\\\\", StringComparison.Ordinal).Replace("\"", "\\\"", StringComparison.Ordinal) + "\"";
        var inv = CultureInfo.InvariantCulture;
        var sb = new StringBuilder();
        sb.AppendLine($"# node {node.Index}: written by ClusterNodeConfig (load-tests/MtaSts.Actors.LoadTests/Targets/ClusterNodeConfig.cs)");
        // Remoting on loopback: the shipped overlay binds 0.0.0.0, which needs a public name; here both are 127.0.0.1.
        sb.AppendLine("akka.remote.dot-netty.tcp.hostname = \"127.0.0.1\"");
        sb.AppendLine("akka.remote.dot-netty.tcp.public-hostname = \"127.0.0.1\"");
        sb.AppendLine($"akka.remote.dot-netty.tcp.port = {node.AkkaPort.ToString(inv)}");
        if (bootstrap == ClusterBootstrap.StaticSeeds)
        {
            // Like the shipped overlay: two seeds (nodes 1 and 2), so node 3 is a non-seed node; node 1 must come first.
            var seeds = all.Where(n => n.Index <= 2).Select(n => Q($"akka.tcp://mtasts@127.0.0.1:{n.AkkaPort.ToString(inv)}"));
            sb.AppendLine($"akka.cluster.seed-nodes = [{string.Join(", ", seeds)}]");
        }
        else
        {
            // What an operator writes (README "Cluster deployment"): the gateway's own keys, not Akka.Management's.
            sb.AppendLine("akka.cluster.seed-nodes = []");
            sb.AppendLine("mtasts.cluster.formation = bootstrap");
            sb.AppendLine($"mtasts.cluster.bootstrap.contact-points = [{string.Join(", ", all.Select(n => Q($"127.0.0.1:{n.ManagementPort.ToString(inv)}")))}]");
            sb.AppendLine("mtasts.cluster.bootstrap.required-contact-point-nr = 2");
            sb.AppendLine("mtasts.cluster.bootstrap.management-hostname = \"127.0.0.1\"");
            sb.AppendLine($"mtasts.cluster.bootstrap.management-port = {node.ManagementPort.ToString(inv)}");
        }
        // One database for all nodes: the four persistence plugins (what MTASTS_PG sets) — and, once it exists, the
        // cluster spool, which reads the same connection string.
        foreach (var plugin in new[] { "journal.sql", "journal.sharding", "snapshot-store.sql", "snapshot-store.sharding" })
            sb.AppendLine($"akka.persistence.{plugin}.connection-string = {Q(pgConnectionString)}");
        sb.AppendLine("mtasts {");
        sb.AppendLine($"  hostname = {Q(node.Hostname)}");
        sb.AppendLine($"  data-dir = {Q(node.DataDir)}");
        sb.AppendLine($"  listener.endpoints = [\"127.0.0.1:{node.SmtpPort.ToString(inv)}\"]");
        sb.AppendLine("  listener.relay-networks = [\"127.0.0.0/8\"]");
        sb.AppendLine($"  admin.endpoints = [\"127.0.0.1:{node.AdminPort.ToString(inv)}\"]");
        // Every destination goes to the receiver; nothing may leave the box (DNS to a dead loopback port).
        sb.AppendLine($"  delivery.mx-override {{ \"*\" = \"127.0.0.1:{receiverPort.ToString(inv)}\" }}");
        sb.AppendLine("  delivery.connection-idle-time = 1s");
        sb.AppendLine("  delivery.connect-timeout = 5s");
        sb.AppendLine("  dns.servers = [\"127.0.0.1:9\"]");
        sb.AppendLine("  dns.timeout = 1s");
        sb.AppendLine("  dns.retries = 0");
        sb.AppendLine($"  log.text = {Q(Path.Combine(node.DataDir, "mail.log"))}");
        sb.AppendLine($"  log.json = {Q(Path.Combine(node.DataDir, "mail.json"))}");
        sb.AppendLine("}");
        sb.AppendLine("mtasts.destinations.default.tls-support = none");
        sb.AppendLine("mtasts.destinations.default.mta-sts = off"); // DNS goes to a dead port: no policy to ask for
        // Short retries: a deferred message must come back within the test's drain window.
        sb.AppendLine("mtasts.bounce-profiles.default.initial-retry-interval = 2s");
        sb.AppendLine("mtasts.bounce-profiles.default.max-retry-interval = 4s");
        if (extra.Length > 0) sb.AppendLine(extra);
        return sb.ToString();
    }

    /// <summary>MTASTS_* variables the node process must NOT inherit from the shell (they override every file).</summary>
    public static readonly string[] ScrubbedEnvironment =
        ["MTASTS_DATA_DIR", "MTASTS_HOSTNAME", "MTASTS_POLICY_PROXY", "MTASTS_PG", "MTASTS_SEED_NODES", "MTASTS_AKKA_PORT", "MTASTS_PUBLIC_HOSTNAME",
         "MTASTS_CLUSTER_FORMATION", "MTASTS_CONTACT_POINTS", "MTASTS_MANAGEMENT_HOSTNAME", "MTASTS_MANAGEMENT_PORT",
         "MTASTS_REQUIRED_CONTACT_POINTS", "MTASTS_SPLIT_BRAIN"];
}
