using System.Net;
using MtaSts.Actors.Smtp.Intake.Limits;

namespace MtaSts.Actors.Smtp.Tests.Intake.Limits;

public sealed class AuthThrottleTests
{
    private static readonly IPAddress A = IPAddress.Parse("192.0.2.1");
    private static readonly IPAddress B = IPAddress.Parse("192.0.2.2");
    private static readonly AuthThrottleOptions Options = new(); // 0.5 s .. 8 s, 10 per address, 10 per user, 15 min, 15 min

    private static IPAddress V4(int i) => new([10, (byte)(i >> 16), (byte)(i >> 8), (byte)i]);

    private static double[] Seconds(IEnumerable<AuthFailure> f) => f.Select(x => x.Delay.TotalSeconds).ToArray();

    [Fact]
    public void Defaults()
    {
        var o = new AuthThrottleOptions();
        Assert.Equal(TimeSpan.FromMilliseconds(500), o.BaseDelay);
        Assert.Equal(TimeSpan.FromSeconds(8), o.MaxDelay);
        Assert.Equal(10, o.MaxFailuresPerAddress);
        Assert.Equal(10, o.MaxFailuresPerUser);
        Assert.Equal(TimeSpan.FromMinutes(15), o.FailureWindow);
        Assert.Equal(TimeSpan.FromMinutes(15), o.LockoutDuration);
        o.Validate();
    }

    [Theory]
    [InlineData("auth-base-delay")]
    [InlineData("auth-max-delay")]
    [InlineData("auth-max-failures-per-address")]
    [InlineData("auth-max-failures-per-user")]
    [InlineData("auth-failure-window")]
    [InlineData("auth-lockout-duration")]
    public void Validate_names_the_setting(string setting)
    {
        var bad = setting switch
        {
            "auth-base-delay" => Options with { BaseDelay = TimeSpan.FromSeconds(-1) },
            "auth-max-delay" => Options with { MaxDelay = TimeSpan.FromMilliseconds(100) },
            "auth-max-failures-per-address" => Options with { MaxFailuresPerAddress = -1 },
            "auth-max-failures-per-user" => Options with { MaxFailuresPerUser = -1 },
            "auth-failure-window" => Options with { FailureWindow = TimeSpan.Zero },
            _ => Options with { LockoutDuration = TimeSpan.Zero },
        };
        var ex = Assert.Throws<ArgumentException>(bad.Validate);
        Assert.StartsWith(setting + " must be", ex.Message);
        Assert.Throws<ArgumentException>(() => new AuthThrottle(bad));
    }

    [Fact]
    public void Delay_doubles_per_failure_of_the_address_up_to_the_ceiling()
    {
        var t = new AuthThrottle(Options with { MaxFailuresPerAddress = 0, MaxFailuresPerUser = 0 }, new TestClock());
        var delays = Seconds(Enumerable.Range(0, 8).Select(i => t.RecordFailure(A, "user" + i)));
        Assert.Equal([0.5, 1, 2, 4, 8, 8, 8, 8], delays);
        Assert.Equal(0.5, t.RecordFailure(B, "user0").Delay.TotalSeconds); // per address, not per user
    }

    [Fact]
    public void Many_failures_do_not_overflow_the_delay()
    {
        var t = new AuthThrottle(Options with { MaxFailuresPerAddress = 0, MaxFailuresPerUser = 0, MaxDelay = TimeSpan.FromMinutes(5) }, new TestClock());
        AuthFailure last = default;
        for (var i = 0; i < 200; i++) last = t.RecordFailure(A, "u");
        Assert.Equal(TimeSpan.FromMinutes(5), last.Delay);
    }

    [Fact]
    public void An_address_is_locked_out_after_n_failures_whatever_the_user_names()
    {
        var clock = new TestClock();
        var t = new AuthThrottle(Options, clock);
        for (var i = 1; i < 10; i++)
        {
            Assert.True(t.Check(A, "user" + i).Allowed);
            Assert.False(t.RecordFailure(A, "user" + i).TriggeredLockout);
        }
        var tenth = t.RecordFailure(A, "user10");
        Assert.True(tenth.TriggeredLockout);
        Assert.Equal(AuthLockScope.Address, tenth.LockoutStarted);
        Assert.Equal(clock.GetUtcNow() + TimeSpan.FromMinutes(15), tenth.LockedUntil);
        Assert.Equal(TimeSpan.FromSeconds(8), tenth.Delay);

        var check = t.Check(A, "someone-else");
        Assert.False(check.Allowed);
        Assert.Equal(AuthLockScope.Address, check.LockedOut);
        Assert.Equal(tenth.LockedUntil, check.Until);
        Assert.True(t.Check(B, "user1").Allowed); // the user names were tried once each: not locked
    }

    [Fact]
    public void A_user_is_locked_out_after_n_failures_from_different_addresses()
    {
        var clock = new TestClock();
        var t = new AuthThrottle(Options, clock);
        for (var i = 0; i < 9; i++)
        {
            var f = t.RecordFailure(V4(i), "app1");
            Assert.False(f.TriggeredLockout);
            Assert.Equal(0.5, f.Delay.TotalSeconds); // each address has failed once
        }
        var tenth = t.RecordFailure(V4(9), "app1");
        Assert.Equal(AuthLockScope.User, tenth.LockoutStarted);

        var check = t.Check(IPAddress.Parse("198.51.100.7"), "app1");
        Assert.Equal(AuthLockScope.User, check.LockedOut);
        Assert.Equal(clock.GetUtcNow() + TimeSpan.FromMinutes(15), check.Until);
        Assert.True(t.Check(IPAddress.Parse("198.51.100.7"), "app2").Allowed);
    }

    [Fact]
    public void Both_scopes_can_lock_at_once()
    {
        var t = new AuthThrottle(Options, new TestClock());
        AuthFailure f = default;
        for (var i = 0; i < 10; i++) f = t.RecordFailure(A, "app1");
        Assert.Equal(AuthLockScope.Address | AuthLockScope.User, f.LockoutStarted);
        Assert.Equal(AuthLockScope.Address | AuthLockScope.User, t.Check(A, "app1").LockedOut);
    }

    [Fact]
    public void Lockout_expires_and_the_counters_start_again()
    {
        var clock = new TestClock();
        var t = new AuthThrottle(Options, clock);
        for (var i = 0; i < 10; i++) t.RecordFailure(A, "app1");

        clock.Advance(TimeSpan.FromMinutes(15) - TimeSpan.FromTicks(1));
        Assert.False(t.Check(A, "app1").Allowed);
        clock.Advance(TimeSpan.FromTicks(1));
        Assert.True(t.Check(A, "app1").Allowed);

        var next = t.RecordFailure(A, "app1");
        Assert.Equal(0.5, next.Delay.TotalSeconds);
        Assert.False(next.TriggeredLockout);
        for (var i = 0; i < 8; i++) Assert.False(t.RecordFailure(A, "app1").TriggeredLockout);
        Assert.True(t.RecordFailure(A, "app1").TriggeredLockout); // a full allowance, no more
    }

    [Fact]
    public void Failures_during_a_lockout_do_not_extend_it()
    {
        var clock = new TestClock();
        var t = new AuthThrottle(Options, clock);
        AuthFailure first = default;
        for (var i = 0; i < 10; i++) first = t.RecordFailure(A, "app1");
        for (var m = 0; m < 14; m++)
        {
            clock.Advance(TimeSpan.FromMinutes(1));
            var f = t.RecordFailure(A, "app1"); // a session that raced past Check
            Assert.False(f.TriggeredLockout);
            Assert.Equal(first.LockedUntil, t.Check(A, "app1").Until);
        }
        clock.Advance(TimeSpan.FromMinutes(1));
        Assert.True(t.Check(A, "app1").Allowed);
    }

    [Fact]
    public void Failures_older_than_the_window_are_forgotten()
    {
        var clock = new TestClock();
        var t = new AuthThrottle(Options, clock);
        for (var i = 0; i < 9; i++) t.RecordFailure(A, "app1");
        clock.Advance(TimeSpan.FromMinutes(15));
        var f = t.RecordFailure(A, "app1");
        Assert.False(f.TriggeredLockout);
        Assert.Equal(0.5, f.Delay.TotalSeconds);
        Assert.True(t.Check(A, "app1").Allowed);
    }

    [Fact]
    public void Success_clears_the_address_and_the_user_counters()
    {
        var t = new AuthThrottle(Options, new TestClock());
        for (var i = 0; i < 9; i++) t.RecordFailure(A, "app1");
        t.RecordSuccess(A, "app1");

        Assert.Equal(0.5, t.RecordFailure(A, "other").Delay.TotalSeconds); // address counter cleared
        for (var i = 0; i < 9; i++) Assert.False(t.RecordFailure(V4(i), "app1").TriggeredLockout); // user counter cleared
        Assert.True(t.RecordFailure(V4(9), "app1").TriggeredLockout);
    }

    [Fact]
    public void Success_does_not_lift_a_lockout()
    {
        var t = new AuthThrottle(Options, new TestClock());
        for (var i = 0; i < 10; i++) t.RecordFailure(V4(i), "app1"); // guesses from many addresses lock app1
        for (var i = 0; i < 10; i++) t.RecordFailure(B, "guess" + i); // and B is locked too

        t.RecordSuccess(A, "app1");
        Assert.Equal(AuthLockScope.User, t.Check(A, "app1").LockedOut);
        t.RecordSuccess(B, "guess0");
        Assert.Equal(AuthLockScope.Address, t.Check(B, "guess0").LockedOut);
    }

    [Fact]
    public void Existing_and_unknown_users_are_treated_identically()
    {
        // The throttle never sees the user table: "app1" (configured) and "ghost" (not) must give the same answers.
        static (double[] Delays, AuthLockScope[] Starts, AuthCheck Check) Run(string user)
        {
            var clock = new TestClock();
            var t = new AuthThrottle(Options, clock);
            var failures = Enumerable.Range(0, 10).Select(i => t.RecordFailure(V4(i % 3), user)).ToArray();
            return (Seconds(failures), failures.Select(f => f.LockoutStarted).ToArray(), t.Check(V4(7), user));
        }
        var known = Run("app1");
        var unknown = Run("ghost");
        Assert.Equal(known.Delays, unknown.Delays);
        Assert.Equal(known.Starts, unknown.Starts);
        Assert.Equal(known.Check, unknown.Check);
        Assert.Equal(AuthLockScope.User, unknown.Check.LockedOut);
    }

    [Fact]
    public void User_names_are_case_sensitive()
    {
        var t = new AuthThrottle(Options, new TestClock());
        for (var i = 0; i < 10; i++) t.RecordFailure(V4(i), "app1");
        Assert.False(t.Check(A, "app1").Allowed);
        Assert.True(t.Check(A, "App1").Allowed);
        Assert.True(t.Check(A, "APP1").Allowed);
    }

    [Fact]
    public void Huge_user_names_are_keyed_by_hash_without_collisions()
    {
        var t = new AuthThrottle(Options, new TestClock());
        var prefix = new string('x', 10_000);
        for (var i = 0; i < 10; i++) t.RecordFailure(V4(i), prefix + "a");
        Assert.False(t.Check(A, prefix + "a").Allowed);
        Assert.True(t.Check(A, prefix + "b").Allowed); // same first 10,000 chars, different name
        Assert.True(t.Check(A, prefix).Allowed);
        Assert.Equal(1, t.TrackedUsers);
        Assert.Equal(10, t.TrackedAddresses);
    }

    [Fact]
    public void Ipv6_addresses_are_grouped_per_64()
    {
        var t = new AuthThrottle(Options, new TestClock());
        for (var i = 1; i <= 10; i++) t.RecordFailure(IPAddress.Parse($"2001:db8:5:6::{i:x}"), "u" + i);
        Assert.Equal(AuthLockScope.Address, t.Check(IPAddress.Parse("2001:db8:5:6:ffff::1"), "x").LockedOut);
        Assert.True(t.Check(IPAddress.Parse("2001:db8:5:7::1"), "x").Allowed);
        Assert.Equal(1, t.TrackedAddresses);
    }

    [Fact]
    public void Mapped_ipv4_is_the_same_address()
    {
        var t = new AuthThrottle(Options, new TestClock());
        for (var i = 0; i < 10; i++) t.RecordFailure(IPAddress.Parse("::ffff:192.0.2.1"), "u" + i);
        Assert.Equal(AuthLockScope.Address, t.Check(A, "x").LockedOut);
    }

    [Fact]
    public void Check_adds_nothing_and_the_tables_stay_within_the_cap()
    {
        var t = new AuthThrottle(Options, new TestClock(), maxTrackedKeys: 1000);
        for (var i = 0; i < 100_000; i++) Assert.True(t.Check(V4(i), "user" + i).Allowed);
        Assert.Equal(0, t.TrackedAddresses);
        Assert.Equal(0, t.TrackedUsers);
        for (var i = 0; i < 100_000; i++) t.RecordFailure(V4(i), "user" + i);
        Assert.Equal(1000, t.TrackedAddresses);
        Assert.Equal(1000, t.TrackedUsers);
    }

    [Fact]
    public void Expired_entries_are_swept()
    {
        var clock = new TestClock();
        var t = new AuthThrottle(Options, clock);
        for (var i = 0; i < 100; i++) t.RecordFailure(V4(i), "user" + i);
        clock.Advance(TimeSpan.FromMinutes(15));
        for (var i = 100; i < 200; i++) t.RecordFailure(V4(i), "user" + i); // each insertion sweeps up to 2 stale ones
        Assert.Equal(100, t.TrackedAddresses);
        Assert.Equal(100, t.TrackedUsers);
    }

    [Fact]
    public void Parallel_failures_lock_exactly_once()
    {
        var t = new AuthThrottle(Options with { MaxFailuresPerAddress = 0 }, new TestClock());
        var lockouts = 0;
        Parallel.For(0, 1000, i =>
        {
            if (t.RecordFailure(V4(i), "app1").TriggeredLockout) Interlocked.Increment(ref lockouts);
        });
        Assert.Equal(1, lockouts);
        Assert.Equal(AuthLockScope.User, t.Check(A, "app1").LockedOut);
    }
}
