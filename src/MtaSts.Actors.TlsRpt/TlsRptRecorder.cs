using System.Collections.Concurrent;
using MtaSts.Actors.Logging;

namespace MtaSts.Actors.TlsRpt;

/// <summary>
/// The delivery hot path's side of TLS-RPT: <see cref="Record"/> only increments an in-memory counter (no I/O, no
/// lock besides the concurrent dictionary's); a timer writes the accumulated counts to <see cref="TlsRptStore"/> every
/// flush interval in one transaction. A crash (SIGKILL, power loss) loses at most the sessions of the last flush
/// interval; a graceful stop flushes. A failed write keeps the counts in memory for the next flush.
/// </summary>
public sealed class TlsRptRecorder : ITlsRptRecorder, IDisposable
{
    private readonly TlsRptStore _store;
    private readonly string _node;
    private readonly MailLog _log;
    private readonly object _flushGate = new();
    private readonly ConcurrentDictionary<(string Domain, DateOnly Day, string Policy, string Result), Entry> _pending = new();
    private readonly Timer? _timer;
    private int _disposed;

    private sealed class Entry(TlsRptSession first)
    {
        public readonly TlsRptSession Session = first;
        public long Count;
    }

    public TlsRptRecorder(TlsRptStore store, string node, MailLog log, TimeSpan flushInterval)
    {
        _store = store;
        _node = node;
        _log = log;
        if (flushInterval > TimeSpan.Zero) _timer = new Timer(_ => Flush(), null, flushInterval, flushInterval);
    }

    public void Record(TlsRptSession session)
    {
        if (Volatile.Read(ref _disposed) != 0) return;
        var key = (session.PolicyDomain, DateOnly.FromDateTime(session.At.UtcDateTime), session.Policy.Key, session.ResultKey);
        var e = _pending.GetOrAdd(key, _ => new Entry(session));
        Interlocked.Increment(ref e.Count);
    }

    /// <summary>Writes what was recorded since the last flush (one transaction). Also called before a report is built.
    /// Each entry's count is taken with an atomic exchange, so an increment racing with the flush is never lost: it
    /// stays for the next flush.</summary>
    public void Flush()
    {
        lock (_flushGate)
        {
            var taken = new List<(Entry Entry, long Count)>();
            foreach (var e in _pending.Values)
                if (Interlocked.Exchange(ref e.Count, 0) is var n and > 0) taken.Add((e, n));
            // Entries of earlier days get no more sessions: drop them once written.
            var today = DateOnly.FromDateTime(DateTime.UtcNow);
            if (taken.Count == 0) return;
            try
            {
                _store.Add(_node, taken.Select(t => new KeyValuePair<TlsRptSession, long>(t.Entry.Session, t.Count)).ToArray());
                foreach (var k in _pending.Keys.Where(k => k.Day < today.AddDays(-1)).ToArray())
                    if (_pending.TryGetValue(k, out var old) && Interlocked.Read(ref old.Count) == 0) _pending.TryRemove(k, out _);
            }
            catch (Exception ex)
            {
                foreach (var (e, n) in taken) Interlocked.Add(ref e.Count, n);
                _log.Warning("tlsrpt_flush_failed", $"TLS-RPT: writing session counters failed, kept in memory: {ex.Message}");
            }
        }
    }

    public void Dispose()
    {
        if (Interlocked.Exchange(ref _disposed, 1) != 0) return;
        _timer?.Dispose();
        Flush();
    }
}

public static class TlsRptRecorderExtensions
{
    /// <summary>Classifies one delivery attempt and records it (the delivery transport's single call). Never throws:
    /// a TLS-RPT problem must not disturb delivery.</summary>
    public static void Observe(this ITlsRptRecorder recorder, TlsRptAttempt attempt)
    {
        try
        {
            if (TlsRptClassifier.Classify(attempt) is { } s) recorder.Record(s);
        }
        catch (Exception)
        {
            // Classification is pure and total; nothing here may reach the delivery path.
        }
    }
}
