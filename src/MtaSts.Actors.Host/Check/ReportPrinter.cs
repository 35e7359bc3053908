using System.Globalization;
using System.Text;

namespace MtaSts.Actors.Host.Check;

/// <summary>The human-readable form of a <see cref="CheckReport"/>: a step list, an MX table, problems, the log, the verdict.</summary>
public static class ReportPrinter
{
    public static string Table(CheckReport r)
    {
        var sb = new StringBuilder();
        sb.AppendLine($"MTA-STS check of {r.Domain}");
        sb.AppendLine();

        var steps = new List<string[]>();
        var txt = r.Txt;
        steps.Add(new[] { "TXT " + txt.Name, txt.Id is not null ? "ok" : txt.Outcome == "tempfail" ? "FAIL" : "none",
            txt.Id is not null ? $"id={txt.Id}" + (txt.Records.Count > 1 ? $" ({txt.Records.Count} TXT records)" : "") : txt.Error ?? "" });
        foreach (var record in txt.Records) steps.Add(new[] { "", "", "\"" + record + "\"" });
        if (r.Policy is { } p)
        {
            steps.Add(new[] { "policy fetch", p.Ok ? "ok" : "FAIL", p.Url + (p.Proxy is null ? "" : $" via proxy {p.Proxy}") });
            if (p.Ok)
                steps.Add(new[] { "", "", $"mode {p.Mode}, max_age {p.MaxAge}, mx: {string.Join(", ", p.MxPatterns)}" });
            else
                steps.Add(new[] { "", "", $"{p.ResultType}: {p.Error}" });
            if (p.Certificate is { } c)
            {
                steps.Add(new[] { "policy certificate", c.Ok ? "ok" : "FAIL", c.Subject is null ? c.Error ?? "" : Describe(c) });
                if (c.Subject is not null && !c.Ok) steps.Add(new[] { "", "", c.Error ?? "" });
            }
            else if (p.Proxy is not null)
            {
                steps.Add(new[] { "policy certificate", p.ResultType == "sts-webpki-invalid" ? "FAIL" : p.Ok ? "ok" : "?",
                    "checked by the fetch through the proxy (not probed directly)" });
            }
        }
        else
        {
            steps.Add(new[] { "policy", "-", r.PolicyStatus == Check.PolicyStatus.Absent ? "no MTA-STS policy (not fetched)" : "not fetched" });
        }
        steps.Add(new[] { "MX " + r.Domain, r.Mx.Hosts.Count > 0 ? "ok" : "FAIL",
            r.Mx.Hosts.Count == 0 ? $"{r.Mx.Outcome}: {r.Mx.Error}"
            : $"{r.Mx.Hosts.Count} host{(r.Mx.Hosts.Count == 1 ? "" : "s")}" + (r.Mx.Outcome == "implicit" ? " (no MX records: the domain itself, RFC 5321 §5.1)" : "")
              + (r.Mx.Error is null ? "" : $" — {r.Mx.Error}") });
        Columns(sb, steps, indent: "  ");

        if (r.Mx.Hosts.Count > 0)
        {
            sb.AppendLine();
            var rows = new List<string[]> { new[] { "MX host", "pref", "policy", "address", "STARTTLS", "TLS", "cipher", "certificate", "result" } };
            foreach (var h in r.Mx.Hosts)
            {
                var s = h.Smtp;
                rows.Add(new[]
                {
                    h.Name,
                    h.Preference.ToString(CultureInfo.InvariantCulture),
                    h.PolicyMatch switch { true => "match", false => "NO MATCH", null => "-" },
                    s?.Address ?? (h.Addresses.Count > 0 ? string.Join(",", h.Addresses) : "no address"),
                    s is null || !s.Connected ? "-" : s.StartTls ? "yes" : "NO",
                    s?.TlsProtocol ?? "-",
                    s?.TlsCipher ?? "-",
                    s?.Certificate is { } c ? c.Ok ? "valid" : c.Error ?? "invalid" : "-",
                    h.Passes ? "pass" : "FAIL" + (h.ResultType is null ? "" : $" ({h.ResultType})"),
                });
            }
            Columns(sb, rows, indent: "  ", header: true);
            foreach (var h in r.Mx.Hosts.Where(h => h.Smtp is not null))
            {
                var s = h.Smtp!;
                sb.AppendLine();
                sb.AppendLine($"  {h.Name} [{s.Address}]");
                if (s.Greeting is not null) sb.AppendLine($"    greeting    {s.Greeting}");
                if (s.Extensions.Count > 0) sb.AppendLine($"    EHLO        {string.Join(" ", s.Extensions.Select(e => e.Split(' ')[0]))}");
                if (s.Certificate is { Subject: not null } c)
                {
                    sb.AppendLine($"    certificate {Describe(c)}");
                    if (c.Chain.Count > 1) sb.AppendLine($"    chain       {string.Join(" <- ", c.Chain)}");
                }
                if (s.Error is not null) sb.AppendLine($"    error       {s.Error}");
                foreach (var a in s.Attempts.Where(a => !a.EndsWith(": ok", StringComparison.Ordinal) && !a.Contains(s.Error ?? "\0", StringComparison.Ordinal)))
                    sb.AppendLine($"    attempt     {a}");
            }
        }

        if (r.Problems.Count > 0)
        {
            sb.AppendLine();
            sb.AppendLine(r.Mode == "testing" ? "Problems (testing mode: reported, not enforced):" : "Problems:");
            foreach (var problem in r.Problems) sb.AppendLine($"  - {problem}");
        }
        if (r.Warnings.Count > 0)
        {
            sb.AppendLine();
            sb.AppendLine("Warnings:");
            foreach (var w in r.Warnings) sb.AppendLine($"  - {w}");
        }
        if (r.Log.Count > 0)
        {
            sb.AppendLine();
            sb.AppendLine("Log:");
            foreach (var l in r.Log) sb.AppendLine($"  {l}");
        }
        sb.AppendLine();
        // The verdict text starts with "deliverable" / "not deliverable"; shout that part.
        var head = r.Deliverable ? "deliverable" : "not deliverable";
        var rest = r.Verdict.StartsWith(head, StringComparison.Ordinal) ? r.Verdict[head.Length..] : " — " + r.Verdict;
        sb.AppendLine($"Verdict: {head.ToUpperInvariant()}{rest}");
        return sb.ToString();
    }

    private static string Describe(CertificateReport c)
    {
        var names = c.Names.Count == 0 ? "" : $" names {string.Join(", ", c.Names)};";
        var until = c.NotAfter is { } na ? $" expires {na.UtcDateTime:yyyy-MM-dd}" : "";
        return $"{c.Subject};{names} issuer {c.Issuer};{until}";
    }

    private static void Columns(StringBuilder sb, List<string[]> rows, string indent, bool header = false)
    {
        var widths = new int[rows.Max(r => r.Length)];
        foreach (var row in rows)
            for (var i = 0; i < row.Length - 1; i++)
                widths[i] = Math.Max(widths[i], row[i].Length);
        for (var n = 0; n < rows.Count; n++)
        {
            var row = rows[n];
            var line = new StringBuilder(indent);
            for (var i = 0; i < row.Length; i++)
                line.Append(i == row.Length - 1 ? row[i] : row[i].PadRight(widths[i] + 2));
            sb.AppendLine(line.ToString().TrimEnd());
            if (header && n == 0)
                sb.AppendLine(indent + string.Join("  ", widths.Take(row.Length - 1).Select(w => new string('-', w))) + "  " + new string('-', row[^1].Length));
        }
    }
}
