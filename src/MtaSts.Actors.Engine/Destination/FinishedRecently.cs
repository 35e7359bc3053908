namespace MtaSts.Actors.Engine.Destination;

/// <summary>
/// Cluster mode: the recipients this owner brought to a final outcome in the last <c>window</c> (at most
/// <c>capacity</c> of them). The accepting node's enqueue can reach the owner after the owner already loaded that
/// recipient from the cluster spool and delivered it — it waits in the accepting node's sharding region while the
/// shard moves (a lost node's domains) — and enqueued again it would be delivered twice (the SIGSTOP chaos scenario
/// delivered 8 messages twice from one owner, seconds apart). A (MID, RID) is cluster-unique and never legitimately
/// enqueued after its final outcome. Pure bookkeeping, no I/O.
/// </summary>
public sealed class FinishedRecently(TimeSpan window, int capacity)
{
    private readonly Queue<((long Mid, int Rid) Key, DateTimeOffset At)> _order = new();
    private readonly HashSet<(long Mid, int Rid)> _keys = new();

    public int Count => _keys.Count;

    public void Finished(long mid, IEnumerable<int> rids, DateTimeOffset now)
    {
        Expire(now);
        foreach (var rid in rids)
            if (_keys.Add((mid, rid))) _order.Enqueue(((mid, rid), now));
        while (_order.Count > capacity) _keys.Remove(_order.Dequeue().Key);
    }

    public bool Contains(long mid, int rid, DateTimeOffset now)
    {
        Expire(now);
        return _keys.Contains((mid, rid));
    }

    private void Expire(DateTimeOffset now)
    {
        while (_order.Count > 0 && now - _order.Peek().At > window) _keys.Remove(_order.Dequeue().Key);
    }
}
