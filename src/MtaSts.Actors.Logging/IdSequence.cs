namespace MtaSts.Actors.Logging;

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
