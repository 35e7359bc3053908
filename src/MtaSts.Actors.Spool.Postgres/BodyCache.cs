namespace MtaSts.Actors.Spool.Postgres;

/// <summary>
/// Bodies this node appended, kept in memory (bounded) so that delivering them here — the accepting node is the
/// domain's owner on a single node, and for the domains it owns in a cluster — does not read them back from
/// PostgreSQL: one round trip and a copy per message saved on the delivery path. A body is immutable once its MID is
/// committed, so a cached copy can never be stale; the database stays the only durable copy. Oldest entries go first
/// when the byte budget is spent; a finished message leaves at once.
/// </summary>
internal sealed class BodyCache(long capacityBytes)
{
    private readonly object _gate = new();
    private readonly Dictionary<long, byte[]> _bodies = new();
    // Insertion order for eviction. A MID removed early stays here until it reaches the front; the count bound keeps
    // this from growing without limit when everything finishes before the byte budget is reached.
    private readonly Queue<long> _order = new();
    private long _bytes;
    private long _hits, _misses;

    /// <summary>Largest body worth caching: a quarter of the budget at most, so that one message cannot flush the rest.</summary>
    public long MaxEntryBytes => capacityBytes / 4;

    public long Bytes { get { lock (_gate) return _bytes; } }
    public int Count { get { lock (_gate) return _bodies.Count; } }
    public long Hits => Interlocked.Read(ref _hits);
    public long Misses => Interlocked.Read(ref _misses);

    public void Add(long mid, byte[] body)
    {
        if (capacityBytes <= 0 || body.Length > MaxEntryBytes) return;
        lock (_gate)
        {
            if (!_bodies.TryAdd(mid, body)) return;
            _bytes += body.Length;
            _order.Enqueue(mid);
            // Entries are ≥ 0 bytes: bound the order queue by count too (an average of 256 B per budgeted entry).
            long maxEntries = Math.Max(16, capacityBytes / 256);
            while ((_bytes > capacityBytes || _order.Count > maxEntries) && _order.TryDequeue(out var oldest))
                if (_bodies.Remove(oldest, out var gone)) _bytes -= gone.Length;
        }
    }

    public bool TryGet(long mid, out byte[] body)
    {
        bool found;
        lock (_gate) found = _bodies.TryGetValue(mid, out body!);
        Interlocked.Increment(ref found ? ref _hits : ref _misses);
        return found;
    }

    public void Remove(long mid)
    {
        lock (_gate)
            if (_bodies.Remove(mid, out var gone)) _bytes -= gone.Length;
    }
}
