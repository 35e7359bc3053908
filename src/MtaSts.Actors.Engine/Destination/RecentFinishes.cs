using MtaSts.Actors.Spool;

namespace MtaSts.Actors.Engine.Destination;

/// <summary>Recipients this owner finished whose done record a read of the cluster spool may not have seen yet.
/// A queue load is a snapshot taken off the actor: if it was read before a done record committed, it still lists
/// that recipient as outstanding, and enqueuing it again would deliver it twice. Pure bookkeeping, no I/O.</summary>
public sealed class RecentFinishes
{
    private const long WritePending = long.MaxValue;

    // Value: the last load generation issued when the done record was written (loads up to it may have read
    // before the write), or WritePending while the write is still under way.
    private readonly Dictionary<(long Mid, int Rid), long> _finished = new();
    private readonly SortedSet<long> _pendingLoads = new();
    private long _issued;

    public int Count => _finished.Count;

    /// <summary>A load of the outstanding queue is being issued; returns its generation.</summary>
    public long LoadIssued()
    {
        _pendingLoads.Add(++_issued);
        return _issued;
    }

    /// <summary>The recipients reached a final outcome; their done record is being written.</summary>
    public void Finishing(long mid, IEnumerable<int> rids)
    {
        foreach (var rid in rids) _finished[(mid, rid)] = WritePending;
    }

    /// <summary>The done record was written (or failed: then the spool still lists the recipients, and a later
    /// load, once no earlier one is pending, picks them up again — a duplicate rather than a loss).</summary>
    public void Written(long mid, IEnumerable<int> rids)
    {
        foreach (var rid in rids)
        {
            if (!_finished.ContainsKey((mid, rid))) continue;
            if (_pendingLoads.Count == 0) _finished.Remove((mid, rid));
            else _finished[(mid, rid)] = _issued;
        }
    }

    /// <summary>True when load <paramref name="generation"/> may list this recipient only because it read the
    /// spool before its done record committed.</summary>
    public bool Stale(long generation, long mid, int rid) =>
        _finished.TryGetValue((mid, rid), out var writtenAt) && generation <= writtenAt;

    /// <summary>The recipients of load <paramref name="generation"/> that are really outstanding: one it read before
    /// its done record committed is finished, not queued.</summary>
    public IReadOnlyList<(SpooledMessage Message, List<int> Rids)> Outstanding(long generation, IReadOnlyList<RecoveredMessage> messages) =>
        messages.Select(r => (r.Message, Rids: r.OutstandingRids.Where(rid => !Stale(generation, r.Message.Mid, rid)).ToList()))
            .Where(r => r.Rids.Count > 0).ToList();

    /// <summary>Load <paramref name="generation"/> was applied (or failed): forget what no pending load can see.</summary>
    public void LoadCompleted(long generation)
    {
        _pendingLoads.Remove(generation);
        var oldest = _pendingLoads.Count == 0 ? long.MaxValue : _pendingLoads.Min;
        List<(long, int)>? done = null;
        foreach (var (key, writtenAt) in _finished)
            if (writtenAt != WritePending && writtenAt < oldest) (done ??= []).Add(key);
        if (done is not null) foreach (var key in done) _finished.Remove(key);
    }
}
