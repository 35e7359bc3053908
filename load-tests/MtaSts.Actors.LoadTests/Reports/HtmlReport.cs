using System.Globalization;
using System.Text;
using static MtaSts.Actors.LoadTests.Reports.SvgChart;

namespace MtaSts.Actors.LoadTests.Reports;

/// <summary>Self-contained HTML: the markdown tables as HTML plus inline SVG plots per run and across runs.</summary>
public static class HtmlReport
{
    internal const string Style = "body{font-family:sans-serif;margin:20px;max-width:1500px}table{border-collapse:collapse;margin:8px 0 18px}td,th{border:1px solid #ccc;padding:3px 8px;font-size:13px;text-align:right}td:first-child,th:first-child{text-align:left}th{background:#f0f0f0}.na{color:#a00}.lost{color:#c00;font-weight:bold}.charts{display:flex;flex-wrap:wrap;gap:8px}h3,h4{margin-top:26px}pre{font-size:11px;white-space:pre-wrap}";

    public static string Render(RunReport r) =>
        "<!DOCTYPE html><html><head><meta charset=\"utf-8\"><title>" + Esc(r.Scenario) + " load test</title><style>" + Style + "</style></head><body>"
        + Body(r, 1) + "</body></html>";

    /// <param name="h">Heading level of the title (1 standalone; 2 inside the combined "all" report).</param>
    internal static string Body(RunReport r, int h)
    {
        var sb = new StringBuilder();
        string H(int d, string text) => $"<h{h + d}>{Esc(text)}</h{h + d}>";
        var m = r.Machine;
        sb.Append(H(0, "Load test: " + r.Scenario)).Append("<p>").Append(Esc(r.Description)).Append("</p>");
        sb.Append(CultureInfo.InvariantCulture, $"<p>{r.StartedAt:yyyy-MM-dd HH:mm:ss} UTC · {m.Cores} cores · {m.MemoryMb} MB · {Esc(m.Kernel)} · .NET {Esc(m.DotnetVersion)} · git {Esc(m.GitSha)} · work dir on {Esc(m.FileSystem)} · load average {Esc(r.LoadAverageStart)} at start, {Esc(r.LoadAverageEnd)} at end</p>");
        sb.Append("<p>").Append(Esc(string.Join(", ", r.Settings.Select(kv => $"{kv.Key} = {kv.Value}")))).Append("</p>");

        foreach (var (title, rows) in MarkdownReport.Rows(r))
        {
            sb.Append(H(1, title)).Append("<table><tr><th></th>");
            foreach (var x in r.Runs) sb.Append("<th>").Append(Esc($"{x.Target} ({x.Variant})")).Append("</th>");
            sb.Append("</tr>");
            if (r.Runs.Any(x => x.NotAvailable is not null))
            {
                sb.Append("<tr><td>status</td>");
                foreach (var x in r.Runs) sb.Append(x.NotAvailable is null ? "<td>ran</td>" : "<td class=\"na\">" + Esc(x.NotAvailable) + "</td>");
                sb.Append("</tr>");
            }
            foreach (var (label, value) in rows)
            {
                sb.Append("<tr><td>").Append(Esc(label.Replace("**", "", StringComparison.Ordinal))).Append("</td>");
                foreach (var x in r.Runs) sb.Append("<td>").Append(Esc(x.NotAvailable is null ? value(x) : "–")).Append("</td>");
                sb.Append("</tr>");
            }
            sb.Append("</table>");
        }
        if (r.Comparisons.Count > 0)
        {
            sb.Append(H(1, "Ratios")).Append("<table><tr><th>metric</th><th>numerator</th><th>denominator</th><th>ratio</th></tr>");
            foreach (var c in r.Comparisons)
                sb.Append(CultureInfo.InvariantCulture, $"<tr><td>{Esc(c.Metric)}</td><td>{Esc(c.Numerator)}: {c.NumeratorValue:0.##}</td><td>{Esc(c.Denominator)}: {c.DenominatorValue:0.##}</td><td>{c.Ratio:0.###}</td></tr>");
            sb.Append("</table>");
        }

        var ran = r.Runs.Where(x => x.NotAvailable is null).ToArray();
        if (ran.Length > 0)
        {
            sb.Append(H(1, "Latency percentiles (all runs)")).Append("<div class=\"charts\">");
            var groups = new[] { "p50", "p90", "p99", "p99.9", "max" };
            sb.Append(Bars("SMTP accept latency (connect/MAIL → 250)", "ms", groups,
                ran.Select(x => ($"{x.Target} {x.Variant}", Pct(x.AcceptLatency))).ToArray()));
            sb.Append(Bars("End-to-end latency (submit → arrival)", "ms", groups,
                ran.Select(x => ($"{x.Target} {x.Variant}", Pct(x.EndToEndLatency))).ToArray()));
            sb.Append("</div>");
        }
        foreach (var x in ran)
        {
            var s = x.Series;
            Series S(string name, Func<TimeSample, double> f, bool dashed = false) => new(name, s.Select(p => (p.T, f(p))).ToArray(), dashed);
            sb.Append(H(2, $"{x.Target} ({x.Variant})"));
            sb.Append("<p>Phases: ").Append(Esc(string.Join(" → ", s.Select(p => p.Phase).Distinct()))).Append("</p><div class=\"charts\">");
            sb.Append(Line("Throughput", "seconds", "messages/s", [S("accepted/s", p => p.AcceptedPerSec), S("delivered/s", p => p.DeliveredPerSec), S("failed/s", p => p.FailedPerSec, true)]));
            sb.Append(Line("Latency per second", "seconds", "ms", [S("accept p50", p => p.AcceptP50Ms), S("accept p99", p => p.AcceptP99Ms), S("e2e p50", p => p.E2eP50Ms, true), S("e2e p99", p => p.E2eP99Ms, true)]));
            var queue = new List<Series> { S("in flight (accepted − arrived)", p => p.InFlight) };
            if (s.Any(p => p.TargetQueue is not null)) queue.Add(S("target queue", p => p.TargetQueue ?? 0, true));
            if (s.Any(p => p.GeneratorBacklog > 0)) queue.Add(S("generator backlog (open model)", p => p.GeneratorBacklog, true));
            sb.Append(Line("Queue depth", "seconds", "messages", queue));
            sb.Append(Line("Memory (from /proc)", "seconds", "MB", [S("target RSS", p => p.TargetRssMb), S("target PSS", p => p.TargetPssMb, true), S("harness RSS", p => p.HarnessRssMb)]));
            sb.Append(Line("CPU", "seconds", "% of one core", [S("target", p => p.TargetCpuPercent), S("harness", p => p.HarnessCpuPercent)]));
            sb.Append("</div>");
            if (x.Facts.Count > 0)
                sb.Append("<p>").Append(Esc(string.Join(" · ", x.Facts.Select(kv => $"{kv.Key}: {kv.Value}")))).Append("</p>");
        }
        var lost = new StringBuilder();
        MarkdownReport.AppendLost(lost, r.Runs, "▶");
        if (lost.Length > 0)
            sb.Append(H(1, "LOST and still queued messages")).Append(r.Runs.Any(x => x.EndState is { Lost: > 0 }) ? "<pre class=\"lost\">" : "<pre>").Append(Esc(lost.ToString())).Append("</pre>");
        if (r.Notes.Count > 0)
        {
            sb.Append(H(1, "Notes")).Append("<ul>");
            foreach (var n in r.Notes) sb.Append("<li>").Append(Esc(n)).Append("</li>");
            sb.Append("</ul>");
        }
        return sb.ToString();
    }

    private static double[] Pct(Core.LatencySummary l) =>
        [l.P50Us / 1000.0, l.P90Us / 1000.0, l.P99Us / 1000.0, l.P999Us / 1000.0, l.MaxUs / 1000.0];
}
