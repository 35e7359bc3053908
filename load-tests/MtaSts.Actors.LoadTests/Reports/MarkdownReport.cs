using System.Globalization;
using System.Text;
using MtaSts.Actors.LoadTests.Core;

namespace MtaSts.Actors.LoadTests.Reports;

/// <summary>The summary table people paste into issues: one column per target run.</summary>
public static class MarkdownReport
{
    /// <param name="level">Heading level of the title (1 standalone; 2 inside the combined "all" report).</param>
    public static string Render(RunReport r, int level = 1)
    {
        var sb = new StringBuilder();
        var h1 = new string('#', level);
        var h2 = new string('#', level + 1);
        sb.AppendLine(CultureInfo.InvariantCulture, $"{h1} Load test: {r.Scenario}");
        sb.AppendLine();
        sb.AppendLine(r.Description);
        sb.AppendLine();
        var m = r.Machine;
        sb.AppendLine(CultureInfo.InvariantCulture, $"{r.StartedAt:yyyy-MM-dd HH:mm:ss} UTC · {m.Cores} cores · {m.MemoryMb} MB RAM · {m.Kernel} · .NET {m.DotnetVersion} · git {m.GitSha} · work dir on {m.FileSystem} · load average {r.LoadAverageStart} at start, {r.LoadAverageEnd} at end");
        sb.AppendLine();
        sb.AppendLine("Settings: " + string.Join(", ", r.Settings.Select(kv => $"{kv.Key} = {kv.Value}")));
        sb.AppendLine();
        foreach (var (title, rows) in Rows(r)) { sb.AppendLine(Table(h2 + " " + title, r.Runs, rows)); }
        if (r.Comparisons.Count > 0)
        {
            sb.AppendLine(h2 + " Ratios");
            sb.AppendLine();
            sb.AppendLine("| metric | numerator | denominator | ratio |");
            sb.AppendLine("|---|---|---|---|");
            foreach (var c in r.Comparisons)
                sb.AppendLine(CultureInfo.InvariantCulture, $"| {c.Metric} | {c.Numerator}: {c.NumeratorValue:0.##} | {c.Denominator}: {c.DenominatorValue:0.##} | {c.Ratio:0.###} |");
            sb.AppendLine();
        }
        foreach (var run in r.Runs.Where(x => x.NotAvailable is null && x.ReceiverStats?.TopDomains.Count > 1))
        {
            sb.AppendLine(CultureInfo.InvariantCulture, $"{h2} Top destination domains at the receiver: {run.Target} / {run.Variant}");
            sb.AppendLine();
            sb.AppendLine("| domain | messages | max concurrent sessions |");
            sb.AppendLine("|---|---|---|");
            foreach (var d in run.ReceiverStats!.TopDomains) sb.AppendLine(CultureInfo.InvariantCulture, $"| {d.Domain} | {d.Messages} | {d.MaxConcurrentSessions} |");
            sb.AppendLine();
        }
        AppendLost(sb, r.Runs, h2);
        if (r.Notes.Count > 0)
        {
            sb.AppendLine(h2 + " Notes");
            sb.AppendLine();
            foreach (var n in r.Notes) sb.AppendLine("- " + n);
        }
        return sb.ToString();
    }

    internal static string EndStateCell(EndStateSummary? e) => e is null ? "–"
        : !e.Proven && e.Source.StartsWith("smtp-sink", StringComparison.Ordinal) ? "not provable (smtp-sink)"
        : string.Create(CultureInfo.InvariantCulture,
            $"{e.Delivered} / {e.BouncedDsnReceived + e.BouncedDsnQueued + e.BouncedDsnUndeliverable} ({e.BouncedDsnReceived} · {e.BouncedDsnQueued} · {e.BouncedDsnUndeliverable}) / {e.StillQueued} / {(e.Lost > 0 ? $"**{e.Lost}**" : "0")} of {e.Accepted}");

    /// <summary>Every LOST message (up to 50 per run) with what the target logged about it; then a few still queued ones.</summary>
    internal static void AppendLost(StringBuilder sb, IEnumerable<TargetRunResult> runs, string level, string? scenario = null)
    {
        foreach (var run in runs.Where(x => x.EndState is { Lost: > 0 } || x.EndState is { QueuedSample.Count: > 0 }))
        {
            var e = run.EndState!;
            foreach (var (title, total, list) in new[] { ("LOST messages", e.Lost, e.LostSample), ("still queued at the end (sample)", e.StillQueued, e.QueuedSample) })
            {
                if (list.Count == 0) continue;
                sb.AppendLine(CultureInfo.InvariantCulture, $"{level} {title}: {(scenario is null ? "" : scenario + " / ")}{run.Target} / {run.Variant} ({total}, listed: {list.Count})");
                sb.AppendLine();
                foreach (var l in list)
                {
                    sb.AppendLine(CultureInfo.InvariantCulture, $"- X-Load-Id …-{l.LoadId}, target queue id key {l.TargetKey}: {l.Why}");
                    foreach (var line in l.TargetLog) sb.AppendLine("  - `" + line.Replace("`", "'", StringComparison.Ordinal) + "`");
                }
                sb.AppendLine();
            }
        }
    }

    internal static IEnumerable<(string Title, (string Label, Func<TargetRunResult, string> Value)[] Rows)> Rows(RunReport r)
    {
        static string Ms(long us) => (us / 1000.0).ToString("0.00", CultureInfo.InvariantCulture);
        static string N(double v, string f = "0") => v.ToString(f, CultureInfo.InvariantCulture);
        static string Lat(LatencySummary l) => l.Count == 0 ? "–" : $"{Ms(l.P50Us)} / {Ms(l.P90Us)} / {Ms(l.P99Us)} / {Ms(l.P999Us)} / {Ms(l.MaxUs)}";
        static string Lat4(LatencySummary l) => l.Count == 0 ? "–" : $"{Ms(l.P50Us)} / {Ms(l.P99Us)} / {Ms(l.P999Us)} / {Ms(l.MaxUs)}";
        yield return ("Summary", new (string, Func<TargetRunResult, string>)[]
        {
            ("load", x => x.Simulation),
            ("accepted (measured)", x => N(x.Accepted)),
            ("failed at submit", x => x.Failed == 0 ? "0" : $"{x.Failed} ({string.Join(", ", x.FailCodes.Select(kv => $"{kv.Key}×{kv.Value}"))})"),
            ("**accept rate** msg/s", x => N(x.AcceptRate)),
            ("accept MB/s", x => N(x.AcceptMegabytesPerSecond, "0.0")),
            ("delivered (measured)", x => N(x.Delivered)),
            ("**end-to-end rate** msg/s", x => N(x.EndToEndRate)),
            ("warm-up mail settled before measuring: seconds (unfinished at the start)", x => x.SettleSeconds is { } ss
                ? $"{N(ss, "0.0")} ({x.SettleUnresolved ?? 0})" : "– (not settled)"),
            ("SMTP accept latency ms p50/p90/p99/p99.9/max", x => Lat(x.AcceptLatency)),
            ("end-to-end latency ms p50/p90/p99/p99.9/max", x => Lat(x.EndToEndLatency)),
            ("not arrived / duplicates / arrived-not-accepted", x => $"{x.NotArrived} / {x.Duplicates} / {x.ArrivedNotAccepted}"),
            ("foreign arrivals (no id of this run)", x => N(x.ForeignArrivals)),
            ("**end state** of every acknowledged message: delivered / bounced (DSN received · DSN queued · DSN undeliverable) / still queued / **LOST**", x => EndStateCell(x.EndState)),
            ("DSNs received: failure / delay / duplicate / unattributed", x => x.EndState is { } e ? $"{e.DsnsReceived} / {e.DelayDsnsReceived} / {e.DsnDuplicates} / {e.DsnsUnattributed}" : "–"),
            ("target held at the end (of which not acknowledged to the client / unidentified)", x => x.EndState is { Proven: true } e ? $"{e.TargetHeldAtEnd} ({e.HeldNotAcknowledged} / {e.HeldUnidentified})" : "–"),
            ("end state read from", x => x.EndState?.Source ?? "–"),
            ("target peak RSS / PSS MB", x => $"{N(x.Resources.PeakRssMb)} / {N(x.Resources.PeakPssMb)}"),
            ("target CPU: mean % / ms per message", x => $"{N(x.Resources.MeanCpuPercent)} / {N(x.Resources.CpuMsPerMessage, "0.00")}"),
            ("target peak queue", x => x.Resources.PeakQueue?.ToString(CultureInfo.InvariantCulture) ?? "n/a"),
            ("gateway runtime over the whole run (its /metrics at the end)", x => x.Facts.TryGetValue(Targets.GatewayTarget.RuntimeFact, out var t) ? t : "–"),
            ("harness peak RSS MB / mean CPU %", x => $"{N(x.Resources.HarnessPeakRssMb)} / {N(x.Resources.HarnessMeanCpuPercent)}"),
            ("harness stalls while sending: 1 ms sleeper woke late ms p50/p99/p99.9/max; harness GC pause", x => x.HarnessStalls.Count > 0
                ? $"{Lat4(x.HarnessStalls)}; GC {N(x.HarnessGcPauseMs)} ms" : "–"),
            ("receiver: sessions / max concurrent / msgs per conn (mean, max)", x => x.ReceiverStats is { } s ? $"{s.Sessions} / {s.MaxConcurrentSessions} / {N(s.MeanMessagesPerConnection, "0.0")}, {s.MaxMessagesPerConnection}" : "–"),
            ("receiver: domains seen / replies refused", x => x.ReceiverStats is { } s ? $"{s.DomainsSeen} / {s.Rejected}" : "–"),
            ("outbound TLS (relay → receiver)", x => x.Facts.TryGetValue("outbound tls", out var t) ? t : "–"),
            ("receiver: STARTTLS sessions / messages over TLS", x => x.ReceiverStats is { } s ? $"{s.TlsSessions} / {s.TlsMessages}" : "–"),
            ("receiver: TLS handshakes full / resumed (from the hellos)", x => x.ReceiverStats is { TlsSessions: > 0, Handshakes: { } h } ? h.Describe() : "–"),
        });
        if (r.Runs.Any(x => x.OpenLatency is not null))
        {
            yield return ("Accept latency at a fraction of the maximum rate (open model)", new (string, Func<TargetRunResult, string>)[]
            {
                ("maximum accept rate msg/s (closed run)", x => x.OpenLatency is { } p ? N(p.MaxAcceptRate) : x.Variant == Program.ClosedProbeVariant ? N(x.AcceptRate) : "–"),
                ("offered msg/s (open: fraction × maximum), max sessions", x => x.OpenLatency is { } p ? $"{N(p.OfferedRate)} ({p.Fraction:0.##} ×), ≤ {p.Sessions}" : "–"),
                ("achieved accept rate msg/s", x => x.OpenLatency is not null ? N(x.AcceptRate) : "–"),
                ("**accept latency ms p50 / p99 / p99.9** (from the scheduled time)", x => x.OpenLatency is not null && x.AcceptLatency.Count > 0
                    ? $"{Ms(x.AcceptLatency.P50Us)} / {Ms(x.AcceptLatency.P99Us)} / {Ms(x.AcceptLatency.P999Us)}" : "–"),
                ("p99 target", x => x.OpenLatency is { } p && x.AcceptLatency.Count > 0
                    ? !p.Sustained(x) ? $"**{p.NotSustainedText(x)}**"
                    : x.AcceptLatency.P99Us / 1000.0 <= p.TargetP99Ms ? $"met (≤ {N(p.TargetP99Ms)} ms)" : $"**missed** (> {N(p.TargetP99Ms)} ms)" : "–"),
            });
        }
        if (r.Runs.Any(x => x.Backlog is not null))
        {
            yield return ("Backlog", new (string, Func<TargetRunResult, string>)[]
            {
                ("queued while receivers down", x => x.Backlog is { } b ? N(b.Queued) : "–"),
                ("inject time s", x => x.Backlog is { } b ? N(b.InjectSeconds, "0.0") : "–"),
                ("RSS before → while queued MB", x => x.Backlog is { } b ? $"{N(b.RssBeforeMb)} → {N(b.RssQueuedMb)}" : "–"),
                ("PSS before → while queued MB", x => x.Backlog is { } b ? $"{N(b.PssBeforeMb)} → {N(b.PssQueuedMb)}" : "–"),
                ("memory (PSS) bytes per queued message", x => x.Backlog is { } b ? N(b.BytesPerQueuedMessage) : "–"),
                ("spool bytes on disk per queued message", x => x.Backlog is { } b ? N(b.SpoolBytesPerQueuedMessage) : "–"),
                ("target queue at release", x => x.Backlog?.TargetQueueAtRelease?.ToString(CultureInfo.InvariantCulture) ?? "n/a"),
                ("**drain rate** msg/s", x => x.Backlog is { } b ? N(b.DrainRate) : "–"),
                ("drain time s / delivered", x => x.Backlog is { } b ? $"{N(b.DrainSeconds, "0.0")} / {b.DeliveredAfterRelease}" : "–"),
            });
        }
        yield return ("Steps (ms p50 / p99 / max, ok / fail)", r.Runs.Where(x => x.NotAvailable is null).SelectMany(x => x.Steps).Select(s => s.Name).Distinct()
            .Select(name => (name, (Func<TargetRunResult, string>)(x => x.Steps.FirstOrDefault(s => s.Name == name) is { } s
                ? $"{Ms(s.Latency.P50Us)} / {Ms(s.Latency.P99Us)} / {Ms(s.Latency.MaxUs)}, {s.Ok} / {s.Fail}" : "–"))).ToArray());
    }

    private static string Table(string heading, IReadOnlyList<TargetRunResult> runs, (string Label, Func<TargetRunResult, string> Value)[] rows)
    {
        var sb = new StringBuilder();
        sb.AppendLine(heading);
        sb.AppendLine();
        sb.AppendLine("| | " + string.Join(" | ", runs.Select(x => $"{x.Target} ({x.Variant})")) + " |");
        sb.AppendLine("|---|" + string.Concat(runs.Select(_ => "---|")));
        if (runs.Any(x => x.NotAvailable is not null))
            sb.AppendLine("| status | " + string.Join(" | ", runs.Select(x => x.NotAvailable is null ? "ran" : "**" + x.NotAvailable.Split('\n')[0].Replace("|", "\\|", StringComparison.Ordinal) + "**")) + " |");
        foreach (var (label, value) in rows)
            sb.AppendLine($"| {label} | " + string.Join(" | ", runs.Select(x => x.NotAvailable is null ? value(x).Replace("|", "\\|", StringComparison.Ordinal) : "–")) + " |");
        return sb.ToString();
    }
}
