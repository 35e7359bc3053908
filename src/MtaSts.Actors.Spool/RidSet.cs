namespace MtaSts.Actors.Spool;

/// <summary>A small immutable set of RIDs without a per-message object for the usual case: bit i of a mask for
/// RID i &lt; 64 (nearly every message), a sorted array only for the rest. Used where a million queued messages keep
/// nothing but their outstanding RIDs (a HashSet per message cost ~160 bytes, an int array ~32).</summary>
public readonly struct RidSet : IEquatable<RidSet>
{
    private readonly ulong _low;
    private readonly int[]? _high;

    private RidSet(ulong low, int[]? high)
    {
        _low = low;
        _high = high is { Length: > 0 } ? high : null;
    }

    public static RidSet Empty => default;

    public static RidSet Of(IEnumerable<int> rids)
    {
        ulong low = 0;
        List<int>? high = null;
        foreach (var rid in rids)
        {
            if (rid is >= 0 and < 64) low |= 1UL << rid;
            else (high ??= []).Add(rid);
        }
        return new RidSet(low, high?.Distinct().Order().ToArray());
    }

    public int Count => System.Numerics.BitOperations.PopCount(_low) + (_high?.Length ?? 0);

    public bool IsEmpty => _low == 0 && _high is null;

    public bool Contains(int rid) => rid is >= 0 and < 64 ? (_low & (1UL << rid)) != 0 : _high is not null && Array.BinarySearch(_high, rid) >= 0;

    public RidSet Union(RidSet other) =>
        other._high is null && _high is null ? new RidSet(_low | other._low, null)
            : new RidSet(_low | other._low, [.. (_high ?? []).Union(other._high ?? []).Order()]);

    public RidSet Except(IEnumerable<int> rids)
    {
        var low = _low;
        List<int>? drop = null;
        foreach (var rid in rids)
        {
            if (rid is >= 0 and < 64) low &= ~(1UL << rid);
            else (drop ??= []).Add(rid);
        }
        return new RidSet(low, drop is null ? _high : _high?.Except(drop).ToArray());
    }

    /// <summary>The RIDs, ascending.</summary>
    public int[] ToArray()
    {
        var rids = new int[Count];
        var n = 0;
        for (var i = 0; i < 64; i++)
            if ((_low & (1UL << i)) != 0) rids[n++] = i;
        _high?.CopyTo(rids, n);
        return rids;
    }

    public bool Equals(RidSet other) => _low == other._low && (_high ?? []).AsSpan().SequenceEqual(other._high ?? []);
    public override bool Equals(object? obj) => obj is RidSet r && Equals(r);
    public override int GetHashCode() => HashCode.Combine(_low, _high?.Length ?? 0);
    public static bool operator ==(RidSet a, RidSet b) => a.Equals(b);
    public static bool operator !=(RidSet a, RidSet b) => !a.Equals(b);
}
