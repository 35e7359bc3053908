using System.Globalization;
using MtaSts.Actors.LoadTests.Targets;

namespace MtaSts.Actors.ClusterChaos;

/// <summary>Command line of cluster-chaos (tests/cluster/run.sh passes everything through).</summary>
internal sealed record Options
{
    public const string Usage = """
        usage: cluster-chaos --gateway PATH/mtasts-gateway.dll --repo DIR [--scenario a|b|c|d|limit|all|a,c,...]
                             [--quick] [--messages N] [--rate R] [--stop-seconds S] [--work DIR] [--keep]
                             [--fresh-bound S] [--bootstrap seeds|management] [--cluster-conf FILE] [--node-extra FILE]
          a      SIGKILL a non-seed node (node 3) under load; it stays down while the others drain
          b      SIGKILL the node started first (node 1, first seed) under load; it stays down while the others drain
          c      SIGSTOP node 2 for --stop-seconds (default 40: beyond failure detector + the resolver's 7 s stable-after), SIGCONT
          d      rolling restart of every node (SIGTERM, restart, wait until it listens) under load
          limit  max-concurrent-connections = 2 for limited.test, traffic through all 3 nodes: receiver peak must be <= 2
        --messages N      cap on generated messages per scenario (default 8000; --quick 3000)
        --rate R          messages/s over all nodes (default 40; --quick 30)
        --fresh-bound S   a never-seen domain must arrive within S seconds of the fault (default 30)
        --bootstrap       seeds (today: static seed nodes 1,2) | management (Akka.Management config discovery)
        --cluster-conf    overlay instead of hocon/cluster-postgres.conf;  --node-extra: HOCON appended to every node
        """;

    public string GatewayDll { get; init; } = "";
    public string RepoRoot { get; init; } = "";
    public string[] Scenarios { get; init; } = ["a", "b", "c", "d", "limit"];
    public bool Quick { get; init; }
    public int? MessagesOpt { get; init; }
    public double? RateOpt { get; init; }
    public double StopSeconds { get; init; } = 40;
    public string? WorkDir { get; init; }
    public bool Keep { get; init; }
    public ClusterBootstrap Bootstrap { get; init; } = ClusterBootstrap.StaticSeeds;
    public string? ClusterConf { get; init; }
    public string NodeExtra { get; init; } = "";

    public int Messages => MessagesOpt ?? (Quick ? 3000 : 8000);   // a cap: the phases bound the time
    public double Rate => RateOpt ?? (Quick ? 30 : 40);
    /// <summary>Load before the fault, and after it (the fault's aftermath under load).</summary>
    public TimeSpan Before => TimeSpan.FromSeconds(Quick ? 4 : 10);
    public TimeSpan After => TimeSpan.FromSeconds(Quick ? 6 : 20);
    /// <summary>Drain with the faulted node still down; then drain after every down node was restarted. The lost node's
    /// domains get new owners ~20–25 s after a SIGKILL (failure detector, stable-after, removal margin): the quick drain
    /// (from the end of the load, 6 s after the fault) must outlast that.</summary>
    public TimeSpan DrainWhileDown => TimeSpan.FromSeconds(Quick ? 30 : 60);
    public TimeSpan DrainAfterRestart => TimeSpan.FromSeconds(Quick ? 20 : 60);
    /// <summary>How long a never-seen domain may take to be delivered after a fault (a longer time fails the scenario;
    /// the real time is still reported). A domain whose shard, or the shard coordinator, was on the lost node waits for
    /// the failure detector (~4 s), the resolver's stable-after (7 s), the removal margin (7 s) and the hand-over: ~20–25 s
    /// measured on a loaded 2-core machine; any other domain ~0.1 s. The old per-node design stalled every probe 25–47 s.</summary>
    public double FreshBound { get; init; } = 30;
    public TimeSpan ProbeBound => TimeSpan.FromSeconds(FreshBound);

    public static Options Parse(string[] args)
    {
        var o = new Options();
        for (var i = 0; i < args.Length; i++)
        {
            string Next() => i + 1 < args.Length ? args[++i] : throw new ArgumentException($"{args[i]} needs a value");
            o = args[i] switch
            {
                "--gateway" => o with { GatewayDll = Path.GetFullPath(Next()) },
                "--repo" => o with { RepoRoot = Path.GetFullPath(Next()) },
                "--scenario" or "--scenarios" => o with { Scenarios = ParseScenarios(Next()) },
                "--quick" => o with { Quick = true },
                "--messages" => o with { MessagesOpt = int.Parse(Next(), CultureInfo.InvariantCulture) },
                "--rate" => o with { RateOpt = double.Parse(Next(), CultureInfo.InvariantCulture) },
                "--stop-seconds" => o with { StopSeconds = double.Parse(Next(), CultureInfo.InvariantCulture) },
                "--work" => o with { WorkDir = Path.GetFullPath(Next()) },
                "--keep" => o with { Keep = true },
                "--bootstrap" => o with { Bootstrap = Next() switch
                {
                    "seeds" => ClusterBootstrap.StaticSeeds,
                    "management" => ClusterBootstrap.Management,
                    var x => throw new ArgumentException($"--bootstrap {x}: seeds | management"),
                } },
                "--cluster-conf" => o with { ClusterConf = Path.GetFullPath(Next()) },
                "--node-extra" => o with { NodeExtra = File.ReadAllText(Next()) },
                "--fresh-bound" => o with { FreshBound = double.Parse(Next(), CultureInfo.InvariantCulture) },
                "--help" or "-h" => throw new ArgumentException("help"),
                _ => throw new ArgumentException($"unknown argument '{args[i]}'"),
            };
        }
        if (!File.Exists(o.GatewayDll)) throw new ArgumentException($"--gateway: '{o.GatewayDll}' not found (build src/MtaSts.Actors.Host -c Release)");
        if (!Directory.Exists(Path.Combine(o.RepoRoot, "hocon"))) throw new ArgumentException("--repo: no hocon/ directory there");
        if (o.Messages is < 10 or > 200_000 || o.Rate is <= 0 or > 2000 || o.StopSeconds is < 1 or > 300 || o.FreshBound is < 1 or > 300)
            throw new ArgumentException("--messages 10..200000, --rate 0..2000, --stop-seconds 1..300");
        return o;
    }

    private static string[] ParseScenarios(string s)
    {
        if (s == "all") return ["a", "b", "c", "d", "limit"];
        var list = s.Split(',', StringSplitOptions.RemoveEmptyEntries | StringSplitOptions.TrimEntries);
        foreach (var x in list)
            if (x is not ("a" or "b" or "c" or "d" or "limit")) throw new ArgumentException($"unknown scenario '{x}' (a|b|c|d|limit|all)");
        return list;
    }
}
