using System.Globalization;
using System.IO.Compression;
using System.Text.Json;

namespace MtaSts.Actors.TlsRpt;

/// <summary>One aggregated row: sessions of one policy domain, day, policy and result (summed over nodes).</summary>
public sealed record TlsRptCount(TlsRptPolicy Policy, string? ResultType, string? SendingIp, string? ReceivingMx,
    string? ReceivingIp, long Sessions);

/// <summary>The RFC 8460 §4 report for one policy domain and one period.</summary>
public sealed record TlsRptReport(string OrganizationName, string ContactInfo, string ReportId, string PolicyDomain,
    DateTimeOffset Start, DateTimeOffset End, IReadOnlyList<TlsRptCount> Counts)
{
    public long TotalSessions => Counts.Sum(c => c.Sessions);

    /// <summary>The §4.4 JSON: one policies[] entry per distinct policy, summary counts, failure-details per result.</summary>
    public byte[] ToJson(bool indented = false)
    {
        using var ms = new MemoryStream();
        using (var w = new Utf8JsonWriter(ms, new JsonWriterOptions { Indented = indented }))
        {
            w.WriteStartObject();
            w.WriteString("organization-name", OrganizationName);
            w.WriteStartObject("date-range");
            w.WriteString("start-datetime", Rfc3339(Start));
            w.WriteString("end-datetime", Rfc3339(End));
            w.WriteEndObject();
            w.WriteString("contact-info", ContactInfo);
            w.WriteString("report-id", ReportId);
            w.WriteStartArray("policies");
            foreach (var group in Counts.GroupBy(c => c.Policy).OrderBy(g => g.Key.Type, StringComparer.Ordinal).ThenBy(g => g.Key.Canonical, StringComparer.Ordinal))
            {
                var p = group.Key;
                w.WriteStartObject();
                w.WriteStartObject("policy");
                w.WriteString("policy-type", p.Type);
                if (p.Strings.Count > 0)
                {
                    w.WriteStartArray("policy-string");
                    foreach (var s in p.Strings) w.WriteStringValue(s);
                    w.WriteEndArray();
                }
                w.WriteString("policy-domain", PolicyDomain);
                if (p.MxHosts.Count > 0)
                {
                    w.WriteStartArray("mx-host");
                    foreach (var s in p.MxHosts) w.WriteStringValue(s);
                    w.WriteEndArray();
                }
                w.WriteEndObject();
                w.WriteStartObject("summary");
                w.WriteNumber("total-successful-session-count", group.Where(c => c.ResultType is null).Sum(c => c.Sessions));
                w.WriteNumber("total-failure-session-count", group.Where(c => c.ResultType is not null).Sum(c => c.Sessions));
                w.WriteEndObject();
                var failures = group.Where(c => c.ResultType is not null)
                    .OrderBy(c => c.ResultType, StringComparer.Ordinal).ThenBy(c => c.ReceivingMx, StringComparer.Ordinal)
                    .ThenBy(c => c.ReceivingIp, StringComparer.Ordinal).ToArray();
                if (failures.Length > 0)
                {
                    w.WriteStartArray("failure-details");
                    foreach (var f in failures)
                    {
                        w.WriteStartObject();
                        w.WriteString("result-type", f.ResultType);
                        if (f.SendingIp is not null) w.WriteString("sending-mta-ip", f.SendingIp);
                        if (f.ReceivingMx is not null) w.WriteString("receiving-mx-hostname", f.ReceivingMx);
                        if (f.ReceivingIp is not null) w.WriteString("receiving-ip", f.ReceivingIp);
                        w.WriteNumber("failed-session-count", f.Sessions);
                        w.WriteEndObject();
                    }
                    w.WriteEndArray();
                }
                w.WriteEndObject();
            }
            w.WriteEndArray();
            w.WriteEndObject();
        }
        return ms.ToArray();
    }

    /// <summary>§5.2: gzip of the JSON (media type application/tlsrpt+gzip).</summary>
    public byte[] ToGzip()
    {
        using var ms = new MemoryStream();
        using (var gz = new GZipStream(ms, CompressionLevel.Optimal, leaveOpen: true)) gz.Write(ToJson());
        return ms.ToArray();
    }

    /// <summary>§5.1: <c>sender "!" policy-domain "!" begin-timestamp "!" end-timestamp [ "!" unique-id ] "." extension</c>,
    /// timestamps in seconds since the epoch.</summary>
    public string FileName(string submitter) =>
        string.Create(CultureInfo.InvariantCulture,
            $"{submitter}!{PolicyDomain}!{Start.ToUnixTimeSeconds()}!{End.ToUnixTimeSeconds()}!{UniqueIdPart}.json.gz");

    /// <summary>The report id without characters that are not allowed in a file name part.</summary>
    private string UniqueIdPart => new(ReportId.Where(c => char.IsAsciiLetterOrDigit(c) || c is '-' or '.' or '_').ToArray());

    private static string Rfc3339(DateTimeOffset t) => t.UtcDateTime.ToString("yyyy-MM-dd'T'HH:mm:ss'Z'", CultureInfo.InvariantCulture);

    /// <summary>Decodes a gzip report (tests, tools).</summary>
    public static JsonDocument Decode(byte[] gzip)
    {
        using var gz = new GZipStream(new MemoryStream(gzip), CompressionMode.Decompress);
        using var ms = new MemoryStream();
        gz.CopyTo(ms);
        return JsonDocument.Parse(ms.ToArray());
    }
}
