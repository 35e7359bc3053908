using System.Globalization;
using System.Text;
using System.Text.Json;
using MtaSts.Actors.LoadTests.Core;
using static MtaSts.Actors.LoadTests.Reports.SvgChart;
using CeilingTarget = MtaSts.Actors.LoadTests.Targets.CeilingTarget;
using AcceptLatencyScenario = MtaSts.Actors.LoadTests.Scenarios.AcceptLatencyScenario;

namespace MtaSts.Actors.LoadTests.Reports;

/// <summary>
/// One report for `mtasts-load all`: a summary table on top (per scenario: end-to-end msg/s per target, gateway ÷
/// Postfix, gateway ÷ ceiling, LOST/duplicates), the end state of every acknowledged message per run, the machine
/// (cores, RAM, load average at start and end) and the commit; then every scenario's full report.
/// </summary>
public sealed record CombinedReport(
    string Mode,
    DateTimeOffset StartedAt,
    DateTimeOffset FinishedAt,
    MachineInfo Machine,
    string LoadAverageStart,
    string LoadAverageEnd,
    IReadOnlyList<string> Targets,
    IReadOnlyList<SummaryRow> Rows,
    IReadOnlyList<RunReport> Scenarios,
    IReadOnlyList<string> Notes,
    long TargetRuns,
    long Acknowledged,
    long Lost,
    long Duplicates,
    bool Failed,
    string Verdict)
{
    public static CombinedReport Build(string mode, DateTimeOffset started, DateTimeOffset finished, MachineInfo machine, string loadStart, string loadEnd,
        IReadOnlyList<string> targets, IReadOnlyList<RunReport> scenarios, List<string> notes)
    {
        var rows = new List<SummaryRow>();
        foreach (var r in scenarios)
        {
            var ran = r.Runs.Where(x => x.NotAvailable is null).ToArray();
            var ceiling = ran.FirstOrDefault(x => x.Target == CeilingTarget.TargetName);
            var backlog = r.Runs.Any(x => x.Backlog is not null);
            var variants = r.Runs.Select(x => x.Variant).Distinct().ToArray();
            if (r.Runs.Any(x => x.OpenLatency is not null))
            {
                rows.AddRange(AcceptLatencyRows(r));
                continue;
            }
            foreach (var v in variants)
            {
                TargetRunResult? Pick(string t) => r.Runs.FirstOrDefault(x => x.Target == t && x.Variant == v);
                var gw = Pick("gateway");
                var pf = Pick("postfix");
                var ce = ceiling is not null && r.Runs.Any(x => x.Target == CeilingTarget.TargetName && x.Variant == v) ? ceiling : null;
                // MTA-STS on: the ceiling of the same scenario (it has no MTA-STS variant) is the reference.
                var ceRef = ce ?? ceiling;
                double? Rate(TargetRunResult? x) => x is null || x.NotAvailable is not null ? null : backlog ? x.Backlog?.DrainRate : x.EndToEndRate;
                double? Ratio(double? a, double? b) => a is { } x && b is { } y && y > 0 ? x / y : null;
                string Loss(TargetRunResult? x) => x is null ? "–" : x.NotAvailable is not null ? "not run"
                    : x.EndState is { } e ? $"{e.Lost} / {e.Duplicates + e.DsnDuplicates}{(e.Proven ? "" : " (unproven)")}" : "n/a";
                var label = r.Scenario + (variants.Length > 1 ? $" ({v})" : "") + (backlog ? " — drain rate" : "");
                var order = string.Join(" → ", r.Runs.Where(x => x.Variant == v).Select(x => x.Target));
                rows.Add(new SummaryRow(label, r.Scenario, v, backlog ? "drain" : "end-to-end",
                    Rate(gw), Rate(pf), Rate(ce), ce is null && ceRef is not null ? Rate(ceRef) : null,
                    Ratio(Rate(gw), Rate(pf)), Ratio(Rate(gw), Rate(ce) ?? Rate(ceRef)),
                    $"{Loss(gw)} · {Loss(pf)} · {Loss(ce)}", order));
            }
        }
        var runs = scenarios.SelectMany(r => r.Runs).Where(x => x.NotAvailable is null).ToArray();
        var lost = runs.Sum(x => x.EndState?.Lost ?? 0);
        var dups = runs.Sum(x => (x.EndState?.Duplicates ?? x.Duplicates) + (x.EndState?.DsnDuplicates ?? 0));
        var acked = runs.Sum(x => x.EndState?.Accepted ?? 0);
        var unproven = runs.Where(x => x.EndState is not { Proven: true }).Select(x => $"{x.Target}").Distinct().ToArray();
        var failed = lost > 0 || dups > 0;
        var harnessErrors = scenarios.SelectMany(r => r.Runs).Count(x => x.HarnessError);
        var unprovenText = (unproven.Length > 0 ? $"; end state not proven for: {string.Join(", ", unproven)}" : "")
            + (harnessErrors > 0 ? $"; {harnessErrors} run(s) ended with a HARNESS ERROR (see the end-state table)" : "");
        var verdict = string.Create(CultureInfo.InvariantCulture,
            $"{(failed ? "FAIL" : "PASS")}: {lost} LOST, {dups} duplicated in {runs.Length} target runs ({acked:N0} acknowledged messages; each delivered, bounced with its DSN accounted for, or still queued{(failed ? " — except the ones listed" : "")}){unprovenText}");
        return new CombinedReport(mode, started, finished, machine, loadStart, loadEnd, targets, rows, scenarios, notes, runs.Length, acked, lost, dups, failed, verdict);
    }

    /// <summary>accept-latency: two rows — the maximum accept rate (closed run) and the accept p99 in ms at the fraction of
    /// it (open run; the label names the unit and the 20 ms target, the cells add p50 and p99.9 in the run's own table).</summary>
    private static IEnumerable<SummaryRow> AcceptLatencyRows(RunReport r)
    {
        TargetRunResult? Pick(string t, Func<TargetRunResult, bool> which) => r.Runs.FirstOrDefault(x => x.Target == t && x.NotAvailable is null && which(x));
        double? Ratio(double? a, double? b) => a is { } x && b is { } y && y > 0 ? x / y : null;
        string Loss(string t) => string.Join(" + ", r.Runs.Where(x => x.Target == t).Select(x => x.NotAvailable is not null ? "not run"
            : x.EndState is { } e ? $"{e.Lost} / {e.Duplicates + e.DsnDuplicates}{(e.Proven ? "" : " (unproven)")}" : "n/a")) is { Length: > 0 } s ? s : "–";
        var loss = $"{Loss("gateway")} · {Loss("postfix")} · –";
        var order = string.Join(" → ", r.Runs.Select(x => $"{x.Target} ({x.Variant})"));
        var isOpen = (TargetRunResult x) => x.OpenLatency is not null;
        var isClosed = (TargetRunResult x) => x.Variant == Program.ClosedProbeVariant;
        double? Max(string t) => Pick(t, isClosed)?.AcceptRate;
        // An open run that fell behind its schedule gets no p99 here (it would be queueing); the label says so.
        double? P99(string t) => Pick(t, isOpen) is { AcceptLatency.Count: > 0, OpenLatency: { } p } x && p.Sustained(x) ? x.AcceptLatency.P99Us / 1000.0 : null;
        var notSustained = r.Runs.Where(x => x.NotAvailable is null && x.OpenLatency is { } p && !p.Sustained(x))
            .Select(x => $"{x.Target} {x.OpenLatency!.NotSustainedText(x)}").ToList();
        var fraction = r.Runs.Select(x => x.OpenLatency?.Fraction).FirstOrDefault(f => f is not null) ?? 0.8;
        yield return new SummaryRow($"{r.Scenario}: maximum accept msg/s (closed)", r.Scenario, Program.ClosedProbeVariant, "accept",
            Max("gateway"), Max("postfix"), null, null, Ratio(Max("gateway"), Max("postfix")), null, loss, order);
        yield return new SummaryRow($"{r.Scenario}: accept p99 ms at {fraction * 100:0} % of it (open; target ≤ {AcceptLatencyScenario.TargetP99Ms:0} ms)"
            + (notSustained.Count > 0 ? " — " + string.Join("; ", notSustained) : ""),
            r.Scenario, Program.OpenVariant(fraction), "accept p99 ms", P99("gateway"), P99("postfix"), null, null, Ratio(P99("gateway"), P99("postfix")), null, loss, order);
    }

    public static async Task WriteAsync(CombinedReport report, string dir)
    {
        Directory.CreateDirectory(dir);
        await File.WriteAllTextAsync(Path.Combine(dir, "report.json"), JsonSerializer.Serialize(report, ReportWriter.Json));
        await File.WriteAllTextAsync(Path.Combine(dir, "report.md"), RenderMarkdown(report, summaryOnly: false));
        await File.WriteAllTextAsync(Path.Combine(dir, "report.html"), RenderHtml(report));
    }

    public const string ReadmeBegin = "<!-- load-tests:all:begin (generated by `load-tests/run.sh all --update-readme`; edits here are overwritten) -->";
    public const string ReadmeEnd = "<!-- load-tests:all:end -->";

    /// <summary>
    /// The README's load-test table: the summary of this run with the command, the machine, the load average and the
    /// commit, so the figures a reader sees are always one run's, not a collage.
    /// </summary>
    public static string RenderReadmeBlock(CombinedReport r, string command)
    {
        var sb = new StringBuilder();
        sb.AppendLine(ReadmeBegin);
        sb.AppendLine(CultureInfo.InvariantCulture, $"`{command}` ({r.Mode}): {HeaderLine(r)}.");
        sb.AppendLine();
        sb.AppendLine($"**{r.Verdict}**");
        sb.AppendLine();
        Table(sb, SummaryColumns, r.Rows.Select(SummaryCells));
        sb.Append(ReadmeEnd);
        return sb.ToString();
    }

    /// <summary>Replaces the text between the README's markers (inclusive) with <paramref name="block"/>.</summary>
    /// <exception cref="InvalidOperationException">The markers are missing, duplicated or out of order.</exception>
    public static string SpliceReadme(string readme, string block)
    {
        var begin = readme.IndexOf("<!-- load-tests:all:begin", StringComparison.Ordinal);
        var end = readme.IndexOf(ReadmeEnd, StringComparison.Ordinal);
        if (begin < 0 || end < begin || readme.IndexOf("<!-- load-tests:all:begin", begin + 1, StringComparison.Ordinal) >= 0)
            throw new InvalidOperationException($"README has no single '<!-- load-tests:all:begin' … '{ReadmeEnd}' pair to replace");
        return string.Concat(readme.AsSpan(0, begin), block, readme.AsSpan(end + ReadmeEnd.Length));
    }

    private static string N(double? v, string f = "0") => v is { } x ? x.ToString(f, CultureInfo.InvariantCulture) : "–";
    private static string Ratio(double? v) => v is { } x ? x.ToString(x < 0.1 ? "0.000" : "0.00", CultureInfo.InvariantCulture) + "×" : "–";
    private static string Duration(TimeSpan t) => t.TotalMinutes >= 1 ? $"{(int)t.TotalMinutes} min {t.Seconds} s" : $"{t.TotalSeconds:0} s";

    /// <summary>The machine line without Markdown emphasis (printed again right above the verdict).</summary>
    public static string HeaderLine(CombinedReport r) => Header(r).Replace("**", "", StringComparison.Ordinal);

    private static string Header(CombinedReport r)
    {
        var m = r.Machine;
        return string.Create(CultureInfo.InvariantCulture,
            $"{r.StartedAt:yyyy-MM-dd HH:mm:ss} → {r.FinishedAt:HH:mm:ss} UTC ({Duration(r.FinishedAt - r.StartedAt)}) · {m.Cores} cores · {m.MemoryMb:N0} MB RAM · load average (1/5/15 min) **{r.LoadAverageStart}** at start, **{r.LoadAverageEnd}** at end · git **{m.GitSha}** · {m.Kernel} · .NET {m.DotnetVersion} · work dir on {m.FileSystem} · host {m.Host}");
    }

    private static readonly string[] SummaryColumns =
        ["scenario", "gateway msg/s", "Postfix msg/s", "ceiling msg/s", "gateway ÷ Postfix", "gateway ÷ ceiling", "LOST / duplicates: gateway · Postfix · ceiling", "run order"];

    private static string[] SummaryCells(SummaryRow x) =>
    [
        x.Label, N(x.Gateway), N(x.Postfix), x.Ceiling is not null ? N(x.Ceiling) : x.CeilingFromOff is not null ? N(x.CeilingFromOff) + " (off run)" : "–",
        Ratio(x.GatewayOverPostfix), Ratio(x.GatewayOverCeiling), x.LossDuplicates, x.RunOrder,
    ];

    private static readonly string[] EndStateColumns =
        ["scenario", "target (variant)", "acknowledged", "delivered", "bounced: DSN received", "bounced: DSN still queued", "bounced: DSN undeliverable", "still queued", "LOST", "duplicates (messages / DSNs)", "read from"];

    private static IEnumerable<string[]> EndStateCells(CombinedReport r) =>
        from s in r.Scenarios
        from x in s.Runs
        select x.NotAvailable is not null
            ? new[] { s.Scenario, $"{x.Target} ({x.Variant})", "not run: " + x.NotAvailable.Split('\n')[0], "", "", "", "", "", "", "", "" }
            : x.EndState is not { } e ? new[] { s.Scenario, $"{x.Target} ({x.Variant})", N(x.Accepted), "", "", "", "", "", "", "", "n/a" }
            : new[]
            {
                s.Scenario, $"{x.Target} ({x.Variant})", N(e.Accepted), N(e.Delivered), N(e.BouncedDsnReceived), N(e.BouncedDsnQueued), N(e.BouncedDsnUndeliverable),
                N(e.StillQueued), e.Lost > 0 ? $"**{e.Lost}**" : "0", $"{e.Duplicates} / {e.DsnDuplicates}", e.Source,
            };

    public static string RenderMarkdown(CombinedReport r, bool summaryOnly)
    {
        var sb = new StringBuilder();
        sb.AppendLine(CultureInfo.InvariantCulture, $"# Load tests: all scenarios ({r.Mode})");
        sb.AppendLine();
        sb.AppendLine(Header(r));
        sb.AppendLine();
        sb.AppendLine($"**{r.Verdict}**");
        sb.AppendLine();
        sb.AppendLine("End-to-end msg/s = messages delivered at the receiver ÷ (last arrival − start of the measured injection); backlog: drain rate after the receiver came back. ceiling = generator straight to the receiver (no relay).");
        sb.AppendLine();
        Table(sb, SummaryColumns, r.Rows.Select(SummaryCells));
        sb.AppendLine("## End state of every acknowledged message");
        sb.AppendLine();
        Table(sb, EndStateColumns, EndStateCells(r));
        foreach (var s in r.Scenarios) MarkdownReport.AppendLost(sb, s.Runs, "###", s.Scenario);
        if (r.Notes.Count > 0)
        {
            sb.AppendLine("## Notes");
            sb.AppendLine();
            foreach (var n in r.Notes) sb.AppendLine("- " + n);
            sb.AppendLine();
        }
        if (summaryOnly) return sb.ToString();
        sb.AppendLine("## Per scenario");
        sb.AppendLine();
        foreach (var s in r.Scenarios) sb.AppendLine(MarkdownReport.Render(s, level: 3));
        return sb.ToString();
    }

    private static void Table(StringBuilder sb, string[] columns, IEnumerable<string[]> rows)
    {
        static string C(string s) => s.Replace("|", "\\|", StringComparison.Ordinal).Replace("\n", " ", StringComparison.Ordinal);
        sb.AppendLine("| " + string.Join(" | ", columns) + " |");
        sb.AppendLine("|" + string.Concat(columns.Select(_ => "---|")));
        foreach (var row in rows) sb.AppendLine("| " + string.Join(" | ", row.Select(C)) + " |");
        sb.AppendLine();
    }

    public static string RenderHtml(CombinedReport r)
    {
        var sb = new StringBuilder();
        sb.Append("<!DOCTYPE html><html><head><meta charset=\"utf-8\"><title>Load tests: all scenarios</title><style>").Append(HtmlReport.Style).Append("</style></head><body>");
        sb.Append("<h1>Load tests: all scenarios (").Append(Esc(r.Mode)).Append(")</h1>");
        sb.Append("<p>").Append(Esc(Header(r).Replace("**", "", StringComparison.Ordinal))).Append("</p>");
        sb.Append("<p class=\"").Append(r.Failed ? "lost" : "").Append("\"><b>").Append(Esc(r.Verdict)).Append("</b></p>");
        HtmlTable(sb, SummaryColumns, r.Rows.Select(SummaryCells));

        var rateRows = r.Rows.Where(x => x.Metric != "accept p99 ms").ToArray(); // the charts are msg/s
        var groups = rateRows.Select(x => x.Label.Replace(" — drain rate", " (drain)", StringComparison.Ordinal)).ToArray();
        sb.Append("<div class=\"charts\">");
        // Separate charts: the ceiling is often 10–100× the relays and would flatten them on a shared linear axis.
        sb.Append(Bars("End-to-end msg/s: gateway and Postfix (backlog: drain msg/s)", "msg/s", groups,
        [
            ("gateway", rateRows.Select(x => x.Gateway ?? 0).ToArray()),
            ("Postfix", rateRows.Select(x => x.Postfix ?? 0).ToArray()),
        ], width: 1100));
        sb.Append(Bars("End-to-end msg/s: ceiling (generator → receiver, no relay)", "msg/s", groups,
            [("ceiling", rateRows.Select(x => x.Ceiling ?? x.CeilingFromOff ?? 0).ToArray())], width: 1100));
        sb.Append(Bars("gateway ÷ Postfix", "ratio", groups, [("gateway ÷ Postfix", rateRows.Select(x => x.GatewayOverPostfix ?? 0).ToArray())], width: 540));
        sb.Append(Bars("gateway ÷ ceiling", "ratio", groups, [("gateway ÷ ceiling", rateRows.Select(x => x.GatewayOverCeiling ?? 0).ToArray())], width: 540));
        sb.Append("</div>");

        sb.Append("<h2>End state of every acknowledged message</h2>");
        HtmlTable(sb, EndStateColumns, EndStateCells(r));
        var lost = new StringBuilder();
        foreach (var s in r.Scenarios) MarkdownReport.AppendLost(lost, s.Runs, "▶", s.Scenario);
        if (lost.Length > 0) sb.Append("<h2>LOST and still queued messages</h2><pre").Append(r.Lost > 0 ? " class=\"lost\"" : "").Append('>').Append(Esc(lost.ToString())).Append("</pre>");
        if (r.Notes.Count > 0)
        {
            sb.Append("<h2>Notes</h2><ul>");
            foreach (var n in r.Notes) sb.Append("<li>").Append(Esc(n)).Append("</li>");
            sb.Append("</ul>");
        }
        sb.Append("<h2>Per scenario</h2>");
        foreach (var s in r.Scenarios) sb.Append("<hr>").Append(HtmlReport.Body(s, 3));
        return sb.Append("</body></html>").ToString();
    }

    private static void HtmlTable(StringBuilder sb, string[] columns, IEnumerable<string[]> rows)
    {
        sb.Append("<table><tr>");
        foreach (var c in columns) sb.Append("<th>").Append(Esc(c)).Append("</th>");
        sb.Append("</tr>");
        foreach (var row in rows)
        {
            sb.Append("<tr>");
            foreach (var c in row)
            {
                var bold = c.StartsWith("**", StringComparison.Ordinal);
                sb.Append(bold ? "<td class=\"lost\">" : "<td>").Append(Esc(c.Replace("**", "", StringComparison.Ordinal))).Append("</td>");
            }
            sb.Append("</tr>");
        }
        sb.Append("</table>");
    }
}

/// <param name="CeilingFromOff">MTA-STS "on" row: the ceiling of the same scenario's "off" run (the ceiling has no MTA-STS).</param>
public sealed record SummaryRow(
    string Label,
    string Scenario,
    string Variant,
    string Metric,
    double? Gateway,
    double? Postfix,
    double? Ceiling,
    double? CeilingFromOff,
    double? GatewayOverPostfix,
    double? GatewayOverCeiling,
    string LossDuplicates,
    string RunOrder);
