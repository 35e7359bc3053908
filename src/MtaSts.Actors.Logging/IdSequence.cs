namespace MtaSts.Actors.Logging;

/// <summary>Process-wide monotonically increasing ids (MID, ICID, DCID). Seeded at start-up so that ids
/// are not reused across restarts (the spool recovers the highest MID and calls <see cref="EnsureAbove"/>).</summary>
/// <remarks>Block-leasing mode (<see cref="IdSequence(Func{long}, int)"/>): ids come from blocks of
/// <c>blockSize</c> consecutive values leased from a shared source (a database sequence), so that several processes
/// hand out ids that are unique across all of them. Ids are increasing within a process and unique across the
/// cluster, not globally ordered.</remarks>
public sealed class IdSequence
{
    private long _last;

    // Block-leasing mode only (null otherwise). _blockEnd is the last id of the current block; guarded by _leaseGate.
    private readonly Func<long>? _leaseBlockStart;
    private readonly int _blockSize;
    private readonly object _leaseGate = new();
    private long _blockEnd;
    private long _floor;

    public IdSequence(long start = 0) => _last = start;

    /// <param name="leaseBlockStart">Returns the first id of a fresh block of <paramref name="blockSize"/> ids that no
    /// other caller anywhere will get (e.g. <c>nextval</c> of a sequence that increments by the block size). Called
    /// under a lock, once per block; an exception propagates to the <see cref="Next"/> that needed the block.</param>
    public IdSequence(Func<long> leaseBlockStart, int blockSize)
    {
        ArgumentNullException.ThrowIfNull(leaseBlockStart);
        ArgumentOutOfRangeException.ThrowIfLessThan(blockSize, 1);
        _leaseBlockStart = leaseBlockStart;
        _blockSize = blockSize;
    }

    /// <summary>True when ids come from leased blocks.</summary>
    public bool IsLeased => _leaseBlockStart is not null;

    public long Next()
    {
        if (_leaseBlockStart is null) return Interlocked.Increment(ref _last);
        lock (_leaseGate)
        {
            long next = Math.Max(_last, _floor) + 1;
            while (next > _blockEnd)
            {
                long start = _leaseBlockStart();
                if (start <= 0) throw new InvalidOperationException($"leased id block starts at {start}; ids start at 1");
                _blockEnd = start + _blockSize - 1;
                next = Math.Max(start, _floor + 1);
            }
            Volatile.Write(ref _last, next);
            return next;
        }
    }

    public long Current => Interlocked.Read(ref _last);

    /// <summary>The next id is above <paramref name="value"/>. In block-leasing mode ids at or below it are skipped
    /// (whole blocks may be leased and dropped), so the shared source itself should already be above it.</summary>
    public void EnsureAbove(long value)
    {
        if (_leaseBlockStart is not null)
        {
            lock (_leaseGate) _floor = Math.Max(_floor, value);
            return;
        }
        long seen;
        while ((seen = Interlocked.Read(ref _last)) < value)
            if (Interlocked.CompareExchange(ref _last, value, seen) == seen) return;
    }
}
