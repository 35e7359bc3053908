using System.Diagnostics;
using System.Globalization;
using System.Runtime.InteropServices;
using System.Text;
using MtaSts.Actors.TestInfra.Postgres;

namespace MtaSts.Actors.ClusterChaos;

/// <summary>
/// Cluster chaos test (issue 12 "Proof"): 3 gateway OS processes on loopback sharing one private PostgreSQL, a counting
/// receiver, load over the 3 nodes and many domains; per scenario a fault (SIGKILL, SIGSTOP/SIGCONT, rolling restart)
/// or the cluster-wide connection limit. Prints a report table and "cluster: N passed, N failed"; exit 1 on any failure.
/// </summary>
public static class Program
{
    public static async Task<int> Main(string[] args)
    {
        Options o;
        try { o = Options.Parse(args); }
        catch (Exception ex) when (ex is ArgumentException or FormatException or IOException)
        {
            Console.Error.WriteLine($"cluster-chaos: {ex.Message}");
            Console.Error.WriteLine(Options.Usage);
            return 2;
        }
        if (!PostgresInstance.IsAvailable)
        {
            Console.WriteLine("cluster-chaos: PostgreSQL is not installed (run tests/postgres/setup.sh as root)");
            Console.WriteLine("cluster: 0 passed, 1 failed");
            return 1;
        }
        var clock = Stopwatch.StartNew();
        var work = o.WorkDir ?? Directory.CreateTempSubdirectory("mtasts-cluster-").FullName;
        Directory.CreateDirectory(work);
        Console.WriteLine($"cluster chaos: scenarios {string.Join(",", o.Scenarios)}{(o.Quick ? " (quick)" : "")}; ≤ {o.Messages} messages " +
                          $"per scenario at {o.Rate}/s; bootstrap {o.Bootstrap}; gateway {o.GatewayDll}; work {work}");
        var results = new List<ScenarioResult>();
        PostgresInstance? pgRef = null;
        // Stopped from outside (timeout, Ctrl-C): kill the gateways we started (by PID) and our PostgreSQL, then exit.
        void OnSignal(PosixSignalContext ctx)
        {
            ctx.Cancel = true;
            Console.WriteLine($"cluster-chaos: {ctx.Signal}: stopping the gateways and PostgreSQL it started");
            GatewayNode.KillAllStarted();
            try { pgRef?.DisposeAsync().AsTask().Wait(TimeSpan.FromSeconds(30)); } catch (AggregateException) { }
            Console.WriteLine("cluster: 0 passed, 1 failed");
            Environment.Exit(1);
        }
        using var sigterm = PosixSignalRegistration.Create(PosixSignal.SIGTERM, OnSignal);
        using var sigint = PosixSignalRegistration.Create(PosixSignal.SIGINT, OnSignal);
        await using (var pg = await PostgresInstance.StartAsync().ConfigureAwait(false))
        {
            pgRef = pg;
            Console.WriteLine($"private PostgreSQL on 127.0.0.1:{pg.Port}");
            var n = 0;
            foreach (var s in o.Scenarios)
            {
                // A fresh database per scenario: no journal or sharding state carries over from the previous one.
                var cs = await pg.CreateDatabaseAsync($"chaos_{++n}_{s}").ConfigureAwait(false);
                var run = new ScenarioRun(o, s, cs, Path.Combine(work, $"{n}-{s}"));
                var r = await run.RunAsync().ConfigureAwait(false);
                results.Add(r);
                Console.WriteLine($"---- {r.Title}: {(r.Passed ? "PASS" : "FAIL")} in {r.Duration.TotalSeconds:F0}s");
            }
        }
        var report = Report(results, o, clock.Elapsed);
        Console.WriteLine(report);
        var failed = results.Count(r => !r.Passed);
        try { File.WriteAllText(Path.Combine(work, "report.md"), report); } catch (IOException) { }
        if (failed == 0 && !o.Keep && o.WorkDir is null)
        {
            try { Directory.Delete(work, recursive: true); } catch (IOException) { }
        }
        else Console.WriteLine($"work files (configs, node outputs node<i>-<generation>.out, mail logs, report.md): {work}");
        Console.WriteLine($"cluster: {results.Count - failed} passed, {failed} failed");
        return failed == 0 ? 0 : 1;
    }

    private static string Report(List<ScenarioResult> results, Options o, TimeSpan elapsed)
    {
        static string Per(Dictionary<int, int> d) => d.Count == 0 ? "–" : string.Join(" ", d.OrderBy(k => k.Key).Select(k => $"{(k.Key == 0 ? "?" : k.Key.ToString(CultureInfo.InvariantCulture))}:{k.Value}"));
        var sb = new StringBuilder();
        sb.AppendLine();
        sb.AppendLine($"==== cluster chaos report ({DateTime.UtcNow:yyyy-MM-dd HH:mm} UTC, {elapsed.TotalSeconds:F0}s, load avg {LoadAvg()}, " +
                      $"{(o.Quick ? "quick" : "full")}, rate {o.Rate}/s, seed-mode {o.Bootstrap}) ====");
        sb.AppendLine();
        sb.AppendLine("| scenario | offered | acked | unknown (delivered) | delivered | LOST while down / in drain | LOST at end | dup ids (extra copies) | 250 while not Up | fresh domain delivered after fault (s) | all acked delivered, s after fault | max 250→delivery (s) | result |");
        sb.AppendLine("|---|---:|---:|---:|---:|---:|---:|---:|---:|---|---:|---:|---|");
        foreach (var r in results)
        {
            var probes = r.Probes.Count == 0 ? "–" : string.Join("; ", r.Probes.Select(p => p.Recovery is { } t ? t.TotalSeconds.ToString("F1", CultureInfo.InvariantCulture)
                : p.Late is { } l ? $"**{l.TotalSeconds.ToString("F1", CultureInfo.InvariantCulture)}** (late)" : "**never**"));
            var verdict = r.Passed ? "PASS" : "FAIL";
            if (r.LimitPeak is { } peak) verdict += $" (peak {peak})";
            sb.AppendLine($"| {r.Title} | {r.Submitted} | {r.Acked} | {r.Unknown} ({r.UnknownDelivered}) | {r.Delivered} | {r.LostWhileDown} | {r.LostAtEnd} | " +
                          $"{r.DupIds} ({r.ExtraCopies}) | {r.Zombie250} | {probes} | {(r.AllDeliveredAfterFault is { } ad ? ad.ToString("F1", CultureInfo.InvariantCulture) : "–")} | " +
                          $"{r.MaxAckToDelivery.ToString("F1", CultureInfo.InvariantCulture)} | {verdict} |");
        }
        sb.AppendLine();
        foreach (var r in results)
        {
            sb.AppendLine($"### {r.Title} — {(r.Passed ? "PASS" : "FAIL")} ({r.Duration.TotalSeconds:F0}s{(r.ClusterFormed is { } f ? $", cluster delivering through all 3 nodes {f.TotalSeconds:F0}s after start" : "")})");
            sb.AppendLine($"- acked by node {Per(r.AckedByNode)}; delivered by node (EHLO) {Per(r.DeliveredByNode)}; acked but undelivered at the end, by acking node {Per(r.UndeliveredByAckingNode)}");
            if (r.StrandedThenDelivered > 0) sb.AppendLine($"- {r.StrandedThenDelivered} acked messages arrived only after their node was restarted (waited for its disk)");
            sb.AppendLine("- refusals by node: " + (r.RefusalsByNode.Count == 0 ? "none" :
                string.Join("; ", r.RefusalsByNode.OrderBy(k => k.Key).Select(k => $"node {k.Key}: " + string.Join(", ", k.Value.Select(v => $"{v.Key} ×{v.Value}"))))));
            foreach (var p in r.Probes)
                sb.AppendLine($"- fresh domain {p.Label}: {(p.Recovery is { } t ? $"delivered {t.TotalSeconds:F1}s after the fault" : "NOT delivered")} ({p.Note})");
            foreach (var n in r.Notes) sb.AppendLine($"- {n}");
            foreach (var x in r.Failures) sb.AppendLine($"- **FAIL**: {x}");
            sb.AppendLine();
        }
        return sb.ToString();
    }

    private static string LoadAvg()
    {
        try { return string.Join(" ", File.ReadAllText("/proc/loadavg").Split(' ').Take(3)); }
        catch (IOException) { return "?"; }
    }
}
