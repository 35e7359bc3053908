using System.Globalization;
using System.Text;
using Akka.Configuration;

namespace MtaSts.Actors.Engine.Hosting;

/// <summary>How a node finds its cluster (mtasts.cluster.formation).</summary>
public enum ClusterFormationMode
{
    /// <summary>A cluster of one: the node joins itself (the embedded default).</summary>
    SingleNode,

    /// <summary>Static seed nodes (akka.cluster.seed-nodes, MTASTS_SEED_NODES): the first seed must be up to form a
    /// new cluster.</summary>
    SeedNodes,

    /// <summary>Akka.Management cluster bootstrap: nodes find each other through Akka.Discovery and any
    /// required-contact-point-nr of them form the cluster; no node is special.</summary>
    Bootstrap,
}

/// <summary>The split-brain resolver's strategy (mtasts.cluster.split-brain).</summary>
public enum SplitBrainStrategy
{
    /// <summary>The side with more than half of the nodes stays; equal halves keep the side with the lowest address.</summary>
    KeepMajority,

    /// <summary>The side with the oldest node stays (down-if-alone = on: an oldest node cut off from two or more
    /// others downs itself instead).</summary>
    KeepOldest,
}

/// <summary>
/// mtasts.cluster: formation mode, split-brain resolver and bootstrap settings, validated at load (unknown values are
/// refused naming the key), and the Akka HOCON they stand for (<see cref="AkkaHocon"/>, appended by
/// <see cref="GatewayConfig.Load"/> after every file so that these settings are what Akka runs with).
/// </summary>
public sealed record ClusterFormation
{
    public ClusterFormationMode Mode { get; init; } = ClusterFormationMode.SingleNode;
    public SplitBrainStrategy SplitBrain { get; init; } = SplitBrainStrategy.KeepMajority;
    /// <summary>Bootstrap: Akka.Discovery method, <c>config</c> (contact points listed here) or <c>kubernetes-api</c>.</summary>
    public string Discovery { get; init; } = "config";
    /// <summary>Bootstrap: the service name looked up in discovery (with kubernetes-api: the pod label selector's value).</summary>
    public string ServiceName { get; init; } = "mtasts";
    /// <summary>Bootstrap with config discovery: host:management-port of every node.</summary>
    public IReadOnlyList<string> ContactPoints { get; init; } = [];
    /// <summary>Bootstrap: nodes that must have answered before the lowest of them forms a new cluster.</summary>
    public int RequiredContactPointNr { get; init; } = 2;
    /// <summary>Bootstrap: where this node's Akka.Management HTTP endpoint listens (loopback by default).</summary>
    public string ManagementHostname { get; init; } = "127.0.0.1";
    public int ManagementPort { get; init; } = 8558;

    /// <summary>More than one node may be in this node's cluster: every mode but single-node.</summary>
    public bool IsClustered => Mode != ClusterFormationMode.SingleNode;

    internal static ClusterFormation Read(Config hocon, List<string> errors)
    {
        var m = hocon.GetConfig("mtasts.cluster") ?? ConfigurationFactory.Empty;
        var seeds = hocon.HasPath("akka.cluster.seed-nodes") ? hocon.GetStringList("akka.cluster.seed-nodes").Count : 0;
        string? Str(string path) => m.HasPath(path) && m.GetString(path) is { Length: > 0 } s ? s.Trim() : null;
        int Int(string path, int fallback, int min, int max)
        {
            if (Str(path) is not { } raw) return fallback;
            if (int.TryParse(raw, NumberStyles.None, CultureInfo.InvariantCulture, out var v) && v >= min && v <= max) return v;
            errors.Add($"mtasts.cluster.{path} = \"{raw}\": expected a number {min}..{max}");
            return fallback;
        }

        // Unset: seed-nodes when akka.cluster.seed-nodes lists any (deployments from before this setting), else one node.
        var mode = Str("formation") switch
        {
            null => seeds > 0 ? ClusterFormationMode.SeedNodes : ClusterFormationMode.SingleNode,
            "single-node" => ClusterFormationMode.SingleNode,
            "seed-nodes" => ClusterFormationMode.SeedNodes,
            "bootstrap" => ClusterFormationMode.Bootstrap,
            var other => Invalid(other, "mtasts.cluster.formation", "single-node, seed-nodes or bootstrap", ClusterFormationMode.SingleNode),
        };
        var sbr = Str("split-brain") switch
        {
            null or "keep-majority" => SplitBrainStrategy.KeepMajority,
            "keep-oldest" => SplitBrainStrategy.KeepOldest,
            var other => Invalid(other, "mtasts.cluster.split-brain", "keep-majority or keep-oldest", SplitBrainStrategy.KeepMajority),
        };
        T Invalid<T>(string value, string key, string expected, T fallback)
        {
            errors.Add($"{key} = \"{value}\": unknown value, expected {expected}");
            return fallback;
        }
        // The strategy is this setting; an Akka key next to it would be a second, conflicting answer.
        if (hocon.HasPath("akka.cluster.split-brain-resolver.active-strategy"))
            errors.Add("akka.cluster.split-brain-resolver.active-strategy: set mtasts.cluster.split-brain (keep-majority or keep-oldest) instead");
        if (mode == ClusterFormationMode.SingleNode && Str("formation") is not null && seeds > 0)
            errors.Add("mtasts.cluster.formation = single-node but akka.cluster.seed-nodes lists seed nodes (MTASTS_SEED_NODES): choose one");
        if (mode == ClusterFormationMode.SeedNodes && seeds == 0)
            errors.Add("mtasts.cluster.formation = seed-nodes needs akka.cluster.seed-nodes (MTASTS_SEED_NODES)");
        if (mode == ClusterFormationMode.Bootstrap && seeds > 0)
            errors.Add("mtasts.cluster.formation = bootstrap: akka.cluster.seed-nodes must be empty (the bootstrap finds the seed nodes)");

        var discovery = Str("bootstrap.discovery") ?? "config";
        if (discovery is not ("config" or "kubernetes-api"))
        {
            errors.Add($"mtasts.cluster.bootstrap.discovery = \"{discovery}\": unknown value, expected config or kubernetes-api");
            discovery = "config";
        }
        var contactPoints = m.HasPath("bootstrap.contact-points") ? m.GetStringList("bootstrap.contact-points").Select(s => s.Trim()).ToArray() : [];
        foreach (var cp in contactPoints)
            if (!IsHostPort(cp))
                errors.Add($"mtasts.cluster.bootstrap.contact-points: \"{cp}\" is not host:port (the Akka.Management port of a node)");
        var required = Int("bootstrap.required-contact-point-nr", 2, 1, 1000);
        var formation = new ClusterFormation
        {
            Mode = mode,
            SplitBrain = sbr,
            Discovery = discovery,
            ServiceName = Str("bootstrap.service-name") ?? "mtasts",
            ContactPoints = contactPoints,
            RequiredContactPointNr = required,
            ManagementHostname = Str("bootstrap.management-hostname") ?? "127.0.0.1",
            ManagementPort = Int("bootstrap.management-port", 8558, 1, 65535),
        };
        if (mode == ClusterFormationMode.Bootstrap && discovery == "config")
        {
            if (contactPoints.Length == 0)
                errors.Add("mtasts.cluster.bootstrap.contact-points is empty: list host:management-port of every node (MTASTS_CONTACT_POINTS)");
            else if (required > contactPoints.Length)
                errors.Add($"mtasts.cluster.bootstrap.required-contact-point-nr = {required} exceeds the {contactPoints.Length} contact points: the cluster could never form");
        }
        // Settings of a mode that is not in use would be silently ignored: refuse them instead.
        if (mode != ClusterFormationMode.Bootstrap && m.HasPath("bootstrap"))
            errors.Add($"mtasts.cluster.bootstrap is set but mtasts.cluster.formation is {Name(mode)}: set formation = bootstrap or remove the bootstrap settings (MTASTS_CONTACT_POINTS …)");
        if (mode == ClusterFormationMode.Bootstrap && discovery == "kubernetes-api" && contactPoints.Length > 0)
            errors.Add("mtasts.cluster.bootstrap.contact-points are for discovery = config; kubernetes-api finds the pods itself");
        return formation;
    }

    private static bool IsHostPort(string s)
    {
        var colon = s.LastIndexOf(':');
        return colon > 0 && int.TryParse(s.AsSpan(colon + 1), NumberStyles.None, CultureInfo.InvariantCulture, out var port) && port is >= 1 and <= 65535;
    }

    public static string Name(ClusterFormationMode mode) => mode switch
    {
        ClusterFormationMode.SingleNode => "single-node",
        ClusterFormationMode.SeedNodes => "seed-nodes",
        _ => "bootstrap",
    };

    public static string Name(SplitBrainStrategy s) => s == SplitBrainStrategy.KeepOldest ? "keep-oldest" : "keep-majority";

    /// <summary>The Akka settings these choices stand for; appended after every file and environment override.</summary>
    public string AkkaHocon
    {
        get
        {
            static string Q(string v) => "\"" + v.Replace("\\", "\\\\").Replace("\"", "\\\"") + "\"";
            var sb = new StringBuilder("\n# generated from mtasts.cluster\n");
            sb.Append("akka.cluster.split-brain-resolver.active-strategy = ").Append(Name(SplitBrain)).Append('\n');
            // 2 nodes: the oldest stays when the younger one is lost; 3+: an oldest node cut off from the rest goes.
            if (SplitBrain == SplitBrainStrategy.KeepOldest)
                sb.Append("akka.cluster.split-brain-resolver.keep-oldest.down-if-alone = on\n");
            if (Mode != ClusterFormationMode.Bootstrap) return sb.ToString();
            sb.Append("akka.management.http.hostname = ").Append(Q(ManagementHostname)).Append('\n');
            sb.Append("akka.management.http.port = ").Append(ManagementPort.ToString(CultureInfo.InvariantCulture)).Append('\n');
            sb.Append("akka.management.http.bind-hostname = ").Append(Q(ManagementHostname)).Append('\n');
            sb.Append("akka.management.http.bind-port = ").Append(ManagementPort.ToString(CultureInfo.InvariantCulture)).Append('\n');
            sb.Append("akka.management.cluster.bootstrap.contact-point-discovery.service-name = ").Append(Q(ServiceName)).Append('\n');
            sb.Append("akka.management.cluster.bootstrap.contact-point-discovery.discovery-method = ").Append(Discovery).Append('\n');
            sb.Append("akka.management.cluster.bootstrap.contact-point-discovery.required-contact-point-nr = ")
              .Append(RequiredContactPointNr.ToString(CultureInfo.InvariantCulture)).Append('\n');
            // Any required-contact-point-nr nodes that answer form the cluster (the lowest of them joins itself), even
            // with other listed nodes down: no node is special. A majority keeps two clusters from forming.
            sb.Append("akka.management.cluster.bootstrap.contact-point-discovery.contact-with-all-contact-points = false\n");
            sb.Append("akka.discovery.method = ").Append(Discovery).Append('\n');
            if (Discovery == "config")
            {
                // Every listed host:port is a node, several may share a host: keep them all (the default keeps only the
                // entries on this node's own management port).
                sb.Append("akka.management.cluster.bootstrap.contact-point.filter-on-fallback-port = false\n");
                sb.Append("akka.discovery.config.services.").Append(Q(ServiceName)).Append(".endpoints = [")
                  .AppendJoin(", ", ContactPoints.Select(Q)).Append("]\n");
            }
            return sb.ToString();
        }
    }
}
