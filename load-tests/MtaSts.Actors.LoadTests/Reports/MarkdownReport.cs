using System.Globalization;
using System.Text;
using MtaSts.Actors.LoadTests.Core;

namespace MtaSts.Actors.LoadTests.Reports;

/// <summary>The summary table people paste into issues: one column per target run.</summary>
public static class MarkdownReport
{
    public static string Render(RunReport r)
    {
        var sb = new StringBuilder();
        sb.AppendLine(CultureInfo.InvariantCulture, $"# Load test: {r.Scenario}");
        sb.AppendLine();
        sb.AppendLine(r.Description);
        sb.AppendLine();
        var m = r.Machine;
        sb.AppendLine(CultureInfo.InvariantCulture, $"{r.StartedAt:yyyy-MM-dd HH:mm:ss} UTC · {m.Cores} cores · {m.MemoryMb} MB RAM · {m.Kernel} · .NET {m.DotnetVersion} · git {m.GitSha} · work dir on {m.FileSystem}");
        sb.AppendLine();
        sb.AppendLine("Settings: " + string.Join(", ", r.Settings.Select(kv => $"{kv.Key} = {kv.Value}")));
        sb.AppendLine();
        foreach (var (title, rows) in Rows(r)) { sb.AppendLine(Table(title, r.Runs, rows)); }
        if (r.Comparisons.Count > 0)
        {
            sb.AppendLine("## Ratios");
            sb.AppendLine();
            sb.AppendLine("| metric | numerator | denominator | ratio |");
            sb.AppendLine("|---|---|---|---|");
            foreach (var c in r.Comparisons)
                sb.AppendLine(CultureInfo.InvariantCulture, $"| {c.Metric} | {c.Numerator}: {c.NumeratorValue:0.##} | {c.Denominator}: {c.DenominatorValue:0.##} | {c.Ratio:0.###} |");
            sb.AppendLine();
        }
        foreach (var run in r.Runs.Where(x => x.NotAvailable is null && x.ReceiverStats?.TopDomains.Count > 1))
        {
            sb.AppendLine(CultureInfo.InvariantCulture, $"## Top destination domains at the receiver: {run.Target} / {run.Variant}");
            sb.AppendLine();
            sb.AppendLine("| domain | messages | max concurrent sessions |");
            sb.AppendLine("|---|---|---|");
            foreach (var d in run.ReceiverStats!.TopDomains) sb.AppendLine(CultureInfo.InvariantCulture, $"| {d.Domain} | {d.Messages} | {d.MaxConcurrentSessions} |");
            sb.AppendLine();
        }
        if (r.Notes.Count > 0)
        {
            sb.AppendLine("## Notes");
            sb.AppendLine();
            foreach (var n in r.Notes) sb.AppendLine("- " + n);
        }
        return sb.ToString();
    }

    internal static IEnumerable<(string Title, (string Label, Func<TargetRunResult, string> Value)[] Rows)> Rows(RunReport r)
    {
        static string Ms(long us) => (us / 1000.0).ToString("0.00", CultureInfo.InvariantCulture);
        static string N(double v, string f = "0") => v.ToString(f, CultureInfo.InvariantCulture);
        static string Lat(LatencySummary l) => l.Count == 0 ? "–" : $"{Ms(l.P50Us)} / {Ms(l.P90Us)} / {Ms(l.P99Us)} / {Ms(l.P999Us)} / {Ms(l.MaxUs)}";
        yield return ("Summary", new (string, Func<TargetRunResult, string>)[]
        {
            ("load", x => x.Simulation),
            ("accepted (measured)", x => N(x.Accepted)),
            ("failed at submit", x => x.Failed == 0 ? "0" : $"{x.Failed} ({string.Join(", ", x.FailCodes.Select(kv => $"{kv.Key}×{kv.Value}"))})"),
            ("**accept rate** msg/s", x => N(x.AcceptRate)),
            ("accept MB/s", x => N(x.AcceptMegabytesPerSecond, "0.0")),
            ("delivered (measured)", x => N(x.Delivered)),
            ("**end-to-end rate** msg/s", x => N(x.EndToEndRate)),
            ("SMTP accept latency ms p50/p90/p99/p99.9/max", x => Lat(x.AcceptLatency)),
            ("end-to-end latency ms p50/p90/p99/p99.9/max", x => Lat(x.EndToEndLatency)),
            ("not arrived / duplicates / arrived-not-accepted", x => $"{x.NotArrived} / {x.Duplicates} / {x.ArrivedNotAccepted}"),
            ("foreign arrivals (DSNs, other runs)", x => N(x.ForeignArrivals)),
            ("target peak RSS / PSS MB", x => $"{N(x.Resources.PeakRssMb)} / {N(x.Resources.PeakPssMb)}"),
            ("target CPU: mean % / ms per message", x => $"{N(x.Resources.MeanCpuPercent)} / {N(x.Resources.CpuMsPerMessage, "0.00")}"),
            ("target peak queue", x => x.Resources.PeakQueue?.ToString(CultureInfo.InvariantCulture) ?? "n/a"),
            ("harness peak RSS MB / mean CPU %", x => $"{N(x.Resources.HarnessPeakRssMb)} / {N(x.Resources.HarnessMeanCpuPercent)}"),
            ("receiver: sessions / max concurrent / msgs per conn (mean, max)", x => x.ReceiverStats is { } s ? $"{s.Sessions} / {s.MaxConcurrentSessions} / {N(s.MeanMessagesPerConnection, "0.0")}, {s.MaxMessagesPerConnection}" : "–"),
            ("receiver: domains seen / replies refused", x => x.ReceiverStats is { } s ? $"{s.DomainsSeen} / {s.Rejected}" : "–"),
        });
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

    private static string Table(string title, IReadOnlyList<TargetRunResult> runs, (string Label, Func<TargetRunResult, string> Value)[] rows)
    {
        var sb = new StringBuilder();
        sb.AppendLine("## " + title);
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
