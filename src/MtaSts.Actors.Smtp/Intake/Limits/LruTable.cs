namespace MtaSts.Actors.Smtp.Intake.Limits;

/// <summary>An entry of <see cref="LruTable{TKey, TEntry}"/>: its key and its links in the recency list.</summary>
internal abstract class LruEntry<TKey, TSelf>(TKey key) where TKey : notnull where TSelf : LruEntry<TKey, TSelf>
{
    internal readonly TKey Key = key;
    internal TSelf? Older, Newer;
    internal bool Linked;
}

/// <summary>
/// A dictionary with a recency list, bounded by a capacity, for the limiter tables. Not thread-safe: the owner holds
/// its lock around every call. Entries in the list are evictable, oldest first; an entry the owner
/// <see cref="Pin"/>s (a client with live sessions) leaves the list and is never evicted, so the table may exceed its
/// capacity by the number of pinned entries. Every operation is O(1); expired entries are swept opportunistically
/// (a few per insertion), so there is no timer and an idle table does not shrink until it is used again.
/// </summary>
internal sealed class LruTable<TKey, TEntry> where TKey : notnull where TEntry : LruEntry<TKey, TEntry>
{
    private const int SweepPerInsert = 2;

    private readonly Dictionary<TKey, TEntry> _map = new();
    private readonly Func<TEntry, long, bool> _expired;
    private TEntry? _oldest, _newest;

    /// <param name="expired">(entry, now) → true when dropping the entry loses nothing (its state has run out).</param>
    public LruTable(int capacity, Func<TEntry, long, bool> expired)
    {
        ArgumentOutOfRangeException.ThrowIfLessThan(capacity, 1);
        Capacity = capacity;
        _expired = expired;
    }

    public int Capacity { get; }

    public int Count => _map.Count;

    /// <summary>Entries dropped while still holding state because the table was full.</summary>
    public long ForcedEvictions { get; private set; }

    public bool TryGet(TKey key, out TEntry entry) => _map.TryGetValue(key, out entry!);

    /// <summary>The entry for <paramref name="key"/>, made the newest; a new one from <paramref name="create"/> if absent,
    /// after sweeping expired entries and, when full, evicting the oldest unpinned ones.</summary>
    public TEntry GetOrAdd(TKey key, long now, Func<TKey, long, TEntry> create)
    {
        if (_map.TryGetValue(key, out var e))
        {
            Touch(e);
            return e;
        }
        for (var i = 0; i < SweepPerInsert && _oldest is { } o && _expired(o, now); i++) Remove(o);
        while (_map.Count >= Capacity && _oldest is { } victim)
        {
            if (!_expired(victim, now)) ForcedEvictions++;
            Remove(victim);
        }
        e = create(key, now);
        _map.Add(key, e);
        Link(e);
        return e;
    }

    /// <summary>Marks the entry most recently used (no-op while pinned).</summary>
    public void Touch(TEntry e)
    {
        if (!e.Linked || ReferenceEquals(e, _newest)) return;
        Unlink(e);
        Link(e);
    }

    /// <summary>Takes the entry out of the eviction order; it stays in the table until <see cref="Unpin"/>.</summary>
    public void Pin(TEntry e)
    {
        if (e.Linked) Unlink(e);
    }

    /// <summary>Puts a pinned entry back into the eviction order as the newest.</summary>
    public void Unpin(TEntry e)
    {
        if (!e.Linked) Link(e);
    }

    public void Remove(TEntry e)
    {
        if (e.Linked) Unlink(e);
        _map.Remove(e.Key);
    }

    private void Link(TEntry e)
    {
        e.Older = _newest;
        e.Newer = null;
        if (_newest is null) _oldest = e; else _newest.Newer = e;
        _newest = e;
        e.Linked = true;
    }

    private void Unlink(TEntry e)
    {
        if (e.Older is null) _oldest = e.Newer; else e.Older.Newer = e.Newer;
        if (e.Newer is null) _newest = e.Older; else e.Newer.Older = e.Older;
        e.Older = e.Newer = null;
        e.Linked = false;
    }
}
