namespace MtaSts.Actors.DestinationControls;

/// <summary>One bucket of recipient counts: recipients sent during [Start, Start + bucket width).</summary>
public sealed record RateBucket(DateTimeOffset Start, long Count);

/// <summary>Serializable state of a <see cref="RecipientRateLimiter"/> (persist it in a snapshot so that a restart
/// does not reset the budget). Only non-empty buckets still inside the window are kept: at most 61 entries.</summary>
public sealed record RecipientRateState(TimeSpan BucketWidth, IReadOnlyList<RateBucket> Buckets)
{
    public static RecipientRateState Empty { get; } = new(TimeSpan.Zero, []);
}

/// <summary>Answer of <see cref="RecipientRateLimiter.Query"/>: how many recipients may go now, and, when none may,
/// the earliest time at which at least one may (<c>null</c> when never: a limit of 0 recipients).</summary>
public readonly record struct RateAnswer(long Available, DateTimeOffset? NextSlotAt);

/// <summary>
/// "At most N recipients per M minutes" (vendor recipient limit, research §1.1). A sliding window kept as 60 buckets of
/// M/60 each (M seconds), plus the current one. A bucket leaves the window only when all of it is older than M
/// minutes, so no window of M minutes ever holds more than N recipients — conservative by at most one bucket width.
/// State is O(61) whatever N is. Mutable; owned by one actor. Times are compared in UTC ticks; a clock that goes
/// backwards is treated as standing still.
/// </summary>
public sealed class RecipientRateLimiter
{
    public const int BucketsPerWindow = 60;
    private const int Ring = BucketsPerWindow + 1;

    private readonly long[] _counts = new long[Ring];
    private readonly long _width;      // ticks per bucket
    private long _newest = long.MinValue; // absolute bucket number of the newest bucket touched
    private long _sum;

    public RecipientLimit Limit { get; }

    public RecipientRateLimiter(RecipientLimit limit, RecipientRateState? state = null)
    {
        ArgumentNullException.ThrowIfNull(limit);
        if (limit.Recipients < 0 || limit.Minutes < RecipientLimit.MinMinutes) throw new ArgumentOutOfRangeException(nameof(limit));
        Limit = limit;
        _width = limit.Window.Ticks / BucketsPerWindow;
        if (state is not null) Restore(state);
    }

    /// <summary>Recipients counted in the current window (as of the last call).</summary>
    public long InWindow => _sum;

    public long Available(DateTimeOffset now)
    {
        Advance(now);
        return Math.Max(0, Limit.Recipients - _sum);
    }

    public RateAnswer Query(DateTimeOffset now)
    {
        var available = Available(now);
        if (available > 0) return new RateAnswer(available, now);
        if (Limit.Recipients == 0) return new RateAnswer(0, null);
        // Walk buckets from the oldest; the slot opens when enough of them have expired.
        var excess = _sum - Limit.Recipients; // ≥ 0; need excess + 1 to expire
        for (var b = _newest - BucketsPerWindow; b <= _newest; b++)
        {
            var c = _counts[Index(b)];
            if (c == 0) continue;
            excess -= c;
            if (excess < 0) return new RateAnswer(0, new DateTimeOffset((b + Ring) * _width, TimeSpan.Zero));
        }
        return new RateAnswer(0, null); // unreachable: the sum is made of the buckets
    }

    /// <summary>Takes up to <paramref name="wanted"/> recipients from the budget at <paramref name="now"/> and returns
    /// how many were granted (0..wanted).</summary>
    public long Take(long wanted, DateTimeOffset now)
    {
        var granted = Math.Min(Math.Max(0, wanted), Available(now));
        if (granted > 0) Add(granted);
        return granted;
    }

    /// <summary>Counts recipients that were sent regardless of the budget (e.g. recovered in-flight work).</summary>
    public void Record(long count, DateTimeOffset now)
    {
        ArgumentOutOfRangeException.ThrowIfNegative(count);
        Advance(now);
        Add(count);
    }

    public RecipientRateState Snapshot()
    {
        var buckets = new List<RateBucket>();
        if (_newest != long.MinValue)
            for (var b = _newest - BucketsPerWindow; b <= _newest; b++)
                if (_counts[Index(b)] is var c and > 0)
                    buckets.Add(new RateBucket(new DateTimeOffset(b * _width, TimeSpan.Zero), c));
        return new RecipientRateState(TimeSpan.FromTicks(_width), buckets);
    }

    private void Restore(RecipientRateState state)
    {
        var oldWidth = state.BucketWidth > TimeSpan.Zero ? state.BucketWidth.Ticks : _width;
        foreach (var bucket in state.Buckets.OrderBy(b => b.Start))
        {
            if (bucket.Count <= 0) continue;
            // A reload may have changed the window: file each old bucket under the new bucket holding its LAST instant,
            // so that its recipients are remembered at least as long as they would have been (conservative).
            var last = bucket.Start.UtcTicks + oldWidth - 1;
            Advance(new DateTimeOffset(Math.Max(last, 0), TimeSpan.Zero));
            if (BucketOf(last) < _newest - BucketsPerWindow) continue; // already outside the window
            _counts[Index(BucketOf(last))] += bucket.Count;
            _sum += bucket.Count;
        }
    }

    private void Add(long count)
    {
        _counts[Index(_newest)] += count;
        _sum += count;
    }

    private long BucketOf(long utcTicks) => utcTicks / _width;

    private int Index(long bucket) => (int)(((bucket % Ring) + Ring) % Ring);

    private void Advance(DateTimeOffset now)
    {
        var current = BucketOf(now.UtcTicks);
        if (_newest == long.MinValue)
        {
            _newest = current;
            return;
        }
        if (current <= _newest) return;
        var steps = Math.Min(current - _newest, Ring);
        for (var i = 1; i <= steps; i++)
        {
            ref var slot = ref _counts[Index(_newest + i)];
            _sum -= slot;
            slot = 0;
        }
        _newest = current;
    }
}
