using System.Buffers;
using System.Globalization;
using System.Text;
using System.Text.Json;
using System.Threading.Channels;

namespace MtaSts.Actors.Logging;

public enum MailLogLevel { Debug, Info, Warning, Critical }

/// <summary>
/// The operator log (SPEC.md §4): text lines in the vendor's vocabulary (MID, DCID, ICID, RID) that operators
/// grep, and a JSON twin of every line with the same ids as fields. Thread-safe; writes are line-atomic.
/// </summary>
/// <remarks>
/// <para><b>One event, one line, always.</b> Event texts carry client-supplied values (EHLO names, addresses, AUTH
/// user names, remote SMTP replies, policy host answers), so the text form escapes them in one place,
/// <see cref="EscapeText"/>, and nothing a client sends can start a forged line or drive the operator's terminal:</para>
/// <list type="bullet">
/// <item>TAB, LF, CR are written <c>\t</c>, <c>\n</c>, <c>\r</c> (TAB too: a text line never holds a raw control
/// character);</item>
/// <item>every other control character (C0 U+0000–U+001F, DEL U+007F, C1 U+0080–U+009F including NEL U+0085) is
/// written <c>\xHH</c> with two lower-case hex digits, e.g. <c>\x00</c>, <c>\x1b</c>, <c>\x7f</c>, <c>\x85</c>;</item>
/// <item>the line and paragraph separators U+2028 and U+2029 are written <c>\u2028</c> and <c>\u2029</c>, and the bidi controls U+202A–U+202E and U+2066–U+2069 as <c>\uXXXX</c> (lower-case hex);</item>
/// <item>a backslash is doubled (<c>\\</c>) when the next character is a backslash, one of <c>t n r x u</c>, or a
/// character escaped by the rules above; any other backslash stays as it is (so the vendor reply lists keep their
/// <c>doesn\'t</c>);</item>
/// <item>everything else, including non-ASCII text (SMTPUTF8 addresses and user names), is written unchanged.</item>
/// </list>
/// <para>The escaping is unambiguous: reading left to right, a backslash followed by a backslash is one backslash,
/// followed by <c>t n r</c> / <c>xHH</c> / <c>uHHHH</c> is that character, and followed by anything else (or
/// nothing) is itself (<see cref="UnescapeText"/>). Text without anything to escape is returned as the same string
/// instance (no allocation). The JSON twin and the <see cref="Written"/> observers get the original, unescaped text
/// and field values: JSON string escaping already keeps the JSON line on one line.</para>
/// </remarks>
public sealed class MailLog : IDisposable
{
    private readonly TextWriter? _text;
    private readonly TextWriter? _json;
    private readonly MailLogLevel _minimum;
    private readonly Func<DateTimeOffset> _clock;
    private readonly object _gate = new();

    // Background mode: formatted lines go through a bounded queue to one writer task that writes whatever is queued
    // and then flushes once (a flush per batch, not per line: the spool's fsync is the durability point, not the log).
    private readonly Channel<Pending>? _queue;
    private readonly Task? _pump;
    private int _writeFailures;

    /// <summary>Lines queued in background mode before writers wait (a stalled disk slows callers, loses nothing).</summary>
    public const int QueueCapacity = 65_536;

    private readonly record struct Pending(string? Text, string? Json, TaskCompletionSource? Written);

    /// <param name="background">Write and flush on a background task in batches (the gateway's log files). Lines
    /// keep their order; Critical lines and <see cref="Flush"/> wait until everything before them is on its way to
    /// the file; <see cref="Dispose"/> and process exit drain the queue. Off: every line is written and flushed
    /// before Write returns (tests reading a writer).</param>
    public MailLog(TextWriter? text, TextWriter? json = null, MailLogLevel minimum = MailLogLevel.Info,
        Func<DateTimeOffset>? clock = null, bool background = false)
    {
        _text = text;
        _json = json;
        _minimum = minimum;
        _clock = clock ?? (() => DateTimeOffset.Now);
        if (background && (text is not null || json is not null))
        {
            _queue = Channel.CreateBounded<Pending>(new BoundedChannelOptions(QueueCapacity)
                { SingleReader = true, FullMode = BoundedChannelFullMode.Wait });
            _pump = Task.Run(PumpAsync);
            AppDomain.CurrentDomain.ProcessExit += OnProcessExit;
        }
    }

    /// <summary>A log that drops everything (tests that don't care about logs).</summary>
    public static MailLog Null { get; } = new(null);

    /// <summary>Optional in-process observers (tests, metrics). Called synchronously; keep them cheap.</summary>
    public event Action<MailLogEntry>? Written;

    /// <summary>Something observes <see cref="Written"/>: every line, also those below the log level, is built for it.</summary>
    public bool IsObserved => Written is not null;

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
            if (_queue is not null) Enqueue(new Pending(textLine, jsonLine, level == MailLogLevel.Critical ? NewSignal() : null));
            else
                lock (_gate)
                {
                    WriteLines(textLine, jsonLine);
                    FlushWriters();
                }
        }
        observers?.Invoke(entry);
    }

    /// <summary>Waits until every line written before this call has been written and flushed (background mode;
    /// at once otherwise), or <paramref name="timeout"/> has passed.</summary>
    public bool Flush(TimeSpan? timeout = null)
    {
        if (_queue is null) return true;
        var signal = NewSignal();
        if (!_queue.Writer.TryWrite(new Pending(null, null, signal)) && !TryEnqueueWaiting(new Pending(null, null, signal)))
            return true; // disposed: the pump has drained what was queued
        return signal.Task.Wait(timeout ?? TimeSpan.FromSeconds(10));
    }

    private static TaskCompletionSource NewSignal() => new(TaskCreationOptions.RunContinuationsAsynchronously);

    private void Enqueue(Pending p)
    {
        if (_queue!.Writer.TryWrite(p) || TryEnqueueWaiting(p))
        {
            // A Critical line is often the last thing a failing process says: wait until it is in the file.
            p.Written?.Task.Wait(TimeSpan.FromSeconds(10));
            return;
        }
        // Disposed: write directly (the pump has finished), in order after everything it wrote.
        lock (_gate)
        {
            try
            {
                WriteLines(p.Text, p.Json);
                FlushWriters();
            }
            catch (ObjectDisposedException) { }
        }
    }

    // The queue is full (the disk is slower than the mail): the caller waits for room rather than lose the line.
    private bool TryEnqueueWaiting(Pending p)
    {
        while (_queue!.Writer.WaitToWriteAsync().AsTask().GetAwaiter().GetResult())
            if (_queue.Writer.TryWrite(p)) return true;
        return false;
    }

    private async Task PumpAsync()
    {
        var reader = _queue!.Reader;
        var signals = new List<TaskCompletionSource>();
        while (await reader.WaitToReadAsync().ConfigureAwait(false))
        {
            lock (_gate)
            {
                try
                {
                    while (reader.TryRead(out var p))
                    {
                        WriteLines(p.Text, p.Json);
                        if (p.Written is not null) signals.Add(p.Written);
                    }
                    FlushWriters();
                }
                catch (Exception ex) when (ex is IOException or ObjectDisposedException)
                {
                    // Disk full, file gone: the mail path must not stop for the log. Say so once on stderr.
                    if (Interlocked.Increment(ref _writeFailures) == 1)
                        Console.Error.WriteLine($"operator log write failed: {ex.Message} (further failures not reported)");
                }
            }
            foreach (var s in signals) s.TrySetResult();
            signals.Clear();
        }
    }

    private void WriteLines(string? textLine, string? jsonLine)
    {
        if (textLine is not null) _text!.WriteLine(textLine);
        if (jsonLine is not null) _json!.WriteLine(jsonLine);
    }

    private void FlushWriters()
    {
        _text?.Flush();
        _json?.Flush();
    }

    private void OnProcessExit(object? sender, EventArgs e) => Drain();

    private void Drain()
    {
        if (_queue is null || !_queue.Writer.TryComplete()) return;
        _pump!.Wait(TimeSpan.FromSeconds(10));
    }

    /// <summary>Vendor text form: <c>Mon Nov 23 10:00:00 2026 Info: text</c>, the text escaped by <see cref="EscapeText"/>.</summary>
    public static string FormatText(MailLogEntry e) => string.Concat(Stamp(e.Timestamp), LevelName(e.Level), ": ", EscapeText(e.Text));

    // The stamp has whole seconds, and a relayed message writes ≈ 9 lines in the same second: the formatted
    // "date level" prefix is kept for the last second and offset seen instead of being formatted per line
    // (issue 15: custom DateTime formatting was a measurable part of the operator log's CPU per message).
    private sealed record StampCache(long Second, TimeSpan Offset, string Text);
    private static StampCache? _stamp;

    internal static string Stamp(DateTimeOffset at)
    {
        long second = at.Ticks / TimeSpan.TicksPerSecond;
        var cached = Volatile.Read(ref _stamp);
        if (cached is not null && cached.Second == second && cached.Offset == at.Offset) return cached.Text;
        var text = at.ToString("ddd MMM dd HH:mm:ss yyyy ", CultureInfo.InvariantCulture);
        Volatile.Write(ref _stamp, new StampCache(second, at.Offset, text));
        return text;
    }

    private static string LevelName(MailLogLevel level) => level switch
    {
        MailLogLevel.Debug => "Debug",
        MailLogLevel.Info => "Info",
        MailLogLevel.Warning => "Warning",
        MailLogLevel.Critical => "Critical",
        _ => level.ToString(),
    };

    // Control characters (C0, DEL, C1), the Unicode line/paragraph separators, and the backslash (escaped only
    // when ambiguous, see BackslashNeedsDoubling).
    private static readonly SearchValues<char> Special = SearchValues.Create(
        Enumerable.Range(0, 0x20).Concat(Enumerable.Range(0x7F, 0x21)).Concat([0x2028, 0x2029, '\\'])
            .Concat(Enumerable.Range(0x202A, 5)).Concat(Enumerable.Range(0x2066, 4))
            .Select(c => (char)c).ToArray());

    /// <summary>Escapes <paramref name="text"/> for the text log by the rules in the class remarks; returns the same
    /// instance when there is nothing to escape.</summary>
    public static string EscapeText(string text)
    {
        int i = FirstToEscape(text);
        return i < 0 ? text : EscapeFrom(text, i);
    }

    private static bool IsEscaped(char c) => c < 0x20 || c is >= '\x7F' and <= '\x9F' or '\u2028' or '\u2029' || IsBidiControl(c);

    // Bidi embeddings/overrides/isolates (U+202A–U+202E, U+2066–U+2069) reorder how a terminal shows the rest of the
    // line (CVE-2021-42574 "Trojan Source"): a forged-looking line needs no newline with them.
    private static bool IsBidiControl(char c) => c is >= '\u202A' and <= '\u202E' or >= '\u2066' and <= '\u2069';

    private static bool BackslashNeedsDoubling(ReadOnlySpan<char> s, int i) =>
        i + 1 < s.Length && (s[i + 1] is '\\' or 't' or 'n' or 'r' or 'x' or 'u' || IsEscaped(s[i + 1]));

    private static int FirstToEscape(ReadOnlySpan<char> s)
    {
        int from = 0;
        while (true)
        {
            int j = s[from..].IndexOfAny(Special);
            if (j < 0) return -1;
            int i = from + j;
            if (s[i] != '\\' || BackslashNeedsDoubling(s, i)) return i;
            from = i + 1;
        }
    }

    private static string EscapeFrom(string text, int first)
    {
        var sb = new StringBuilder(text.Length + 16);
        sb.Append(text, 0, first);
        for (int i = first; i < text.Length; i++)
        {
            char c = text[i];
            switch (c)
            {
                case '\t': sb.Append(@"\t"); break;
                case '\n': sb.Append(@"\n"); break;
                case '\r': sb.Append(@"\r"); break;
                case '\\': sb.Append(BackslashNeedsDoubling(text, i) ? @"\\" : @"\"); break;
                case '\u2028': sb.Append(@"\u2028"); break;
                case '\u2029': sb.Append(@"\u2029"); break;
                default:
                    if (IsBidiControl(c)) sb.Append(@"\u").Append(((int)c).ToString("x4", CultureInfo.InvariantCulture));
                    else if (IsEscaped(c)) sb.Append(@"\x").Append(((int)c).ToString("x2", CultureInfo.InvariantCulture));
                    else sb.Append(c);
                    break;
            }
        }
        return sb.ToString();
    }

    /// <summary>The inverse of <see cref="EscapeText"/> (for tools that read the text log, and tests).</summary>
    public static string UnescapeText(string escaped)
    {
        if (!escaped.Contains('\\')) return escaped;
        var sb = new StringBuilder(escaped.Length);
        for (int i = 0; i < escaped.Length; i++)
        {
            char c = escaped[i];
            if (c != '\\' || i + 1 == escaped.Length) { sb.Append(c); continue; }
            switch (escaped[i + 1])
            {
                case '\\': sb.Append('\\'); i++; break;
                case 't': sb.Append('\t'); i++; break;
                case 'n': sb.Append('\n'); i++; break;
                case 'r': sb.Append('\r'); i++; break;
                case 'x' when Hex(escaped, i + 2, 2) is int x: sb.Append((char)x); i += 3; break;
                case 'u' when Hex(escaped, i + 2, 4) is int u: sb.Append((char)u); i += 5; break;
                default: sb.Append(c); break; // not an escape (EscapeText never writes a bare \x or \u)
            }
        }
        return sb.ToString();

        static int? Hex(string s, int start, int length) =>
            start + length <= s.Length &&
            int.TryParse(s.AsSpan(start, length), NumberStyles.AllowHexSpecifier, CultureInfo.InvariantCulture, out var v) ? v : null;
    }

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
        // Utf8JsonWriter (not indented) escapes CR and LF in every string and property name, so a raw CR or LF can only
        // be insignificant whitespace between tokens, written by a converter that emits raw JSON; make it a space.
        var json = ms.GetBuffer().AsSpan(0, (int)ms.Length);
        if (json.IndexOfAny((byte)'\r', (byte)'\n') >= 0)
        {
            json.Replace((byte)'\r', (byte)' ');
            json.Replace((byte)'\n', (byte)' ');
        }
        return Encoding.UTF8.GetString(json);
    }

    public void Dispose()
    {
        if (_queue is not null)
        {
            AppDomain.CurrentDomain.ProcessExit -= OnProcessExit;
            Drain();
        }
        lock (_gate)
        {
            _text?.Dispose();
            _json?.Dispose();
        }
    }
}

public sealed record MailLogEntry(DateTimeOffset Timestamp, MailLogLevel Level, string Event, string Text,
    IReadOnlyList<(string Key, object? Value)> Fields);

/// <summary>Formats RID lists the vendor way: <c>[0]</c>, <c>[0, 1]</c>.</summary>
public static class Rid
{
    public static string List(IEnumerable<int> rids) => "[" + string.Join(", ", rids) + "]";
}
