using System.Globalization;
using MtaSts.Actors.LoadTests.Receivers;

namespace MtaSts.Actors.LoadTests.Core;

/// <summary>Everything a run can be told on the command line. Scenarios fill in their own defaults first.</summary>
public sealed record RunOptions
{
    public string Scenario { get; init; } = "relay-throughput";
    public IReadOnlyList<string> Targets { get; init; } = ["gateway", "postfix"];
    public long Messages { get; init; } = 20_000;
    public TimeSpan Duration { get; init; } = TimeSpan.FromSeconds(120);
    public TimeSpan WarmUp { get; init; } = TimeSpan.FromSeconds(3);
    /// <summary>Closed model: after the warm-up, wait until the target has finished the warm-up mail (bounded like the
    /// drain) before the measured part. Without it a target whose intake is faster carries more warm-up mail into the
    /// measured window and its end-to-end rate counts deliveries of messages it is not credited for.</summary>
    public bool Settle { get; init; } = true;
    public int Sessions { get; init; } = 20;
    /// <summary>Set = open model at this many messages/s; null = closed model with <see cref="Sessions"/> sessions.</summary>
    public double? Rate { get; init; }
    /// <summary>accept-latency: per target a closed run finds the maximum accept rate, then an open run offers this
    /// fraction of it (default 0.8) and reports its accept latency. null = an ordinary single run.</summary>
    public double? OpenFraction { get; init; }
    /// <summary>accept-latency: the open run's session cap as a multiple of <see cref="Sessions"/> (default 2).</summary>
    public int OpenSessionsFactor { get; init; } = 2;
    public int SizeBytes { get; init; } = 2 * 1024;
    public int Domains { get; init; } = 1;
    public double Zipf { get; init; }
    public int ClientMessagesPerConnection { get; init; } = 100;
    public string Receiver { get; init; } = "counting";
    public IReadOnlyList<string> SinkArgs { get; init; } = [];
    public int? SinkPort { get; init; }
    public int? TargetPort { get; init; }
    public int? TargetPid { get; init; }
    public FaultPlan Faults { get; init; } = FaultPlan.None;
    public bool[] MtaStsVariants { get; init; } = [false];
    /// <summary>`--tls`: the receiver offers STARTTLS with a certificate from the run's test CA and every relay must
    /// verify it (the gateway: tls-support = required-verify-hosted-domains; Postfix: verify, match = the MX name).</summary>
    public bool Tls { get; init; }
    /// <summary>Gateway runs with <c>mtasts.admin.metrics</c> on/off, in this order (repeats allowed: on,off,on,off);
    /// null = one run with the gateway's default (on). Targets without the switch run once.</summary>
    public bool[]? MetricsVariants { get; init; }
    public bool Backlog { get; init; }
    public TimeSpan BacklogHold { get; init; } = TimeSpan.FromSeconds(5);
    public TimeSpan DrainTimeout { get; init; } = TimeSpan.FromSeconds(90);
    /// <summary>The drain also stops when nothing arrived for this long (null: max(15 s, 3 × retry + 10 s)).</summary>
    public TimeSpan? StallTimeout { get; init; }
    /// <summary>One more 1 s sample after the drain, for the plots (off in the smoke, where every second counts).</summary>
    public bool TailSample { get; init; } = true;
    public TimeSpan? RetryInterval { get; init; }
    public int DestinationConcurrency { get; init; } = 20;
    public int MessagesPerConnection { get; init; } = 50;
    /// <summary>Gateway <c>mtasts.delivery.mx-rollup</c>; null = the shipped default.</summary>
    public bool? MxRollup { get; init; }
    /// <summary>Gateway <c>mtasts.delivery.mx-rollup-max-connections</c>; null = the shipped default.</summary>
    public int? MxRollupMaxConnections { get; init; }
    /// <summary>Profile <c>limit-type</c> given to the gateway with the destination concurrency: false = domain, true = mx-ip.</summary>
    public bool PerMxIp { get; init; }
    public string? OutDirectory { get; init; }
    public string WorkDirectory { get; init; } = "/tmp/mtasts-load";
    public string? GatewayDll { get; init; }
    public string? GatewayCommand { get; init; }
    public string RepoRoot { get; init; } = ".";

    public static string Usage => """
        usage: mtasts-load <scenario> [options]        (mtasts-load list: scenarios; mtasts-load all --help: every scenario, one report)
          --target LIST          gateway | gateway-cluster | gateway-cluster3 | postfix | ceiling | host:port, comma separated (default per scenario);
                                 ceiling = the generator straight to the receiver, no relay (the harness-bound maximum)
          --messages N           measured messages per run (after warm-up)
          --duration S           max measured seconds per run (whichever bound comes first)
          --warmup S             warm-up seconds, not counted (default 3)
          --no-settle            closed model: start measuring right after the warm-up, with its mail still queued
                                 (default: wait until the target finished the warm-up mail, bounded like the drain)
          --sessions N           closed model: concurrent SMTP sessions; open model: max sessions
          --rate R               open model: R messages/s from a fixed schedule (latency from scheduled time)
          --open-fraction F      accept-latency: the open run offers F × the maximum accept rate its closed run found (default 0.8)
          --open-sessions-factor K  accept-latency: the open run may use K × --sessions sessions (default 2; its wait for
                                 a free session is the step session_wait)
          --size BYTES           message size (e.g. 2048, 102400, or 2k / 100k)
          --domains N            destination domains dNNNNN.test   --zipf S  Zipf exponent (0 = uniform)
          --client-reuse N       messages per generator connection (default 100)
          --receiver KIND        counting (in-process, per-message) | smtp-sink (Postfix, counts only)
          --sink-args "ARGS"     extra smtp-sink options, e.g. "-Q data" or "-w 1"
          --sink-port P          fixed receiver port (for --target host:port relays)
          --target-port P        port for the started target   --target-pid PID  sample RSS of an external target
          --faults SPEC          receiver faults: banner421=0.1,rcpt451=0.1,rcpt550=0.02,data451=0.05,delay=200ms,delayshare=0.5
          --retry S              short retry interval for the target (hostile/backlog scenarios)
          --dest-concurrency N   per-destination connection limit given to the target (default 20)
          --dest-msgs-per-conn N messages per delivery connection given to the target (default 50)
          --mx-rollup on|off     gateway MX roll-up (mtasts.delivery.mx-rollup; default: the shipped setting)
          --mx-rollup-max N      gateway connections per MX address with roll-up (mtasts.delivery.mx-rollup-max-connections; 0 = none)
          --dest-limit-type T    domain | mx-ip: what --dest-concurrency covers at the gateway (default domain)
          --mta-sts | --mta-sts-both | --mta-sts-on-first   MTA-STS on only | off then on | on then off (order check)
          --tls                  the receiver offers STARTTLS (test CA certificate for the MX name); relays must verify it
          --metrics LIST         gateway runs with mtasts.admin.metrics on/off in this order, e.g. on,off,on,off (same run:
                                 the report gives metrics on ÷ off per target); "both" = on,off. Other targets run once.
          --drain-timeout S      how long to wait for delivery after injection (default 90)
          --stall S              stop the drain when nothing arrived for S seconds (default max(15, 3 × retry + 10))
          --out DIR              report directory (default load-tests/results/<timestamp>-<scenario>)
          --workdir DIR          scratch for target queues/configs (default /tmp/mtasts-load)
          --gateway-dll PATH     mtasts-gateway.dll (default: src/MtaSts.Actors.Host/bin/{Release,Debug}/net10.0)
          --gateway-cmd "CMD"    start command with {config} {listen} {port} {sink} {workdir} placeholders
        """;

    public static RunOptions Parse(RunOptions defaults, string[] args)
    {
        var o = defaults;
        for (var i = 0; i < args.Length; i++)
        {
            string Next() => i + 1 < args.Length ? args[++i] : throw new ArgumentException($"{args[i]} needs a value");
            switch (args[i])
            {
                case "--target": o = o with { Targets = Next().Split(',', StringSplitOptions.RemoveEmptyEntries | StringSplitOptions.TrimEntries) }; break;
                case "--messages": o = o with { Messages = ParseCount(Next()) }; break;
                case "--duration": o = o with { Duration = ParseSeconds(Next()) }; break;
                case "--warmup": o = o with { WarmUp = ParseSeconds(Next()) }; break;
                case "--sessions": o = o with { Sessions = (int)ParseCount(Next()) }; break;
                case "--rate": o = o with { Rate = double.Parse(Next(), CultureInfo.InvariantCulture) }; break;
                case "--closed": o = o with { Rate = null }; break;
                case "--open-fraction": o = o with { OpenFraction = double.Parse(Next(), CultureInfo.InvariantCulture) }; break;
                case "--open-sessions-factor": o = o with { OpenSessionsFactor = int.Parse(Next(), CultureInfo.InvariantCulture) }; break;
                case "--size": o = o with { SizeBytes = (int)ParseCount(Next()) }; break;
                case "--domains": o = o with { Domains = (int)ParseCount(Next()) }; break;
                case "--zipf": o = o with { Zipf = double.Parse(Next(), CultureInfo.InvariantCulture) }; break;
                case "--client-reuse": o = o with { ClientMessagesPerConnection = (int)ParseCount(Next()) }; break;
                case "--receiver": o = o with { Receiver = Next() }; break;
                case "--sink-args": o = o with { SinkArgs = Next().Split(' ', StringSplitOptions.RemoveEmptyEntries) }; break;
                case "--sink-port": o = o with { SinkPort = int.Parse(Next(), CultureInfo.InvariantCulture) }; break;
                case "--target-port": o = o with { TargetPort = int.Parse(Next(), CultureInfo.InvariantCulture) }; break;
                case "--target-pid": o = o with { TargetPid = int.Parse(Next(), CultureInfo.InvariantCulture) }; break;
                case "--faults": o = o with { Faults = ParseFaults(Next()) }; break;
                case "--retry": o = o with { RetryInterval = ParseSeconds(Next()) }; break;
                case "--dest-concurrency": o = o with { DestinationConcurrency = (int)ParseCount(Next()) }; break;
                case "--dest-msgs-per-conn": o = o with { MessagesPerConnection = (int)ParseCount(Next()) }; break;
                case "--mx-rollup-max": o = o with { MxRollupMaxConnections = int.TryParse(Next(), out var mrm) && mrm >= 0 ? mrm : throw new ArgumentException("--mx-rollup-max: a number ≥ 0") }; break;
                case "--dest-limit-type": o = o with { PerMxIp = Next() switch { "domain" => false, "mx-ip" => true, var x => throw new ArgumentException($"--dest-limit-type: '{x}' is not domain or mx-ip") } }; break;
                case "--mx-rollup": o = o with { MxRollup = Next() switch { "on" => true, "off" => false, var x => throw new ArgumentException($"--mx-rollup: '{x}' is not on or off") } }; break;
                case "--no-settle": o = o with { Settle = false }; break;
                case "--drain-timeout": o = o with { DrainTimeout = ParseSeconds(Next()) }; break;
                case "--stall": o = o with { StallTimeout = ParseSeconds(Next()) }; break;
                case "--hold": o = o with { BacklogHold = ParseSeconds(Next()) }; break;
                case "--mta-sts": o = o with { MtaStsVariants = [true] }; break;
                case "--tls": o = o with { Tls = true }; break;
                case "--mta-sts-both": o = o with { MtaStsVariants = [false, true] }; break;
                case "--mta-sts-on-first": o = o with { MtaStsVariants = [true, false] }; break;
                case "--metrics": o = o with { MetricsVariants = ParseOnOff(Next()) }; break;
                case "--out": o = o with { OutDirectory = Next() }; break;
                case "--workdir": o = o with { WorkDirectory = Next() }; break;
                case "--gateway-dll": o = o with { GatewayDll = Next() }; break;
                case "--gateway-cmd": o = o with { GatewayCommand = Next() }; break;
                case "--repo": o = o with { RepoRoot = Next() }; break;
                default: throw new ArgumentException($"unknown option {args[i]}");
            }
        }
        // Hard bounds, so a typo can't start an endless or unbounded run.
        if (o.Messages is <= 0 or > 10_000_000) throw new ArgumentException("--messages must be 1..10,000,000");
        if (o.Duration <= TimeSpan.Zero || o.Duration > TimeSpan.FromHours(2)) throw new ArgumentException("--duration must be 1 s..2 h");
        if (o.Sessions is <= 0 or > 2000) throw new ArgumentException("--sessions must be 1..2000");
        if (o.Rate is <= 0 or > 200_000) throw new ArgumentException("--rate must be 0..200,000 msg/s");
        if (o.OpenFraction is { } f && (f is <= 0 or > 1 || double.IsNaN(f))) throw new ArgumentException("--open-fraction must be in (0, 1]");
        if (o.OpenSessionsFactor is < 1 or > 100) throw new ArgumentException("--open-sessions-factor must be in 1..100");
        if (o.OpenFraction is not null && o.Rate is not null)
            throw new ArgumentException("accept-latency finds its open-model rate itself (--open-fraction × the maximum it measured): leave out --rate");
        if (o.SizeBytes is < 400 or > 50 * 1024 * 1024) throw new ArgumentException("--size must be 400 B..50 MB");
        if (o.Domains is <= 0 or > 1_000_000) throw new ArgumentException("--domains must be 1..1,000,000");
        return o;
    }

    /// <summary>"on,off,on,off" → [true, false, true, false]; "both" → [true, false]; at most 10 runs.</summary>
    public static bool[] ParseOnOff(string s)
    {
        var list = s.Trim().ToLowerInvariant() == "both" ? ["on", "off"] : s.Split(',', StringSplitOptions.RemoveEmptyEntries | StringSplitOptions.TrimEntries);
        if (list.Length is 0 or > 10) throw new ArgumentException("--metrics: 1 to 10 of on/off, e.g. on,off,on,off");
        return list.Select(x => x.ToLowerInvariant() switch
        {
            "on" => true,
            "off" => false,
            _ => throw new ArgumentException($"--metrics: '{x}' is not on or off"),
        }).ToArray();
    }

    private static long ParseCount(string s)
    {
        s = s.Trim().ToLowerInvariant().Replace("_", "", StringComparison.Ordinal).Replace(",", "", StringComparison.Ordinal);
        long mult = 1;
        if (s.EndsWith('k')) { mult = 1024; s = s[..^1]; }
        else if (s.EndsWith('m')) { mult = 1024 * 1024; s = s[..^1]; }
        return (long)(double.Parse(s, CultureInfo.InvariantCulture) * mult);
    }

    public static TimeSpan ParseSeconds(string s)
    {
        s = s.Trim().ToLowerInvariant();
        if (s.EndsWith("ms", StringComparison.Ordinal)) return TimeSpan.FromMilliseconds(double.Parse(s[..^2], CultureInfo.InvariantCulture));
        if (s.EndsWith('m')) return TimeSpan.FromMinutes(double.Parse(s[..^1], CultureInfo.InvariantCulture));
        if (s.EndsWith('s')) s = s[..^1];
        return TimeSpan.FromSeconds(double.Parse(s, CultureInfo.InvariantCulture));
    }

    public static FaultPlan ParseFaults(string spec)
    {
        var f = new FaultPlan();
        foreach (var part in spec.Split(',', StringSplitOptions.RemoveEmptyEntries | StringSplitOptions.TrimEntries))
        {
            var kv = part.Split('=', 2);
            if (kv.Length != 2) throw new ArgumentException($"bad fault '{part}'");
            double P() => double.Parse(kv[1].TrimEnd('%'), CultureInfo.InvariantCulture) / (kv[1].EndsWith('%') ? 100 : 1);
            f = kv[0].ToLowerInvariant() switch
            {
                "banner421" => f with { Banner421 = P() },
                "mail451" => f with { Mail451 = P() },
                "rcpt451" => f with { Rcpt451 = P() },
                "rcpt550" => f with { Rcpt550 = P() },
                "data451" => f with { Data451 = P() },
                "delay" => f with { DataDelay = ParseSeconds(kv[1]) },
                "delayshare" => f with { DataDelayShare = P() },
                _ => throw new ArgumentException($"unknown fault '{kv[0]}'"),
            };
        }
        return f;
    }
}
