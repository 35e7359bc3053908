using MtaSts.Actors.Dns;
using System.Net;
using Akka.Configuration;
using MtaSts.Actors.Configuration;
using MtaSts.Actors.DestinationControls;
using MtaSts.Actors.DestinationControls.Throttling;
using MtaSts.Actors.Engine.Delivery;
using MtaSts.Actors.Logging;
using MtaSts.Actors.Policy;
using MtaSts.Actors.Smtp.Batv;
using MtaSts.Actors.Smtp.Intake;
using MtaSts.Actors.TlsRpt;

namespace MtaSts.Actors.Engine.Hosting;

/// <summary>
/// The gateway's configuration, read from HOCON files (hocon/akka.conf, hocon/destinations.conf, hocon/gateway.conf,
/// then every --config file; later files win). Invalid values are reported with their path, never ignored.
/// </summary>
public sealed record GatewayConfig
{
    public required Config Hocon { get; init; }
    /// <summary>The HOCON source text the config was parsed from (Akka gets a flat parse of it, never a fallback chain).</summary>
    public string HoconText { get; init; } = "";
    /// <summary>Extra HOCON given programmatically after the files (kept so that a reload sees it too).</summary>
    public string? OverrideText { get; init; }
    /// <summary>Virtual gateways: name → source IP address for outbound connections (profile key source-address).</summary>
    public IReadOnlyDictionary<string, IPAddress> VirtualGateways { get; init; } = new Dictionary<string, IPAddress>();

    /// <summary>The source address for a profile's source-address (an IP, or a virtual gateway name).</summary>
    public IPAddress? SourceAddressFor(string? sourceAddress) =>
        string.IsNullOrEmpty(sourceAddress) ? null
        : IPAddress.TryParse(sourceAddress, out var ip) ? ip
        : VirtualGateways.TryGetValue(sourceAddress, out var named) ? named
        : throw new InvalidOperationException($"unknown virtual gateway '{sourceAddress}'");
    public required IReadOnlyList<string> Files { get; init; }
    public string DataDir { get; init; } = "data";
    public string Hostname { get; init; } = "gateway.localdomain";

    /// <summary>mtasts.listener: the SMTP listener's options (parsed and defaulted by the listener's own type).</summary>
    public ListenerConfig Listener { get; init; } = new();

    /// <summary>mtasts.delivery: outbound timeouts, idle connections, next-hop override.</summary>
    public DeliveryOptions Delivery { get; init; } = new();
    /// <summary>mtasts.dns: the resolver's name servers, timeout, retries.</summary>
    public DnsOptions Dns { get; init; } = new();
    /// <summary>mtasts.policy: MTA-STS policy fetches (proxy, timeouts, extra CA bundle, lenient Content-Type).</summary>
    public PolicyOptions Policy { get; init; } = new();
    /// <summary>mtasts.log: the operator log's targets and level.</summary>
    public LogOptions Log { get; init; } = new();

    public required DestinationConfig Destinations { get; init; }

    /// <summary>mtasts.cluster: formation mode, split-brain resolver, bootstrap (see <see cref="ClusterFormation"/>).</summary>
    public ClusterFormation Cluster { get; init; } = new();
    /// <summary>This node is part of a multi-node cluster (static seed nodes given): accepted mail then lives in the
    /// cluster spool (PostgreSQL) so that each domain's single owner can deliver it from any node.</summary>
    public bool Clustered => Cluster.IsClustered;
    /// <summary>mtasts.cluster.spool.connection-string: the cluster spool's database (default: the journal's).</summary>
    public string ClusterSpoolConnectionString { get; init; } = "";
    /// <summary>Where <c>destconfig import</c> installs a destination configuration (<c>&lt;data-dir&gt;/destconfig.conf</c>);
    /// watched for changes like the configuration files. Null for a configuration built in code.</summary>
    public string? DestConfigFile { get; init; }

    /// <summary>The destination profiles came from <see cref="DestConfigFile"/>, not from the configuration files.</summary>
    public bool DestConfigImported { get; init; }

    /// <summary>mtasts.tls-rpt: RFC 8460 reporting (off by default).</summary>
    public TlsRptOptions TlsRpt { get; init; } = new();

    /// <summary>mtasts.throttle: reply-driven throttling rules (global and built-in; profiles add their own).</summary>
    public ThrottleOptions Throttle { get; init; } = new();

    /// <summary>mtasts.bounce-verification: the keys and our sender domains; null when no key is configured (then no
    /// destination profile may set bounce-verification = on).</summary>
    public BounceAddressTagger? BounceVerification { get; init; }

    /// <summary>Every setting at its default (each default is written once, in its property).</summary>
    private static GatewayConfig Defaults { get; } = new() { Hocon = ConfigurationFactory.Empty, Files = [], Destinations = DestinationConfig.Default };

    /// <summary>Default search path of the shipped HOCON files (next to the executable, else ./hocon).</summary>
    public static IReadOnlyList<string> DefaultFiles()
    {
        var dir = Path.Combine(AppContext.BaseDirectory, "hocon");
        if (!Directory.Exists(dir)) dir = Path.Combine(Directory.GetCurrentDirectory(), "hocon");
        return new[] { "akka.conf", "destinations.conf", "gateway.conf" }.Select(f => Path.Combine(dir, f)).Where(File.Exists).ToArray();
    }

    /// <summary>Loads and validates. Throws <see cref="GatewayConfigException"/> listing every problem.</summary>
    public static GatewayConfig Load(IEnumerable<string> files, string? overrideHocon = null)
    {
        var fileList = files.ToList();
        var errors = new List<string>();
        var texts = new List<string>();
        foreach (var f in fileList)
        {
            if (!File.Exists(f)) { errors.Add($"config file not found: {f}"); continue; }
            texts.Add(File.ReadAllText(f));
        }
        if (overrideHocon is not null) texts.Add(overrideHocon);
        // Akka's HOCON parser silently drops everything after an unresolved ${?VAR}: refuse substitutions outright
        // and take environment overrides from a fixed table instead.
        for (var i = 0; i < texts.Count; i++)
            if (texts[i].Contains("${", StringComparison.Ordinal))
                errors.Add($"{(i < fileList.Count ? fileList[i] : "override")}: HOCON substitutions (${{...}}) are not supported; use the MTASTS_* environment variables");
        if (errors.Count > 0) throw new GatewayConfigException(errors);
        texts.Add(EnvironmentOverrides(Environment.GetEnvironmentVariable));
        Config hocon;
        try
        {
            // Later files win: concatenation lets later keys override earlier ones.
            hocon = ConfigurationFactory.ParseString(string.Join("\n", texts));
        }
        catch (Exception ex)
        {
            throw new GatewayConfigException(new[] { $"HOCON syntax error: {ex.Message}" });
        }
        var cfg = FromHocon(hocon, fileList);
        // The Akka settings mtasts.cluster stands for go after everything else, so that they are what Akka runs with.
        texts.Add(cfg.Cluster.AkkaHocon);
        return cfg with
        {
            Hocon = ConfigurationFactory.ParseString(string.Join("\n", texts)),
            HoconText = string.Join("\n", texts), OverrideText = overrideHocon,
        };
    }

    /// <summary>Environment variable → HOCON (values quoted). Applied after every file: the environment wins.</summary>
    public static string EnvironmentOverrides(Func<string, string?> env)
    {
        static string Q(string v) => "\"" + v.Replace("\\", "\\\\").Replace("\"", "\\\"") + "\"";
        var sb = new System.Text.StringBuilder();
        void Set(string variable, params string[] paths)
        {
            if (env(variable) is not { Length: > 0 } v) return;
            foreach (var p in paths) sb.Append(p).Append(" = ").Append(Q(v)).Append('\n');
        }
        Set("MTASTS_DATA_DIR", "mtasts.data-dir");
        Set("MTASTS_HOSTNAME", "mtasts.hostname");
        Set("MTASTS_POLICY_PROXY", "mtasts.policy.proxy");
        Set("MTASTS_PUBLIC_HOSTNAME", "akka.remote.dot-netty.tcp.public-hostname");
        Set("MTASTS_AKKA_PORT", "akka.remote.dot-netty.tcp.port");
        Set("MTASTS_CLUSTER_FORMATION", "mtasts.cluster.formation");
        Set("MTASTS_SPLIT_BRAIN", "mtasts.cluster.split-brain");
        Set("MTASTS_MANAGEMENT_HOSTNAME", "mtasts.cluster.bootstrap.management-hostname");
        Set("MTASTS_MANAGEMENT_PORT", "mtasts.cluster.bootstrap.management-port");
        Set("MTASTS_REQUIRED_CONTACT_POINTS", "mtasts.cluster.bootstrap.required-contact-point-nr");
        if (env("MTASTS_CONTACT_POINTS") is { Length: > 0 } contactPoints)
            sb.Append("mtasts.cluster.bootstrap.contact-points = [")
              .AppendJoin(", ", contactPoints.Split(',', StringSplitOptions.RemoveEmptyEntries | StringSplitOptions.TrimEntries).Select(Q))
              .Append("]\n");
        Set("MTASTS_PG", "akka.persistence.journal.sql.connection-string", "akka.persistence.journal.sharding.connection-string",
            "akka.persistence.snapshot-store.sql.connection-string", "akka.persistence.snapshot-store.sharding.connection-string");
        if (env("MTASTS_SEED_NODES") is { Length: > 0 } seeds)
            sb.Append("akka.cluster.seed-nodes = [")
              .AppendJoin(", ", seeds.Split(',', StringSplitOptions.RemoveEmptyEntries | StringSplitOptions.TrimEntries).Select(Q))
              .Append("]\n");
        return sb.ToString();
    }

    public static GatewayConfig FromHocon(Config hocon, IReadOnlyList<string> files)
    {
        var errors = new List<string>();
        var m = hocon.GetConfig("mtasts") ?? ConfigurationFactory.Empty;

        var mtasts = new ConfigSection(new HoconConfigSource(hocon), "mtasts", errors);
        var d = Defaults;

        // An imported destconfig file (`destconfig import`, <data-dir>/destconfig.conf) replaces mtasts.destinations and
        // mtasts.bounce-profiles of the configuration files as a whole (the vendor's workflow: the file is the config).
        var destConfigFile = Path.Combine(Path.GetFullPath(m.HasPath("data-dir") && m.GetString("data-dir") is { Length: > 0 } dd ? dd : d.DataDir),
            DestinationControls.DestConfigFile.FileName);
        var imported = File.Exists(destConfigFile);
        var destinations = imported ? DestinationControls.DestConfigFile.Validate(File.ReadAllText(destConfigFile)) : DestinationConfigLoader.Load(hocon);
        if (!destinations.IsValid) errors.AddRange(destinations.Errors.Select(e => imported ? $"{destConfigFile}: {e}" : e));

        var virtualGateways = new Dictionary<string, IPAddress>(StringComparer.OrdinalIgnoreCase);
        if (m.HasPath("virtual-gateways"))
            foreach (var kv in m.GetConfig("virtual-gateways").AsEnumerable())
            {
                var name = kv.Key.Trim('"');
                if (IPAddress.TryParse(kv.Value.GetString(), out var ip)) virtualGateways[name] = ip;
                else errors.Add($"mtasts.virtual-gateways.{name} = \"{kv.Value.GetString()}\": not an IP address");
            }
        if (destinations.Config is { } dc)
            foreach (var prof in dc.Profiles.Profiles.Prepend(dc.Profiles.Default))
                if (prof.SourceAddress is { } src && !IPAddress.TryParse(src, out _) && !virtualGateways.ContainsKey(src))
                    errors.Add($"destination profile '{prof.Destination}': source-address '{src}' is neither an IP address nor a virtual gateway (mtasts.virtual-gateways)");
        var bounceVerification = ReadBounceVerification(m, errors);
        if (destinations.Config is { } bvc)
            foreach (var prof in bvc.Profiles.Profiles.Prepend(bvc.Profiles.Default).Where(p => p.BounceVerification))
                if (bounceVerification is null)
                    errors.Add($"destination \"{prof.Destination}\": bounce-verification = on needs mtasts.bounce-verification.keys " +
                               "(at least one { id = 0..9, secret = \"...\" }) and mtasts.bounce-verification.domains (our sender domains)");

        var cluster = ClusterFormation.Read(hocon, errors);
        var cfg = new GatewayConfig
        {
            Cluster = cluster,
            Hocon = hocon,
            Files = files,
            DataDir = mtasts.NonEmpty("data-dir") ?? d.DataDir,
            Hostname = mtasts.NonEmpty("hostname") ?? d.Hostname,
            Listener = ListenerConfig.Read(mtasts.Section("listener")),
            VirtualGateways = virtualGateways,
            Delivery = DeliveryOptions.Read(mtasts.Section("delivery")),
            Dns = DnsOptions.Read(mtasts.Section("dns")),
            Policy = PolicyOptions.Read(mtasts.Section("policy")),
            Log = LogOptions.Read(mtasts.Section("log")),
            Destinations = destinations.Config ?? DestinationConfig.Default,
            ClusterSpoolConnectionString = m.HasPath("cluster.spool.connection-string") ? m.GetString("cluster.spool.connection-string")
                : hocon.GetString("akka.persistence.journal.sql.connection-string", ""),
            DestConfigFile = destConfigFile,
            DestConfigImported = imported,
            BounceVerification = bounceVerification,
            TlsRpt = TlsRptOptions.Read(mtasts.Section("tls-rpt")),
            Throttle = ThrottleOptions.Read(mtasts.Section("throttle")),
        };
        // A cluster shares one spool: every node must reach the same PostgreSQL (a SQLite file is one node's).
        if (cfg.Clustered && !hocon.GetString("akka.persistence.journal.sql.provider-name", "").StartsWith("PostgreSQL", StringComparison.OrdinalIgnoreCase))
            errors.Add("this node is clustered (mtasts.cluster.formation) but the journal is not PostgreSQL: a cluster needs the shared PostgreSQL " +
                       "journal and spool (add hocon/cluster-postgres.conf and MTASTS_PG)");
        // One owner per domain counts one budget for the cluster: a budget per node does not exist there.
        if (cfg.Clustered && cfg.Destinations.Profiles.Profiles.Prepend(cfg.Destinations.Profiles.Default)
                .FirstOrDefault(p => p.LimitScope == LimitScope.PerGatewayHostname) is { } perNode)
            errors.Add($"destination \"{perNode.Destination}\": limit-scope = per-gateway-hostname is not supported in a cluster: each destination " +
                       "has one owner that counts its limits for the whole cluster (use system-wide)");
        // Connections per MX address are counted by each node's transport: a per-MX-IP budget for the cluster does not exist.
        if (cfg.Clustered && cfg.Destinations.Profiles.Profiles.Prepend(cfg.Destinations.Profiles.Default)
                .FirstOrDefault(p => p.LimitType == LimitType.PerMxIp) is { } perIp)
            errors.Add($"destination \"{perIp.Destination}\": limit-type = mx-ip is not supported in a cluster: connections per MX IP " +
                       "address are counted by each node, not for the cluster (use limit-type = domain)");
        if (cfg.Clustered && cfg.ClusterSpoolConnectionString.Length == 0)
            errors.Add("mtasts.cluster.spool.connection-string (or the journal's connection string) must be set in a cluster");
        // A cluster node bound to all interfaces advertises akka.tcp://mtasts@0.0.0.0:PORT unless public-hostname is
        // set: it never matches its own seed-node entry and the other nodes cannot reach it (measured, Akka 1.5.74).
        if (cluster.IsClustered
            && hocon.GetString("akka.remote.dot-netty.tcp.hostname", "") is "0.0.0.0" or "::" or "[::]"
            && string.IsNullOrWhiteSpace(hocon.GetString("akka.remote.dot-netty.tcp.public-hostname", "")))
            errors.Add("akka.remote.dot-netty.tcp.hostname is a wildcard address but public-hostname is not set: the node would " +
                       "advertise itself as 0.0.0.0; set MTASTS_PUBLIC_HOSTNAME to this node's name in the seed-node list");
        if (errors.Count > 0) throw new GatewayConfigException(errors);
        return cfg;
    }

    /// <summary>mtasts.bounce-verification { keys = [{ id, secret }], validity, domains }: null (off) when it has no
    /// key; keys without domains (or the reverse) is an error, since nothing could be tagged or verified.</summary>
    private static BounceAddressTagger? ReadBounceVerification(Config m, List<string> errors)
    {
        const string Path = "bounce-verification";
        if (!m.HasPath(Path)) return null;
        var count = errors.Count;
        var keys = new List<BounceTagKey>();
        if (m.HasPath(Path + ".keys"))
        {
            var value = m.GetValue(Path + ".keys");
            // Akka's IsArray() is false for an empty array "[]".
            var isArray = value.IsArray() || (value.Values.Count > 0 && value.Values[0] is Akka.Configuration.Hocon.HoconArray);
            var items = isArray ? value.GetArray() : null;
            if (items is null) errors.Add($"mtasts.{Path}.keys must be a list of {{ id = 0..9, secret = \"...\" }}");
            foreach (var item in items ?? [])
            {
                var fields = item.IsObject() ? item.GetObject().Items : null;
                var idText = fields?.GetValueOrDefault("id")?.GetString();
                var secret = fields?.GetValueOrDefault("secret")?.GetString();
                if (fields is null || fields.Keys.Any(k => k is not ("id" or "secret")))
                    errors.Add($"mtasts.{Path}.keys: each key is {{ id = 0..9, secret = \"...\" }} and nothing else");
                else if (!int.TryParse(idText, System.Globalization.NumberStyles.None, System.Globalization.CultureInfo.InvariantCulture, out var id) || id > 9)
                    errors.Add($"mtasts.{Path}.keys: id = {idText ?? "(missing)"} is not a key number 0..9 (the K of prvs=KDDDSSSSSS)");
                else if (System.Text.Encoding.UTF8.GetByteCount(secret ?? "") < BounceTagKey.MinSecretBytes)
                    errors.Add($"mtasts.{Path}.keys: key {id}: the secret needs at least {BounceTagKey.MinSecretBytes} characters");
                else if (keys.Any(k => k.Id == id))
                    errors.Add($"mtasts.{Path}.keys: key id {id} appears twice");
                else keys.Add(new BounceTagKey(id, System.Text.Encoding.UTF8.GetBytes(secret!)));
            }
        }
        var validity = TimeSpan.FromDays(7);
        if (m.HasPath(Path + ".validity"))
        {
            var raw = m.GetString(Path + ".validity");
            if (!ConfigSection.TryParseDuration(raw, out validity) || validity < BounceAddressTagger.MinValidity
                || validity > BounceAddressTagger.MaxValidity || validity.Ticks % TimeSpan.TicksPerDay != 0)
                errors.Add($"mtasts.{Path}.validity = \"{raw}\": whole days from 1d to 30d (the tag carries its expiry day)");
        }
        var domains = m.HasPath(Path + ".domains") ? m.GetStringList(Path + ".domains").Select(d => d.Trim()).ToArray() : [];
        foreach (var d in domains)
            if (!DomainNames.IsValidHostName(d.StartsWith('.') ? d.AsSpan(1) : d.AsSpan()))
                errors.Add($"mtasts.{Path}.domains: \"{d}\" is not a domain (example.com) or a subdomain pattern (.example.com)");
        if (keys.Count > 0 && domains.Length == 0)
            errors.Add($"mtasts.{Path}.domains is empty: list our sender domains (those whose bounces come back to this gateway)");
        if (keys.Count == 0 && domains.Length > 0)
            errors.Add($"mtasts.{Path}.domains is set but no key is configured (mtasts.{Path}.keys)");
        return errors.Count > count || keys.Count == 0 ? null : new BounceAddressTagger(keys, validity, domains);
    }
}

public sealed class GatewayConfigException(IReadOnlyList<string> errors)
    : Exception("invalid configuration:\n  " + string.Join("\n  ", errors))
{
    public IReadOnlyList<string> Errors { get; } = errors;
}
