namespace MtaSts.Actors.Engine.Destination;

/// <summary>When a destination snapshots. A snapshot carries every retry record: taking one only after at least as
/// many events as it holds records keeps its cost O(1) per event however deep the deferred queue is.</summary>
public sealed class SnapshotCadence
{
    private int _eventsSinceSnapshot;

    /// <summary>Counts journaled events; true when a snapshot is due now (the count then starts again).</summary>
    public bool Count(int events, int every, int retryRecords)
    {
        if ((_eventsSinceSnapshot += events) < Math.Max(every, retryRecords)) return false;
        _eventsSinceSnapshot = 0;
        return true;
    }
}
