using System.Globalization;
using MtaSts.Actors.LoadTests.Core;
using MtaSts.Actors.LoadTests.Reports;
using MtaSts.Actors.LoadTests.Targets;

namespace MtaSts.Actors.LoadTests.Scenarios;

/// <summary>
/// mtasts-load all: every scenario against the gateway, Postfix and the raw ceiling (where it makes sense), the target
/// order alternating from one scenario to the next, into ONE combined report. --smoke: tiny counts, fails only on lost
/// or duplicated messages. --scale F: every scenario's default message count × F.
/// </summary>
public static class AllRunner
{
    public const string Usage = """
        usage: mtasts-load all [--smoke] [--scale F] [--target LIST] [--scenarios LIST] [--out DIR] [--update-readme] [scenario options …]
          --smoke            tiny counts, every scenario, no warm-up, 1 s retries in hostile-receiver (about 1–2 minutes);
                             exit 1 on any LOST or duplicated message, never on speed
          --scale F          every scenario's default message count × F (at least 50), e.g. 0.1; an explicit --messages wins
          --target LIST      default gateway,postfix,ceiling; Postfix is left out (with a note) when it cannot run here
          --scenarios LIST   a subset, e.g. relay-throughput,backlog (default: all nine; the smoke leaves out accept-latency)
          --out DIR          report directory (default load-tests/results/<timestamp>-all[-smoke])
          --update-readme    replace README.md's load-test table (between its load-tests:all markers) with this run's
                             summary, command, machine, load average and commit (readme-table.md is written either way)
          any other option (e.g. --drain-timeout 60, --sessions 40) applies to every scenario: mtasts-load --help
        The ceiling (generator straight to the receiver) is not run where it means nothing: backlog (no queue to hold
        mail while the receiver is down) and hostile-receiver (the generator does not retry, so faults become submit
        failures, not deliveries); in mta-sts-everywhere Postfix and the ceiling run the "off" variant only.
        Exit: 0 ok, 1 a message was LOST or duplicated, 2 usage, 3 the gateway could not be started in any scenario,
        4 a run ended with a harness error (reported; the other runs still ran).
        """;

    /// <summary>Scenarios where the ceiling is not meaningful, and why (shown in the report).</summary>
    private static readonly Dictionary<string, string> NoCeiling = new()
    {
        ["backlog"] = "backlog: no ceiling — it has no queue to hold mail while the receiver is down, and nothing to drain",
        ["relay-throughput-tls"] = "relay-throughput-tls: no ceiling — the generator speaks plaintext to the receiver; the plain scenario's ceiling applies",
        ["many-domains-tls"] = "many-domains-tls: no ceiling — the generator speaks plaintext to the receiver; the plain scenario's ceiling applies",
        ["accept-latency"] = "accept-latency: no ceiling — the generator's own receiver answers in microseconds; the target is the relay's accept latency (gateway and Postfix)",
        ["hostile-receiver"] = "hostile-receiver: no ceiling — the generator does not retry, so the receiver's 4xx/5xx would be submit failures instead of retried deliveries and bounces",
    };

    public static async Task<int> RunAsync(string[] args, string repoRoot)
    {
        bool smoke = false;
        double? scale = null;
        string? outDir = null;
        IReadOnlyList<string> targets = ["gateway", "postfix", CeilingTarget.TargetName];
        IReadOnlyList<ScenarioDefinition> scenarios = ScenarioCatalog.All;
        var scenariosGiven = false;
        var pass = new List<string>();
        var updateReadme = false;
        var command = "load-tests/run.sh " + string.Join(' ', new[] { "all" }.Concat(args.Where((a, i) => a != "--repo" && (i == 0 || args[i - 1] != "--repo"))));
        try
        {
            for (var i = 0; i < args.Length; i++)
            {
                string Next() => i + 1 < args.Length ? args[++i] : throw new ArgumentException($"{args[i]} needs a value");
                switch (args[i])
                {
                    case "--smoke": smoke = true; break;
                    case "--scale":
                        scale = double.Parse(Next(), CultureInfo.InvariantCulture);
                        if (scale is not (> 0 and <= 10)) throw new ArgumentException("--scale must be in (0, 10]");
                        break;
                    case "--target": targets = Next().Split(',', StringSplitOptions.RemoveEmptyEntries | StringSplitOptions.TrimEntries); break;
                    case "--scenarios":
                        scenarios = Next().Split(',', StringSplitOptions.RemoveEmptyEntries | StringSplitOptions.TrimEntries)
                            .Select(n => ScenarioCatalog.Find(n) ?? throw new ArgumentException($"unknown scenario '{n}'")).ToArray();
                        scenariosGiven = true;
                        break;
                    case "--out": outDir = Next(); break;
                    case "--update-readme": updateReadme = true; break;
                    case "--repo": repoRoot = Next(); break;
                    case "-h" or "--help": Console.WriteLine(Usage); return 0;
                    default: pass.Add(args[i]); break;
                }
            }
            Program.ValidateTargets(targets);
            foreach (var s in scenarios) OptionsFor(s, smoke, scale, pass, targets, repoRoot); // refuse bad options before anything runs
        }
        catch (Exception ex) when (ex is ArgumentException or FormatException)
        {
            Console.Error.WriteLine("mtasts-load all: " + ex.Message);
            Console.Error.WriteLine(Usage);
            return 2;
        }

        var notes = new List<string>();
        if (smoke && !scenariosGiven)
        {
            // Four fresh target starts (closed + open run × gateway, Postfix) took 56 s at smoke counts: more than the
            // 20 s it may add to the smoke. Its message accounting is the same path as relay-throughput's.
            scenarios = scenarios.Where(s => s is not AcceptLatencyScenario).ToArray();
            notes.Add("accept-latency is not part of the smoke (two fresh target starts per target: ≈ 1 min); `all --smoke --scenarios accept-latency` runs it at smoke counts.");
        }
        if (targets.Contains("postfix") && PostfixUnavailable() is { } why)
        {
            targets = targets.Where(t => t != "postfix").ToArray();
            notes.Add($"Postfix not run: {why}. This run compares the gateway with the ceiling only.");
            Console.Error.WriteLine($"mtasts-load all: Postfix not run ({why}): gateway + ceiling only");
        }
        if (targets.Contains("gateway") && GatewayTarget.FindDll(repoRoot) is null && !pass.Contains("--gateway-dll") && !pass.Contains("--gateway-cmd"))
            Console.Error.WriteLine("mtasts-load all: mtasts-gateway.dll not found (dotnet build src/MtaSts.Actors.Host -c Release): the gateway runs will be 'not available'");

        if (smoke)
            notes.Add("Smoke: counts of 40–200 per run and no warm-up check loss and duplicates, not speed. The rates are dominated by start-up "
                + "(a freshly started gateway delivers its first message seconds after accepting it); use --scale for figures.");
        using var cts = Program.CancelOnSignals();
        var started = DateTimeOffset.UtcNow;
        var loadStart = MachineFacts.LoadAverage();
        var reports = new List<RunReport>();
        for (var i = 0; i < scenarios.Count && !cts.IsCancellationRequested; i++)
        {
            var s = scenarios[i];
            // Alternate the order, so that no target always runs first (cold page cache, JIT of the harness) or last.
            var order = (i % 2 == 0 ? targets : targets.Reverse()).Where(t => t != CeilingTarget.TargetName || !NoCeiling.ContainsKey(s.Name)).ToArray();
            if (targets.Contains(CeilingTarget.TargetName) && NoCeiling.TryGetValue(s.Name, out var reason)) notes.Add(reason);
            var o = OptionsFor(s, smoke, scale, pass, order, repoRoot);
            Console.Error.WriteLine($"=== [{i + 1}/{scenarios.Count}] {s.Name}: {o.Messages:N0} messages, targets {string.Join(" → ", order)} (load average {MachineFacts.LoadAverage()}) ===");
            var report = await Program.RunScenarioAsync(s, o, skipNoOpVariants: true, cts.Token);
            reports.Add(report);
            if (report.Runs.FirstOrDefault(x => x.Target == "postfix" && x.NotAvailable is not null) is { } failed)
            {
                // It will not start in the next scenario either: say so once, and carry on with the gateway and the ceiling.
                targets = targets.Where(t => t != "postfix").ToArray();
                notes.Add($"Postfix could not be started ({failed.NotAvailable!.Split('\n')[0]}): left out from {s.Name} on; the rest compares the gateway with the ceiling only.");
                Console.Error.WriteLine($"mtasts-load all: Postfix could not be started, left out of the remaining scenarios");
            }
        }
        if (cts.IsCancellationRequested) notes.Add("Cancelled before every scenario had run.");

        var combined = CombinedReport.Build(smoke ? "smoke" : scale is { } f ? $"scale {f.ToString(CultureInfo.InvariantCulture)}" : "full counts",
            started, DateTimeOffset.UtcNow, MachineFacts.Collect(repoRoot, OptionsFor(scenarios[0], smoke, scale, pass, targets, repoRoot).WorkDirectory),
            loadStart, MachineFacts.LoadAverage(), targets, reports, notes);
        var dir = outDir ?? Path.Combine(repoRoot, "load-tests", "results", $"{started:yyyyMMdd-HHmmss}-all{(smoke ? "-smoke" : "")}");
        await CombinedReport.WriteAsync(combined, dir);
        var block = CombinedReport.RenderReadmeBlock(combined, command.Replace(" --update-readme", "", StringComparison.Ordinal));
        await File.WriteAllTextAsync(Path.Combine(dir, "readme-table.md"), block + "\n");
        if (updateReadme)
        {
            var readme = Path.Combine(repoRoot, "README.md");
            try
            {
                await File.WriteAllTextAsync(readme, CombinedReport.SpliceReadme(await File.ReadAllTextAsync(readme), block));
                Console.Error.WriteLine($"mtasts-load all: {readme}: load-test table replaced with this run's");
            }
            catch (Exception ex) when (ex is IOException or InvalidOperationException or UnauthorizedAccessException)
            {
                Console.Error.WriteLine($"mtasts-load all: README not updated ({ex.Message}); the table is in {dir}/readme-table.md");
            }
        }
        Console.WriteLine(CombinedReport.RenderMarkdown(combined, summaryOnly: true));
        Console.WriteLine($"reports: {dir}/report.md, report.html, report.json");
        Console.WriteLine(CombinedReport.HeaderLine(combined));
        Console.WriteLine(combined.Verdict);
        if (combined.Failed) return 1;
        if (reports.SelectMany(r => r.Runs).Any(r => r.HarnessError)) return 4;
        if (targets.Contains("gateway") && !reports.SelectMany(r => r.Runs).Any(r => r.Target == "gateway" && r.NotAvailable is null)) return 3;
        return 0;
    }

    /// <summary>Scenario defaults, then the smoke or scale preset, then the options given on the command line.</summary>
    internal static RunOptions OptionsFor(ScenarioDefinition s, bool smoke, double? scale, IReadOnlyList<string> pass, IReadOnlyList<string> targets, string repoRoot)
    {
        var d = s.Defaults(new RunOptions { Scenario = s.Name, RepoRoot = repoRoot });
        if (smoke) d = Smoke(s.Name, d);
        else if (scale is { } f) d = d with { Messages = Math.Max(50, (long)Math.Round(d.Messages * f)) };
        return RunOptions.Parse(d, [.. pass]) with { Targets = targets };
    }

    /// <summary>
    /// Tiny counts, no warm-up, short bounds: the whole "all" in about 1–2 minutes on 2 shared cores. hostile-receiver
    /// retries every 1–2 s so most bounces and retries settle within its drain bound; whatever has not settled is
    /// still queued (and counted as such), which is not a failure.
    /// </summary>
    private static RunOptions Smoke(string scenario, RunOptions d)
    {
        d = d with { WarmUp = TimeSpan.Zero, Duration = TimeSpan.FromSeconds(30), DrainTimeout = TimeSpan.FromSeconds(20), TailSample = false };
        return scenario switch
        {
            "relay-throughput" => d with { Messages = 200 },
            "many-domains" => d with { Messages = 200 },
            "large-messages" => d with { Messages = 40 },
            // A message whose DSN was refused (double bounce) never resolves at the receiver: stop after 6 s without arrivals.
            "hostile-receiver" => d with { Messages = 150, RetryInterval = TimeSpan.FromSeconds(1), DrainTimeout = TimeSpan.FromSeconds(15), StallTimeout = TimeSpan.FromSeconds(6) },
            "mta-sts-everywhere" => d with { Messages = 150 },
            "backlog" => d with { Messages = 200, BacklogHold = TimeSpan.FromSeconds(1), DrainTimeout = TimeSpan.FromSeconds(10) },
            _ => d with { Messages = Math.Min(d.Messages, 200) },
        };
    }

    /// <summary>Why a private Postfix instance cannot run here (null: it can).</summary>
    private static string? PostfixUnavailable() =>
        !PostfixRelayTarget.Installed ? "postfix is not installed (sudo load-tests/setup.sh)"
        : Environment.UserName != "root" ? "a private Postfix instance must be started as root"
        : null;
}
