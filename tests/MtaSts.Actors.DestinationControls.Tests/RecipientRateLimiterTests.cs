using MtaSts.Actors.DestinationControls;

namespace MtaSts.Actors.DestinationControls.Tests;

public sealed class RecipientRateLimiterTests
{
    // A minute boundary, so that bucket arithmetic is easy to follow (1-minute window = 60 buckets of 1 s).
    private static readonly DateTimeOffset T0 = new(2026, 1, 1, 12, 0, 0, TimeSpan.Zero);

    [Fact]
    public void Grants_up_to_n_in_the_window()
    {
        var l = new RecipientRateLimiter(new RecipientLimit(10, 1));
        Assert.Equal(10, l.Available(T0));
        Assert.Equal(4, l.Take(4, T0));
        Assert.Equal(6, l.Take(100, T0.AddSeconds(10)));
        Assert.Equal(0, l.Take(1, T0.AddSeconds(20)));
        Assert.Equal(10, l.InWindow);
    }

    [Fact]
    public void Next_slot_is_when_the_oldest_bucket_has_fully_left_the_window()
    {
        var l = new RecipientRateLimiter(new RecipientLimit(10, 1));
        l.Take(4, T0.AddMilliseconds(500));  // bucket [0 s, 1 s)
        l.Take(6, T0.AddSeconds(10));        // bucket [10 s, 11 s)
        var a = l.Query(T0.AddSeconds(30));
        Assert.Equal(0, a.Available);
        // The 4 recipients sent in [0,1) are forgotten once all of that second is more than 60 s ago: at 61 s.
        Assert.Equal(T0.AddSeconds(61), a.NextSlotAt);
        Assert.Equal(0, l.Available(T0.AddSeconds(61).AddTicks(-1)));
        Assert.Equal(4, l.Available(T0.AddSeconds(61)));
        Assert.Equal(4, l.Available(T0.AddSeconds(70)));
        Assert.Equal(10, l.Available(T0.AddSeconds(71)));
    }

    [Fact]
    public void Never_more_than_n_in_any_sliding_window()
    {
        // Greedy sender asking every 137 ms for 3 recipients, for 10 minutes; check every 60 s window.
        var limit = new RecipientLimit(50, 1);
        var l = new RecipientRateLimiter(limit);
        var sends = new List<(DateTimeOffset At, long N)>();
        for (var t = T0; t < T0.AddMinutes(10); t = t.AddMilliseconds(137))
        {
            var n = l.Take(3, t);
            if (n > 0) sends.Add((t, n));
        }
        for (var i = 0; i < sends.Count; i++)
        {
            var inWindow = sends.Where(s => s.At >= sends[i].At && s.At < sends[i].At + limit.Window).Sum(s => s.N);
            Assert.True(inWindow <= 50, $"{inWindow} recipients in the window starting {sends[i].At:O}");
        }
        // ...and the budget is actually used: about 50 per minute over 10 minutes (conservative by ≤ 1 bucket).
        Assert.InRange(sends.Sum(s => s.N), 450, 500);
    }

    [Fact]
    public void Zero_limit_never_opens()
    {
        var l = new RecipientRateLimiter(new RecipientLimit(0, 5));
        Assert.Equal(new RateAnswer(0, null), l.Query(T0));
        Assert.Equal(0, l.Take(1, T0.AddHours(5)));
    }

    [Fact]
    public void Query_with_budget_left_answers_now()
    {
        var l = new RecipientRateLimiter(new RecipientLimit(3, 60));
        Assert.Equal(new RateAnswer(3, T0), l.Query(T0));
    }

    [Fact]
    public void Sixty_minute_window_uses_one_minute_buckets()
    {
        var l = new RecipientRateLimiter(new RecipientLimit(100, 60));
        l.Take(100, T0.AddSeconds(30));
        var a = l.Query(T0.AddMinutes(30));
        Assert.Equal(T0.AddMinutes(61), a.NextSlotAt);
        Assert.Equal(TimeSpan.FromMinutes(1), l.Snapshot().BucketWidth);
    }

    [Fact]
    public void Snapshot_and_restore_keep_the_budget()
    {
        var limit = new RecipientLimit(10, 1);
        var l = new RecipientRateLimiter(limit);
        l.Take(3, T0);
        l.Take(5, T0.AddSeconds(20.5));
        var state = l.Snapshot();
        Assert.Equal(TimeSpan.FromSeconds(1), state.BucketWidth);
        Assert.Equal([new RateBucket(T0, 3), new RateBucket(T0.AddSeconds(20), 5)], state.Buckets);

        var restored = new RecipientRateLimiter(limit, state);
        Assert.Equal(2, restored.Available(T0.AddSeconds(30)));
        Assert.Equal(l.Query(T0.AddSeconds(30)), restored.Query(T0.AddSeconds(30)));
        Assert.Equal(5, restored.Available(T0.AddSeconds(61)));
        Assert.Equal(10, restored.Available(T0.AddSeconds(81)));
    }

    [Fact]
    public void Snapshot_drops_buckets_outside_the_window()
    {
        var l = new RecipientRateLimiter(new RecipientLimit(10, 1));
        l.Take(3, T0);
        l.Take(1, T0.AddSeconds(90));
        Assert.Equal([new RateBucket(T0.AddSeconds(90), 1)], l.Snapshot().Buckets);
    }

    [Fact]
    public void Restore_after_a_window_change_is_conservative()
    {
        // Saved with a 60-minute window (1-minute buckets), restored with a 1-minute window (1-second buckets):
        // the recipients of bucket [12:00, 12:01) are filed at 12:00:59 and so are remembered until 12:02:00.
        var old = new RecipientRateLimiter(new RecipientLimit(100, 60));
        old.Take(7, T0.AddSeconds(5));
        var restored = new RecipientRateLimiter(new RecipientLimit(10, 1), old.Snapshot());
        Assert.Equal(3, restored.Available(T0.AddSeconds(61)));
        Assert.Equal(3, restored.Available(T0.AddSeconds(119)));
        Assert.Equal(10, restored.Available(T0.AddSeconds(120)));
    }

    [Fact]
    public void Restoring_an_empty_state_is_a_fresh_limiter()
    {
        var l = new RecipientRateLimiter(new RecipientLimit(5, 1), RecipientRateState.Empty);
        Assert.Equal(5, l.Available(T0));
        Assert.Empty(new RecipientRateLimiter(new RecipientLimit(5, 1)).Snapshot().Buckets);
    }

    [Fact]
    public void Lowered_limit_on_restore_waits_until_enough_expires()
    {
        var l = new RecipientRateLimiter(new RecipientLimit(10, 1));
        l.Take(6, T0);
        l.Take(4, T0.AddSeconds(10));
        var lower = new RecipientRateLimiter(new RecipientLimit(3, 1), l.Snapshot());
        // 10 in window, limit 3: the 6 at 0 s expire at 61 s → 4 left, still ≥ 3; the 4 expire at 71 s.
        Assert.Equal(new RateAnswer(0, T0.AddSeconds(71)), lower.Query(T0.AddSeconds(20)));
    }

    [Fact]
    public void Clock_going_backwards_does_not_refund()
    {
        var l = new RecipientRateLimiter(new RecipientLimit(5, 1));
        l.Take(5, T0.AddSeconds(30));
        Assert.Equal(0, l.Available(T0));
        Assert.Equal(0, l.Available(T0.AddSeconds(60)));
    }

    [Fact]
    public void Record_counts_beyond_the_budget()
    {
        var l = new RecipientRateLimiter(new RecipientLimit(5, 1));
        l.Record(8, T0);
        Assert.Equal(0, l.Available(T0));
        Assert.Equal(8, l.InWindow);
        Assert.Throws<ArgumentOutOfRangeException>(() => l.Record(-1, T0));
    }

    [Fact]
    public void Negative_wants_take_nothing()
    {
        var l = new RecipientRateLimiter(new RecipientLimit(5, 1));
        Assert.Equal(0, l.Take(-4, T0));
        Assert.Equal(5, l.Available(T0));
    }
}
