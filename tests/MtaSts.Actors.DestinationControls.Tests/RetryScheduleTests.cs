using MtaSts.Actors.DestinationControls;

namespace MtaSts.Actors.DestinationControls.Tests;

public sealed class RetryScheduleTests
{
    private static readonly DateTimeOffset T0 = new(2026, 1, 1, 0, 0, 0, TimeSpan.Zero);
    private static DateTimeOffset At(double seconds) => T0.AddSeconds(seconds);
    private static RetrySchedule Exact(BounceProfile p) => new(p with { RetryJitter = 0 });

    [Fact]
    public void Vendor_example_1_max_retries_2_max_wait_60()
    {
        // Research §1.4: first attempt t=0, retries at t≈60 and t≈120, hard bounce right after the second retry.
        var s = Exact(new BounceProfile { MaxRetries = 2, InitialRetryInterval = TimeSpan.FromSeconds(60), MaxRetryInterval = TimeSpan.FromSeconds(60) });
        var accepted = At(0);
        Assert.Null(s.CheckDue(accepted, At(0)));
        var d1 = s.OnTransientFailure(1, At(0));
        Assert.Equal(RetryDecision.RetryAt(At(60)), d1);
        Assert.Null(s.CheckDue(accepted, d1.NextAttemptAt));
        var d2 = s.OnTransientFailure(2, At(60));
        Assert.Equal(RetryDecision.RetryAt(At(120)), d2);
        Assert.Null(s.CheckDue(accepted, d2.NextAttemptAt));
        var d3 = s.OnTransientFailure(3, At(120));
        Assert.True(d3.GiveUp);
        Assert.Equal(GiveUpReason.RetriesExhausted, d3.Reason);
    }

    [Fact]
    public void Vendor_example_2_max_time_in_queue_100s()
    {
        // Research §1.4: retry at t=60, then a hard bounce immediately before the attempt due at t=120.
        var s = Exact(new BounceProfile { MaxTimeInQueue = TimeSpan.FromSeconds(100) });
        var accepted = At(0);
        var d1 = s.OnTransientFailure(1, At(0));
        Assert.Equal(At(60), d1.NextAttemptAt);
        Assert.Null(s.CheckDue(accepted, At(60)));            // the retry at 60 happens
        var d2 = s.OnTransientFailure(2, At(60));
        Assert.False(d2.GiveUp);                               // expiry is not decided when scheduling...
        Assert.Equal(At(180), d2.NextAttemptAt);               // (60 s doubled to 120 s)
        Assert.Equal(GiveUpReason.MaxTimeInQueueExceeded, s.CheckDue(accepted, d2.NextAttemptAt)); // ...but when due

        // With the vendor's non-growing wait the next attempt is due at 120, and that is where it bounces.
        var flat = Exact(new BounceProfile { MaxTimeInQueue = TimeSpan.FromSeconds(100), MaxRetryInterval = TimeSpan.FromSeconds(60) });
        var next = flat.OnTransientFailure(2, At(60));
        Assert.Equal(At(120), next.NextAttemptAt);
        Assert.Equal(GiveUpReason.MaxTimeInQueueExceeded, flat.CheckDue(accepted, next.NextAttemptAt));
    }

    [Fact]
    public void Intervals_double_from_initial_to_max()
    {
        var s = Exact(BounceProfile.Default);
        var expected = new[] { 60, 120, 240, 480, 960, 1920, 3600, 3600, 3600 };
        for (var n = 1; n <= expected.Length; n++)
            Assert.Equal(TimeSpan.FromSeconds(expected[n - 1]), s.Interval(n));
    }

    [Theory]
    [InlineData(62)]
    [InlineData(63)]
    [InlineData(100)]
    [InlineData(int.MaxValue)]
    public void Huge_attempt_numbers_do_not_overflow(int n) =>
        Assert.Equal(TimeSpan.FromHours(1), Exact(BounceProfile.Default).BaseInterval(n));

    [Fact]
    public void Max_below_initial_means_initial()
    {
        var s = Exact(new BounceProfile { InitialRetryInterval = TimeSpan.FromMinutes(10), MaxRetryInterval = TimeSpan.FromMinutes(1) });
        Assert.Equal(TimeSpan.FromMinutes(10), s.Interval(1));
        Assert.Equal(TimeSpan.FromMinutes(10), s.Interval(5));
    }

    [Fact]
    public void Default_profile_gives_100_retries_then_bounce()
    {
        var s = Exact(BounceProfile.Default);
        // Attempt 1 is the first delivery; attempts 2..101 are the 100 retries.
        Assert.False(s.OnTransientFailure(100, T0).GiveUp); // retry 99 failed → retry 100 is scheduled
        Assert.True(s.OnTransientFailure(101, T0).GiveUp);  // retry 100 failed → bounce
    }

    [Fact]
    public void Zero_retries_bounce_on_the_first_soft_failure()
    {
        var d = Exact(new BounceProfile { MaxRetries = 0 }).OnTransientFailure(1, T0);
        Assert.Equal(RetryDecision.Bounce(GiveUpReason.RetriesExhausted), d);
    }

    [Fact]
    public void Expiry_is_strictly_greater_than_max_time_in_queue()
    {
        var s = Exact(new BounceProfile { MaxTimeInQueue = TimeSpan.FromSeconds(100) });
        Assert.False(s.IsExpired(T0, At(100)));
        Assert.True(s.IsExpired(T0, At(100).AddTicks(1)));
        Assert.Equal(At(100).AddTicks(1), s.ExpiresAt(T0));
        Assert.True(s.IsExpired(T0, s.ExpiresAt(T0)));
    }

    [Fact]
    public void Jitter_stays_within_bounds_and_below_the_max()
    {
        var s = new RetrySchedule(BounceProfile.Default with { RetryJitter = 0.2 }, new Random(42));
        var seen = new HashSet<long>();
        for (var i = 0; i < 2000; i++)
        {
            var first = s.Interval(1);
            Assert.InRange(first, TimeSpan.FromSeconds(48), TimeSpan.FromSeconds(72));
            seen.Add(first.Ticks);
            var capped = s.Interval(20);
            Assert.InRange(capped, TimeSpan.FromSeconds(2880), TimeSpan.FromSeconds(3600));
        }
        Assert.True(seen.Count > 1000, "jitter should spread the intervals");
    }

    [Fact]
    public void Jitter_is_reproducible_with_a_seed()
    {
        var a = new RetrySchedule(BounceProfile.Default, new Random(7));
        var b = new RetrySchedule(BounceProfile.Default, new Random(7));
        for (var n = 1; n < 10; n++) Assert.Equal(a.OnTransientFailure(n, T0), b.OnTransientFailure(n, T0));
    }

    [Fact]
    public void Jitter_never_goes_below_one_second()
    {
        var s = new RetrySchedule(new BounceProfile { InitialRetryInterval = TimeSpan.FromSeconds(1), RetryJitter = 0.5 }, new Random(1));
        for (var i = 0; i < 500; i++) Assert.True(s.Interval(1) >= TimeSpan.FromSeconds(1));
    }

    [Fact]
    public void Retry_is_scheduled_from_the_failure_time()
    {
        var s = Exact(BounceProfile.Default);
        Assert.Equal(At(1000 + 240), s.OnTransientFailure(3, At(1000)).NextAttemptAt);
    }

    [Fact]
    public void Invalid_arguments()
    {
        var s = Exact(BounceProfile.Default);
        Assert.Throws<ArgumentOutOfRangeException>(() => s.OnTransientFailure(0, T0));
        Assert.Throws<ArgumentOutOfRangeException>(() => s.BaseInterval(0));
        Assert.Throws<ArgumentException>(() => new RetrySchedule(new BounceProfile { InitialRetryInterval = TimeSpan.Zero }));
    }

    [Fact]
    public void Delay_warnings()
    {
        var off = Exact(BounceProfile.Default);
        Assert.False(off.IsDelayWarningDue(T0, At(1_000_000), 0));

        var s = Exact(new BounceProfile { DelayWarning = new DelayWarning(TimeSpan.FromHours(4), MaxCount: 2) });
        Assert.False(s.IsDelayWarningDue(T0, T0.AddHours(4).AddTicks(-1), 0));
        Assert.True(s.IsDelayWarningDue(T0, T0.AddHours(4), 0));
        Assert.False(s.IsDelayWarningDue(T0, T0.AddHours(7), 1));
        Assert.True(s.IsDelayWarningDue(T0, T0.AddHours(8), 1));
        Assert.False(s.IsDelayWarningDue(T0, T0.AddHours(100), 2));
    }
}

public sealed class DelayWarningTests
{
    [Theory]
    [InlineData(0, 0)]
    [InlineData(59, 0)]
    [InlineData(60, 1)]
    [InlineData(179, 2)]
    [InlineData(600, 3)] // capped at max-count
    [InlineData(-5, 0)]  // clock went backwards
    public void Warnings_due_after_each_interval_up_to_max_count(int minutesInQueue, int expected) =>
        Assert.Equal(expected, new DelayWarning(TimeSpan.FromHours(1), MaxCount: 3).DueCount(TimeSpan.FromMinutes(minutesInQueue)));
}
