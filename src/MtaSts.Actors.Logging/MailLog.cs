using System.Text;
using System.Text.Json;

namespace MtaSts.Actors.Logging;

public enum MailLogLevel { Debug, Info, Warning, Critical }

/// <summary>
/// The operator log (SPEC.md §4): text lines in the vendor's vocabulary (MID, DCID, ICID, RID) that operators
/// grep, and a JSON twin of every line with the same ids as fields. Thread-safe; writes are line-atomic.
/// </summary>
public sealed class MailLog : IDisposable
{
    private readonly TextWriter? _text;
    private readonly TextWriter? _json;
    private readonly MailLogLevel _minimum;
    private readonly Func<DateTimeOffset> _clock;
    private readonly object _gate = new();

    public MailLog(TextWriter? text, TextWriter? json = null, MailLogLevel minimum = MailLogLevel.Info,
        Func<DateTimeOffset>? clock = null)
    {
        _text = text;
        _json = json;
        _minimum = minimum;
        _clock = clock ?? (() => DateTimeOffset.Now);
    }

    /// <summary>A log that drops everything (tests that don't care about logs).</summary>
    public static MailLog Null { get; } = new(null);

    /// <summary>Optional in-process observers (tests, metrics). Called synchronously; keep them cheap.</summary>
    public event Action<MailLogEntry>? Written;

    public bool IsEnabled(MailLogLevel level) => level >= _minimum;

    public void Debug(string evt, string text, params (string Key, object? Value)[] fields) => Write(MailLogLevel.Debug, evt, text, fields);
    public void Info(string evt, string text, params (string Key, object? Value)[] fields) => Write(MailLogLevel.Info, evt, text, fields);
    public void Warning(string evt, string text, params (string Key, object? Value)[] fields) => Write(MailLogLevel.Warning, evt, text, fields);
    public void Critical(string evt, string text, params (string Key, object? Value)[] fields) => Write(MailLogLevel.Critical, evt, text, fields);

    /// <param name="evt">Stable machine name of the event (snake_case), e.g. <c>delivery_start</c>.</param>
    /// <param name="text">The operator line without timestamp and level, e.g. <c>Delivery start DCID 8 MID 6 to RID [0]</c>.</param>
    /// <param name="fields">The same ids as structured fields: ("mid", 6), ("dcid", 8), ("rid", new[]{0}).</param>
    public void Write(MailLogLevel level, string evt, string text, params (string Key, object? Value)[] fields)
    {
        var observers = Written;
        if (level < _minimum && observers is null) return;
        var now = _clock();
        var entry = new MailLogEntry(now, level, evt, text, fields);
        if (level >= _minimum && (_text is not null || _json is not null))
        {
            string? textLine = _text is null ? null : FormatText(entry);
            string? jsonLine = _json is null ? null : FormatJson(entry);
            lock (_gate)
            {
                if (textLine is not null) { _text!.WriteLine(textLine); _text.Flush(); }
                if (jsonLine is not null) { _json!.WriteLine(jsonLine); _json.Flush(); }
            }
        }
        observers?.Invoke(entry);
    }

    /// <summary>Vendor text form: <c>Mon Nov 23 10:00:00 2026 Info: text</c>.</summary>
    public static string FormatText(MailLogEntry e) =>
        $"{e.Timestamp.ToString("ddd MMM dd HH:mm:ss yyyy", System.Globalization.CultureInfo.InvariantCulture)} {e.Level}: {e.Text}";

    public static string FormatJson(MailLogEntry e)
    {
        using var ms = new MemoryStream();
        using (var w = new Utf8JsonWriter(ms))
        {
            w.WriteStartObject();
            w.WriteString("ts", e.Timestamp.ToUniversalTime().ToString("O"));
            w.WriteString("level", e.Level.ToString().ToLowerInvariant());
            w.WriteString("event", e.Event);
            w.WriteString("text", e.Text);
            foreach (var (key, value) in e.Fields)
            {
                w.WritePropertyName(key);
                JsonSerializer.Serialize(w, value, value?.GetType() ?? typeof(object));
            }
            w.WriteEndObject();
        }
        return Encoding.UTF8.GetString(ms.ToArray());
    }

    public void Dispose()
    {
        _text?.Dispose();
        _json?.Dispose();
    }
}

public sealed record MailLogEntry(DateTimeOffset Timestamp, MailLogLevel Level, string Event, string Text,
    IReadOnlyList<(string Key, object? Value)> Fields);

/// <summary>Formats RID lists the vendor way: <c>[0]</c>, <c>[0, 1]</c>.</summary>
public static class Rid
{
    public static string List(IEnumerable<int> rids) => "[" + string.Join(", ", rids) + "]";
}

/// <summary>Process-wide monotonically increasing ids (MID, ICID, DCID). Seeded at start-up so that ids
/// are not reused across restarts (the spool recovers the highest MID and calls <see cref="EnsureAbove"/>).</summary>
public sealed class IdSequence
{
    private long _last;
    public IdSequence(long start = 0) => _last = start;
    public long Next() => Interlocked.Increment(ref _last);
    public long Current => Interlocked.Read(ref _last);
    public void EnsureAbove(long value)
    {
        long seen;
        while ((seen = Interlocked.Read(ref _last)) < value)
            if (Interlocked.CompareExchange(ref _last, value, seen) == seen) return;
    }
}
