using System.Globalization;
using MtaSts.Actors.LoadTests.Core;
using MtaSts.Actors.LoadTests.Reports;
using MtaSts.Actors.LoadTests.Scenarios;

namespace MtaSts.Actors.LoadTests;

/// <summary>
/// mtasts-load &lt;scenario&gt; [options]: runs a named scenario against each target in turn (same traffic,
/// same receiver), then writes report.md/.html/.json. Exit 0 when at least one target ran, 3 when none could
/// be started ("target not available yet"), 2 on bad usage.
/// </summary>
public static class Program
{
    public static async Task<int> Main(string[] args)
    {
        if (args.Length == 0 || args[0] is "-h" or "--help" or "help")
        {
            Console.WriteLine(RunOptions.Usage);
            return args.Length == 0 ? 2 : 0;
        }
        if (args[0] == "list")
        {
            foreach (var s in ScenarioCatalog.All) Console.WriteLine($"{s.Name,-20} {s.Description}");
            return 0;
        }
        if (args[0] == "all") return await AllRunner.RunAsync(args[1..], FindRepoRoot());
        var scenario = ScenarioCatalog.Find(args[0]);
        if (scenario is null)
        {
            Console.Error.WriteLine($"unknown scenario '{args[0]}'. Scenarios: {string.Join(", ", ScenarioCatalog.All.Select(s => s.Name))}");
            return 2;
        }
        RunOptions o;
        try
        {
            var baseline = new RunOptions { Scenario = scenario.Name, RepoRoot = FindRepoRoot() };
            o = RunOptions.Parse(scenario.Defaults(baseline), args[1..]);
            ValidateTargets(o.Targets);
        }
        catch (Exception ex) when (ex is ArgumentException or FormatException)
        {
            Console.Error.WriteLine("mtasts-load: " + ex.Message);
            Console.Error.WriteLine(RunOptions.Usage);
            return 2;
        }

        using var cts = CancelOnSignals();
        var report = await RunScenarioAsync(scenario, o, skipNoOpVariants: false, cts.Token);
        var dir = o.OutDirectory ?? Path.Combine(o.RepoRoot, "load-tests", "results", $"{report.StartedAt:yyyyMMdd-HHmmss}-{scenario.Name}");
        await ReportWriter.WriteAsync(report, dir);
        Console.WriteLine(MarkdownReport.Render(report));
        Console.WriteLine($"reports: {dir}/report.md, report.html, report.json");
        return report.Runs.Any(r => r.NotAvailable is null) ? 0 : 3;
    }

    /// <summary>Ctrl-C and SIGTERM (e.g. from timeout(1)) cancel the run; the executor then stops the targets it started.</summary>
    internal static CancellationTokenSource CancelOnSignals()
    {
        var cts = new CancellationTokenSource();
        Console.CancelKeyPress += (_, e) => { e.Cancel = true; cts.Cancel(); };
        _sigterm = System.Runtime.InteropServices.PosixSignalRegistration.Create(System.Runtime.InteropServices.PosixSignal.SIGTERM, c =>
        {
            c.Cancel = true;
            cts.Cancel();
        });
        return cts;
    }

    private static System.Runtime.InteropServices.PosixSignalRegistration? _sigterm;

    /// <summary>gateway, postfix, ceiling or a loopback host:port (anything else is refused before a run starts).</summary>
    internal static void ValidateTargets(IEnumerable<string> targets)
    {
        foreach (var t in targets.Where(t => t is not ("postfix" or "gateway" or Targets.GatewayTarget.ClusterTargetName or Targets.GatewayTarget.Cluster3TargetName or Targets.CeilingTarget.TargetName))) Loopback.Parse(t);
    }

    /// <summary>
    /// One scenario against each target in <see cref="RunOptions.Targets"/> order (same traffic, fresh receiver each),
    /// MTA-STS variants outermost. The ceiling has no MTA-STS, so it runs in the "off" variant only; with
    /// <paramref name="skipNoOpVariants"/> Postfix does too (its "on" run is the same configuration).
    /// </summary>
    internal static async Task<RunReport> RunScenarioAsync(ScenarioDefinition scenario, RunOptions o, bool skipNoOpVariants, CancellationToken ct)
    {
        var started = DateTimeOffset.UtcNow;
        var loadStart = MachineFacts.LoadAverage();
        var results = new List<TargetRunResult>();
        var executor = new ScenarioExecutor(scenario, o);
        foreach (var mtaSts in o.MtaStsVariants)
        {
            // Metrics variants inside: gateway runs alternate on/off as given; a target without the switch runs once.
            var metricsRuns = (o.MetricsVariants ?? []).Select(m => (bool?)m).DefaultIfEmpty(null).ToArray();
            for (var i = 0; i < metricsRuns.Length; i++)
            {
                var metrics = metricsRuns[i];
                var repeat = metricsRuns.Take(i + 1).Count(m => m == metrics);
                foreach (var target in o.Targets)
                {
                    if (ct.IsCancellationRequested) break;
                    var noOp = target == Targets.CeilingTarget.TargetName || (skipNoOpVariants && target == "postfix");
                    if (noOp && mtaSts && o.MtaStsVariants.Contains(false)) continue;
                    var hasMetricsSwitch = target is "gateway" or Targets.GatewayTarget.ClusterTargetName;
                    if (!hasMetricsSwitch && i > 0) continue;
                    var m = hasMetricsSwitch ? metrics : null;
                    try
                    {
                        if (o.OpenFraction is { } fraction) results.AddRange(await AcceptLatencyAsync(scenario, o, fraction, target, mtaSts, m, repeat, ct));
                        else results.Add(await executor.RunAsync(target, mtaSts, ct, m, repeat));
                    }
                    catch (OperationCanceledException) { Console.Error.WriteLine("cancelled"); }
                    catch (Exception ex) when (ex is not OutOfMemoryException)
                    {
                        // A harness bug in one run must not take the other runs (and the report) with it; it is reported.
                        Console.Error.WriteLine($"[{scenario.Name}/{target}] harness error: {ex}");
                        results.Add(new TargetRunResult
                        {
                            Target = target, Variant = ScenarioExecutor.VariantName(o, mtaSts, m, repeat), MtaSts = mtaSts, Metrics = m,
                            NotAvailable = $"harness error: {ex.GetType().Name}: {ex.Message}", HarnessError = true,
                        });
                    }
                }
            }
        }
        var notes = Notes(o, results);
        if (skipNoOpVariants && o.MtaStsVariants.Length > 1 && o.Targets.Contains("postfix"))
            notes.Insert(0, "Postfix ran in the MTA-STS off variant only (it has no MTA-STS: its 'on' run would be the same configuration).");
        return new RunReport(scenario.Name, scenario.Description, started, MachineFacts.Collect(o.RepoRoot, o.WorkDirectory),
            Settings(o), results, Comparisons(results), notes)
        {
            LoadAverageStart = loadStart,
            LoadAverageEnd = MachineFacts.LoadAverage(),
            FinishedAt = DateTimeOffset.UtcNow,
        };
    }

    /// <summary>The open run's session cap, <c>--open-sessions-factor</c> × the closed run's (default 2: with 10 the
    /// gateway's p99 was the same and Postfix, whose smtpd processes are capped at 100, could not sustain the rate;
    /// load-tests/README.md "Accept latency: runtime lag probe …").</summary>
    private static int OpenSessions(RunOptions o) => Math.Min(2000, o.OpenSessionsFactor * o.Sessions);

    /// <summary>Variant names of the two accept-latency runs.</summary>
    internal const string ClosedProbeVariant = "max rate (closed)";
    internal static string OpenVariant(double fraction) => $"{fraction * 100:0} % open";

    /// <summary>
    /// accept-latency against one target: a closed run (fresh target) measures the maximum accept rate, then an open run
    /// (fresh target again, same traffic) offers <paramref name="fraction"/> of it from a fixed schedule with more
    /// sessions (<see cref="OpenSessions"/>; session_wait shows what is left), so that queueing in the generator does not
    /// stand in for queueing in the target. Both runs are reported
    /// (and both end-state accounted); the open one carries the latency verdict.
    /// </summary>
    private static async Task<List<TargetRunResult>> AcceptLatencyAsync(ScenarioDefinition scenario, RunOptions o, double fraction, string target,
        bool mtaSts, bool? metrics, int repeat, CancellationToken ct)
    {
        var closed = await new ScenarioExecutor(scenario, o with { Rate = null }).RunAsync(target, mtaSts, ct, metrics, repeat, ClosedProbeVariant);
        var runs = new List<TargetRunResult> { closed };
        if (closed.NotAvailable is not null || closed.AcceptRate <= 0 || ct.IsCancellationRequested) return runs;
        var rate = Math.Max(1, closed.AcceptRate * fraction);
        var sessions = OpenSessions(o);
        Console.Error.WriteLine($"[{scenario.Name}/{target}] maximum accept rate {closed.AcceptRate:0} msg/s (closed, {o.Sessions} sessions): open run at {rate:0} msg/s, ≤ {sessions} sessions");
        var open = await new ScenarioExecutor(scenario, o with { Rate = rate, Sessions = sessions }).RunAsync(target, mtaSts, ct, metrics, repeat, OpenVariant(fraction));
        var probe = new OpenLatencyProbe(closed.AcceptRate, fraction, rate, sessions, AcceptLatencyScenario.TargetP99Ms);
        if (open.NotAvailable is null && !probe.Sustained(open)) Console.Error.WriteLine($"[{scenario.Name}/{target}] {probe.NotSustainedText(open)}");
        runs.Add(open with { OpenLatency = probe });
        return runs;
    }

    private static Dictionary<string, string> Settings(RunOptions o) => new()
    {
        ["targets"] = string.Join(",", o.Targets),
        ["load"] = o.OpenFraction is { } f ? $"closed {o.Sessions} sessions (maximum accept rate), then open at {f:0.##} × that rate, ≤ {OpenSessions(o)} sessions"
            : o.Rate is { } r ? $"open {r:0.#} msg/s, ≤ {o.Sessions} sessions" : $"closed {o.Sessions} sessions",
        ["messages"] = o.Messages.ToString("N0", CultureInfo.InvariantCulture),
        ["max duration"] = $"{o.Duration.TotalSeconds:0} s",
        ["warm-up"] = $"{o.WarmUp.TotalSeconds:0} s" + (o.Settle && !o.Backlog && o.Rate is null && o.WarmUp > TimeSpan.Zero ? ", then settled (the target finishes the warm-up mail before the measured part)" : ""),
        ["size"] = $"{o.SizeBytes} B",
        ["domains"] = o.Domains + (o.Zipf > 0 ? $" (Zipf {o.Zipf})" : ""),
        ["generator msgs/connection"] = o.ClientMessagesPerConnection.ToString(CultureInfo.InvariantCulture),
        ["receiver"] = o.Receiver + (o.SinkArgs.Count > 0 ? " " + string.Join(' ', o.SinkArgs) : ""),
        ["faults"] = o.Faults.Describe(),
        ["target dest. concurrency / msgs per conn"] = $"{o.DestinationConcurrency} / {o.MessagesPerConnection}",
        ["retry"] = o.RetryInterval is { } ri ? $"{ri.TotalSeconds:0} s" : "target default",
        ["gateway metrics"] = o.MetricsVariants is { } mv ? string.Join(",", mv.Select(m => m ? "on" : "off")) + " (mtasts.admin.metrics, in this order)" : "default (on)",
    };

    /// <summary>Gateway ÷ Postfix per variant; gateway and Postfix ÷ ceiling; MTA-STS on ÷ off per target.</summary>
    private static List<Comparison> Comparisons(List<TargetRunResult> results)
    {
        var list = new List<Comparison>();
        var ran = results.Where(r => r.NotAvailable is null).ToList();
        var ceiling = ran.FirstOrDefault(r => r.Target == Targets.CeilingTarget.TargetName);
        if (ceiling is not null)
        {
            foreach (var relay in ran.Where(r => r.Target != Targets.CeilingTarget.TargetName))
            {
                list.Add(new($"end-to-end rate msg/s: {relay.Target} ({relay.Variant}) ÷ ceiling", relay.Target, "ceiling", relay.EndToEndRate, ceiling.EndToEndRate));
                list.Add(new($"accept rate msg/s: {relay.Target} ({relay.Variant}) ÷ ceiling", relay.Target, "ceiling", relay.AcceptRate, ceiling.AcceptRate));
            }
        }
        foreach (var variant in ran.Select(r => r.Variant).Distinct())
        {
            var gw = ran.FirstOrDefault(r => r.Target == "gateway" && r.Variant == variant);
            var pf = ran.FirstOrDefault(r => r.Target == "postfix" && r.Variant == variant);
            if (gw is null || pf is null) continue;
            list.Add(new($"accept rate msg/s ({variant})", "gateway", "postfix", gw.AcceptRate, pf.AcceptRate));
            list.Add(new($"end-to-end rate msg/s ({variant})", "gateway", "postfix", gw.EndToEndRate, pf.EndToEndRate));
            list.Add(new($"accept p99 ms ({variant})", "gateway", "postfix", gw.AcceptLatency.P99Us / 1000.0, pf.AcceptLatency.P99Us / 1000.0));
            list.Add(new($"end-to-end p99 ms ({variant})", "gateway", "postfix", gw.EndToEndLatency.P99Us / 1000.0, pf.EndToEndLatency.P99Us / 1000.0));
            list.Add(new($"peak RSS MB ({variant})", "gateway", "postfix", gw.Resources.PeakRssMb, pf.Resources.PeakRssMb));
        }
        // gateway-cluster (one node in cluster mode) and gateway-cluster3 (3 nodes) against Postfix and the single-node default.
        foreach (var (variant, clusterTarget) in ran.Select(r => r.Variant).Distinct()
                     .SelectMany(v => new[] { (v, Targets.GatewayTarget.ClusterTargetName), (v, Targets.GatewayTarget.Cluster3TargetName) }))
        {
            var gc = ran.FirstOrDefault(r => r.Target == clusterTarget && r.Variant == variant);
            if (gc is null) continue;
            foreach (var other in new[] { "postfix", "gateway" })
            {
                var x = ran.FirstOrDefault(r => r.Target == other && r.Variant == variant);
                if (x is null) continue;
                list.Add(new($"accept rate msg/s ({variant})", gc.Target, other, gc.AcceptRate, x.AcceptRate));
                list.Add(new($"end-to-end rate msg/s ({variant})", gc.Target, other, gc.EndToEndRate, x.EndToEndRate));
                list.Add(new($"end-to-end p99 ms ({variant})", gc.Target, other, gc.EndToEndLatency.P99Us / 1000.0, x.EndToEndLatency.P99Us / 1000.0));
            }
        }
        foreach (var target in ran.Select(r => r.Target).Distinct())
        {
            var on = ran.FirstOrDefault(r => r.Target == target && r.MtaSts);
            var off = ran.FirstOrDefault(r => r.Target == target && !r.MtaSts);
            if (on is null || off is null) continue;
            list.Add(new($"{target}: accept rate, MTA-STS on ÷ off (cost = 1 − ratio)", "on", "off", on.AcceptRate, off.AcceptRate));
            list.Add(new($"{target}: end-to-end rate, MTA-STS on ÷ off (cost = 1 − ratio)", "on", "off", on.EndToEndRate, off.EndToEndRate));
        }
        // mtasts.admin.metrics: the mean of the "on" runs ÷ the mean of the "off" runs of each target (alternated in one run).
        foreach (var target in ran.Select(r => r.Target).Distinct())
        {
            var on = ran.Where(r => r.Target == target && r.Metrics == true).ToArray();
            var off = ran.Where(r => r.Target == target && r.Metrics == false).ToArray();
            if (on.Length == 0 || off.Length == 0) continue;
            string Runs(int n) => n == 1 ? "1 run" : $"mean of {n} runs";
            var (nOn, nOff) = ($"metrics on ({Runs(on.Length)})", $"metrics off ({Runs(off.Length)})");
            list.Add(new($"{target}: accept rate msg/s, metrics on ÷ off (cost = 1 − ratio)", nOn, nOff, on.Average(r => r.AcceptRate), off.Average(r => r.AcceptRate)));
            list.Add(new($"{target}: end-to-end rate msg/s, metrics on ÷ off (cost = 1 − ratio)", nOn, nOff, on.Average(r => r.EndToEndRate), off.Average(r => r.EndToEndRate)));
            list.Add(new($"{target}: target CPU ms per message, metrics on ÷ off (cost = ratio − 1)", nOn, nOff,
                on.Average(r => r.Resources.CpuMsPerMessage), off.Average(r => r.Resources.CpuMsPerMessage)));
            list.Add(new($"{target}: accept p99 ms, metrics on ÷ off", nOn, nOff, on.Average(r => r.AcceptLatency.P99Us) / 1000.0, off.Average(r => r.AcceptLatency.P99Us) / 1000.0));
            list.Add(new($"{target}: peak RSS MB, metrics on ÷ off", nOn, nOff, on.Average(r => r.Resources.PeakRssMb), off.Average(r => r.Resources.PeakRssMb)));
        }
        return list;
    }

    private static List<string> Notes(RunOptions o, List<TargetRunResult> results)
    {
        var notes = new List<string>();
        if (results.Any(r => r.Target == Targets.CeilingTarget.TargetName && r.NotAvailable is null))
            notes.Add("ceiling = the generator submitting straight to the receiver (no relay; smtp-source → smtp-sink style), same client, receiver, sessions and messages: the most this box moves with this harness. A relay can at best match it.");
        foreach (var r in results.Where(r => r.NotAvailable is not null)) notes.Add($"{r.Target} ({r.Variant}): {r.NotAvailable}");
        if (results.Any(r => r.Target == "postfix" && r.MtaSts && r.NotAvailable is null))
            notes.Add("Postfix has no native MTA-STS: its 'mta-sts on' run is the same configuration, so its on/off ratio shows the run-to-run noise.");
        if (o.Receiver == "smtp-sink") notes.Add("smtp-sink only counts: end-to-end latency, loss and per-domain figures need --receiver counting.");
        if (results.Any(r => r.OpenLatency is not null))
            notes.Add($"accept-latency: each target ran twice from a fresh start with the same traffic: '{ClosedProbeVariant}' ({o.Sessions} sessions, as fast as it answers) gives the maximum accept rate; '{OpenVariant(o.OpenFraction ?? 0.8)}' offers that fraction of it on a fixed schedule. Its accept latency (MAIL/connect → final 250, counted from the scheduled send time, so a stall shows as latency) is checked against p99 ≤ {AcceptLatencyScenario.TargetP99Ms:0} ms.");
        if (results.Any(r => r.Saturated)) notes.Add("Open model: the target fell more than 30 s behind the schedule, so the offering stopped early (see 'unsent').");
        notes.Add("Generator, target and receiver share this machine's cores: rates are bounded by all three (see harness CPU).");
        notes.Add("Latencies are HdrHistogram (3 significant digits). Open model latencies are measured from the scheduled send time (coordinated omission corrected).");
        return notes;
    }

    private static string FindRepoRoot()
    {
        for (var d = new DirectoryInfo(Directory.GetCurrentDirectory()); d is not null; d = d.Parent)
            if (File.Exists(Path.Combine(d.FullName, "MtaSts.Actors.sln"))) return d.FullName;
        for (var d = new DirectoryInfo(AppContext.BaseDirectory); d is not null; d = d.Parent)
            if (File.Exists(Path.Combine(d.FullName, "MtaSts.Actors.sln"))) return d.FullName;
        return Directory.GetCurrentDirectory();
    }
}
