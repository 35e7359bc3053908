using System.Diagnostics.CodeAnalysis;
using System.Net;

namespace MtaSts.Actors.Smtp.Intake.Limits;

/// <summary>
/// Per-client accounting for one listener, after Postfix anvil(8): concurrent sessions, connection rate and message
/// rate per <see cref="ClientKey"/> (IPv4 address or IPv6 /64). Thread-safe (one lock; every call is O(1)).
/// </summary>
/// <remarks>
/// <para><b>Rates</b> use anvil's fixed window (anvil_rate_time_unit = 60 s): a client's window opens at its first
/// event after the previous one ran out and lasts <see cref="RateWindow"/>; both counters start from zero in each
/// window. Only admitted events are counted. A refused attempt neither counts nor delays the window's end, so a client
/// hammering while over the limit is admitted again at most 60 s after its window opened — the penalty cannot be
/// extended by retrying (a sliding log of attempts could). The cost of a fixed window is the usual boundary burst: up
/// to twice the limit within a short span straddling two windows.</para>
/// <para><b>Memory</b>: at most <c>maxTrackedClients</c> entries plus one per client with live sessions (bounded by
/// the listener's own session cap). An entry without sessions whose window has run out holds nothing and is swept
/// opportunistically. When the table is full, the least recently used entry without sessions is evicted even if its
/// window is still running: rate limits <b>fail open</b> for it (its counts restart from zero, see
/// <see cref="ForcedEvictions"/>). Failing closed would let anyone with enough source addresses (an IPv6 /48 has
/// 65,536 /64s) lock every new client out, whereas failing open only lets such an attacker escape per-client rates —
/// the listener's global session cap still holds. Entries with live sessions are never evicted, so concurrent session
/// counts are exact.</para>
/// <para><b>Logging</b>: <see cref="Refusal.FirstInWindow"/> is true for the first refusal of a client per reason per
/// window, so the listener can log one line per client and limit per minute however hard it is hammered.</para>
/// <para>The clock is <see cref="TimeProvider.GetTimestamp"/> (monotonic); a fake clock must advance it.</para>
/// </remarks>
public sealed class ClientLimiter
{
    /// <summary>Length of a rate window (anvil_rate_time_unit).</summary>
    public static readonly TimeSpan RateWindow = TimeSpan.FromSeconds(60);

    /// <summary>Default bound on tracked clients without live sessions.</summary>
    public const int DefaultMaxTrackedClients = 100_000;

    private readonly object _gate = new();
    private readonly TimeProvider _time;
    private readonly long _origin;
    private readonly LruTable<ClientKey, Entry> _table;

    /// <param name="time">Clock; <see cref="TimeProvider.System"/> when null.</param>
    /// <param name="maxTrackedClients">Table bound; exceeded only by clients with live sessions, which are never evicted.</param>
    public ClientLimiter(TimeProvider? time = null, int maxTrackedClients = DefaultMaxTrackedClients)
    {
        ArgumentOutOfRangeException.ThrowIfLessThan(maxTrackedClients, 1);
        _time = time ?? TimeProvider.System;
        _origin = _time.GetTimestamp();
        _table = new LruTable<ClientKey, Entry>(maxTrackedClients,
            static (e, now) => e.Sessions == 0 && now - e.WindowStart >= RateWindow.Ticks);
    }

    /// <summary>Clients currently tracked (with or without live sessions).</summary>
    public int TrackedClients { get { lock (_gate) return _table.Count; } }

    /// <summary>Entries evicted while their window was still running because the table was full (rates failed open for them).</summary>
    public long ForcedEvictions { get { lock (_gate) return _table.ForcedEvictions; } }

    /// <summary>Live sessions of <paramref name="client"/>'s key.</summary>
    public int SessionCount(IPAddress client)
    {
        var key = ClientKey.From(client);
        lock (_gate) return _table.TryGet(key, out var e) ? e.Sessions : 0;
    }

    /// <summary>Admits a new connection (counts a session and a connection) or refuses it (<see cref="LimitReason.TooManySessions"/> checked first, then <see cref="LimitReason.ConnectionRateExceeded"/>); dispose the lease when the session ends.</summary>
    public Admission TryOpenSession(IPAddress client, ClientLimits limits)
    {
        ArgumentNullException.ThrowIfNull(limits);
        var key = ClientKey.From(client);
        lock (_gate)
        {
            var e = Get(key);
            if (limits.MaxSessions > 0 && e.Sessions >= limits.MaxSessions)
                return new Admission(Refuse(e, LimitReason.TooManySessions, limits.MaxSessions));
            if (limits.ConnectionsPerMinute > 0 && e.Connections >= limits.ConnectionsPerMinute)
                return new Admission(Refuse(e, LimitReason.ConnectionRateExceeded, limits.ConnectionsPerMinute));
            e.Connections++;
            if (e.Sessions++ == 0) _table.Pin(e);
            return new Admission(new SessionLease(this, e));
        }
    }

    /// <summary>Counts a MAIL FROM against the client's message rate; false (and the refusal) when over <see cref="ClientLimits.MessagesPerMinute"/>.</summary>
    public bool TryStartMessage(IPAddress client, ClientLimits limits, out Refusal refusal)
    {
        ArgumentNullException.ThrowIfNull(limits);
        var key = ClientKey.From(client);
        lock (_gate)
        {
            var e = Get(key);
            if (limits.MessagesPerMinute > 0 && e.Messages >= limits.MessagesPerMinute)
            {
                refusal = Refuse(e, LimitReason.MessageRateExceeded, limits.MessagesPerMinute);
                return false;
            }
            e.Messages++;
            refusal = default;
            return true;
        }
    }

    private long Now() => _time.GetElapsedTime(_origin).Ticks;

    private Entry Get(ClientKey key)
    {
        var now = Now();
        var e = _table.GetOrAdd(key, now, static (k, t) => new Entry(k, t));
        if (now - e.WindowStart >= RateWindow.Ticks)
        {
            e.WindowStart = now;
            e.Connections = e.Messages = 0;
            e.Reported = 0;
        }
        return e;
    }

    private static Refusal Refuse(Entry e, LimitReason reason, int limit)
    {
        var bit = 1 << (int)reason;
        var first = (e.Reported & bit) == 0;
        e.Reported |= bit;
        return new Refusal(e.Key, reason, limit, first);
    }

    internal void Release(Entry e)
    {
        lock (_gate)
        {
            if (--e.Sessions == 0) _table.Unpin(e);
        }
    }

    internal sealed class Entry(ClientKey key, long now) : LruEntry<ClientKey, Entry>(key)
    {
        public int Sessions;
        public long WindowStart = now;
        public int Connections;
        public int Messages;
        public int Reported;   // one bit per LimitReason refused in this window
    }
}

/// <summary>Which client limit refused an attempt.</summary>
public enum LimitReason
{
    /// <summary><see cref="ClientLimits.MaxSessions"/> sessions already open.</summary>
    TooManySessions = 1,
    /// <summary><see cref="ClientLimits.ConnectionsPerMinute"/> reached in the current window.</summary>
    ConnectionRateExceeded,
    /// <summary><see cref="ClientLimits.MessagesPerMinute"/> reached in the current window.</summary>
    MessageRateExceeded,
}

/// <summary>A refusal by <see cref="ClientLimiter"/>: who, why, the limit (for the reply and the log), and whether to log it.</summary>
/// <param name="Client">The counted key (address or /64).</param>
/// <param name="Reason">The limit that was hit.</param>
/// <param name="Limit">That limit's configured value.</param>
/// <param name="FirstInWindow">First refusal of this client for this reason in the current window: log this one, stay quiet for the rest.</param>
public readonly record struct Refusal(ClientKey Client, LimitReason Reason, int Limit, bool FirstInWindow)
{
    /// <summary>One line for the reply text and the log, e.g. "too many sessions from 192.0.2.1 (limit 20)".</summary>
    public string Describe() => Reason switch
    {
        LimitReason.TooManySessions => $"too many sessions from {Client} (limit {Limit})",
        LimitReason.ConnectionRateExceeded => $"connection rate limit exceeded for {Client} ({Limit} per minute)",
        LimitReason.MessageRateExceeded => $"message rate limit exceeded for {Client} ({Limit} per minute)",
        _ => $"limit exceeded for {Client}",
    };
}

/// <summary>Outcome of <see cref="ClientLimiter.TryOpenSession"/>: a lease when admitted, else the refusal.</summary>
public readonly struct Admission
{
    internal Admission(SessionLease lease) { Lease = lease; Refusal = default; }
    internal Admission(Refusal refusal) { Lease = null; Refusal = refusal; }

    /// <summary>True when admitted; then <see cref="Lease"/> is set.</summary>
    [MemberNotNullWhen(true, nameof(Lease))]
    public bool Admitted => Lease is not null;

    /// <summary>The session's slot; dispose it when the session ends. Null when refused.</summary>
    public SessionLease? Lease { get; }

    /// <summary>Why it was refused; default when admitted.</summary>
    public Refusal Refusal { get; }
}

/// <summary>One admitted session's slot in <see cref="ClientLimiter"/>. Dispose releases it exactly once (further calls do nothing).</summary>
public sealed class SessionLease : IDisposable
{
    private readonly ClientLimiter _owner;
    private readonly ClientLimiter.Entry _entry;
    private int _released;

    internal SessionLease(ClientLimiter owner, ClientLimiter.Entry entry) { _owner = owner; _entry = entry; }

    /// <summary>The counted key (address or /64).</summary>
    public ClientKey Client => _entry.Key;

    /// <summary>Releases the session slot; idempotent and thread-safe.</summary>
    public void Dispose()
    {
        if (Interlocked.Exchange(ref _released, 1) == 0) _owner.Release(_entry);
    }
}
