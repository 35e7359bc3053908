using System.Globalization;
using MtaSts.Actors.Configuration;

namespace MtaSts.Actors.TlsRpt;

/// <summary><c>mtasts.tls-rpt { … }</c> (hocon/gateway.conf).</summary>
public sealed record TlsRptOptions
{
    /// <summary>Record sessions and send reports. Off by default: reports go to third parties and name this organisation.</summary>
    public bool Enabled { get; init; }
    /// <summary>§4.4 organization-name.</summary>
    public string OrganizationName { get; init; } = "";
    /// <summary>§4.4 contact-info (an e-mail address or URL).</summary>
    public string ContactInfo { get; init; } = "";
    /// <summary>§5.3 TLS-Report-Submitter and the first part of the §5.1 file name; default: mtasts.hostname.</summary>
    public string? Submitter { get; init; }
    /// <summary>From: of report mail; default: noreply-tlsrpt@&lt;submitter&gt;.</summary>
    public string? FromAddress { get; init; }
    /// <summary>UTC hour at which the previous UTC day is reported (RFC 8460 §4.1: daily, 00:00–24:00 UTC).</summary>
    public int SendHourUtc { get; init; } = 1;
    /// <summary>How often the in-memory counters are written to SQLite (what a crash can lose).</summary>
    public TimeSpan FlushInterval { get; init; } = TimeSpan.FromSeconds(5);
    /// <summary>Attempts per report and URI (HTTPS POST or spooling the mail); §5.5 suggests up to 24 h of retries.</summary>
    public int MaxAttempts { get; init; } = 5;
    /// <summary>Wait before the 2nd attempt; doubled after each (exponential backoff, §5.5).</summary>
    public TimeSpan RetryInterval { get; init; } = TimeSpan.FromMinutes(10);
    /// <summary>Whole HTTPS POST (connect, TLS, upload, answer).</summary>
    public TimeSpan HttpTimeout { get; init; } = TimeSpan.FromSeconds(60);
    /// <summary>Days of counters kept (reports can be re-sent on demand for them).</summary>
    public int KeepDays { get; init; } = 8;

    /// <summary>Reads the <c>mtasts.tls-rpt</c> section; every problem is recorded with its full key name.</summary>
    public static TlsRptOptions Read(ConfigSection section)
    {
        var d = new TlsRptOptions();
        string? Text(string key) => section.Value(key);
        T Parse<T>(string key, T fallback, Func<string, T> parse) => section.Get(key, fallback, raw => parse(raw.Trim()));
        int Int(string key, int fallback, int min, int max) => Parse(key, fallback, s =>
            int.TryParse(s, NumberStyles.Integer, CultureInfo.InvariantCulture, out var v) && v >= min && v <= max ? v
                : throw new FormatException($"expected an integer {min}..{max}"));
        TimeSpan Dur(string key, TimeSpan fallback, TimeSpan min, TimeSpan max) => Parse(key, fallback, s =>
            ConfigSection.TryParseDuration(s, out var d) && d >= min && d <= max ? d
                : throw new FormatException($"expected a duration {Show(min)}..{Show(max)} (e.g. 5s, 10m, 1h)"));

        var o = new TlsRptOptions
        {
            Enabled = section.Bool("enabled", d.Enabled),
            OrganizationName = Text("organization-name")?.Trim() ?? d.OrganizationName,
            ContactInfo = Text("contact-info")?.Trim() ?? d.ContactInfo,
            Submitter = Text("submitter") is { Length: > 0 } sub ? sub.Trim().TrimEnd('.').ToLowerInvariant() : null,
            FromAddress = Text("from-address") is { Length: > 0 } from ? from.Trim() : null,
            SendHourUtc = Int("send-hour-utc", d.SendHourUtc, 0, 23),
            FlushInterval = Dur("flush-interval", d.FlushInterval, TimeSpan.FromMilliseconds(100), TimeSpan.FromMinutes(5)),
            MaxAttempts = Int("max-attempts", d.MaxAttempts, 1, 20),
            RetryInterval = Dur("retry-interval", d.RetryInterval, TimeSpan.FromMilliseconds(100), TimeSpan.FromHours(6)),
            HttpTimeout = Dur("http-timeout", d.HttpTimeout, TimeSpan.FromSeconds(1), TimeSpan.FromMinutes(10)),
            KeepDays = Int("keep-days", d.KeepDays, 2, 366),
        };
        if (o.Enabled)
        {
            if (o.OrganizationName.Length == 0)
                section.Error("mtasts.tls-rpt.organization-name is required when mtasts.tls-rpt.enabled = true (RFC 8460 §4.4 organization-name)");
            if (o.ContactInfo.Length == 0)
                section.Error("mtasts.tls-rpt.contact-info is required when mtasts.tls-rpt.enabled = true (an e-mail address or URL, RFC 8460 §4.4)");
        }
        if (o.OrganizationName.Any(char.IsControl) || o.ContactInfo.Any(char.IsControl))
            section.Error("mtasts.tls-rpt.organization-name and contact-info must not contain control characters");
        if (o.FromAddress is { } f && (f.IndexOf('@') is var at && (at <= 0 || at == f.Length - 1) || f.Any(c => c <= ' ' || c is '<' or '>' or ',' or '"')))
            section.Error($"mtasts.tls-rpt.from-address = \"{f}\": not a mail address (local@domain)");
        if (o.Submitter is { } s && Uri.CheckHostName(s) != UriHostNameType.Dns)
            section.Error($"mtasts.tls-rpt.submitter = \"{s}\": not a domain name");
        return o;
    }

    private static string Show(TimeSpan t) => t.TotalMilliseconds < 1000 ? $"{t.TotalMilliseconds:0}ms"
        : t.TotalSeconds < 60 ? $"{t.TotalSeconds:0}s" : t.TotalMinutes < 60 ? $"{t.TotalMinutes:0}m" : $"{t.TotalHours:0}h";
}
