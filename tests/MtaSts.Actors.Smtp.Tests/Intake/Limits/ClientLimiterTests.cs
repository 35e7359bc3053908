using System.Net;
using MtaSts.Actors.Smtp.Intake.Limits;

namespace MtaSts.Actors.Smtp.Tests.Intake.Limits;

public sealed class ClientLimiterTests
{
    private static readonly IPAddress A = IPAddress.Parse("192.0.2.1");
    private static readonly IPAddress B = IPAddress.Parse("192.0.2.2");
    private static readonly ClientLimits Unlimited = new() { MaxSessions = 0, ConnectionsPerMinute = 0, MessagesPerMinute = 0 };

    private static IPAddress V4(int i) => new([10, (byte)(i >> 16), (byte)(i >> 8), (byte)i]);

    private static SessionLease Open(ClientLimiter l, IPAddress a, ClientLimits limits)
    {
        var r = l.TryOpenSession(a, limits);
        Assert.True(r.Admitted, r.Refusal.Describe());
        return r.Lease;
    }

    [Fact]
    public void Sessions_are_capped_per_address_and_freed_by_the_lease()
    {
        var l = new ClientLimiter(new TestClock());
        var limits = Unlimited with { MaxSessions = 2 };
        var s1 = Open(l, A, limits);
        var s2 = Open(l, A, limits);
        Assert.Equal(2, l.SessionCount(A));

        var refused = l.TryOpenSession(A, limits);
        Assert.False(refused.Admitted);
        Assert.Null(refused.Lease);
        Assert.Equal(LimitReason.TooManySessions, refused.Refusal.Reason);
        Assert.Equal(2, refused.Refusal.Limit);
        Assert.Equal(ClientKey.From(A), refused.Refusal.Client);
        Assert.Equal("too many sessions from 192.0.2.1 (limit 2)", refused.Refusal.Describe());
        Assert.Equal(2, l.SessionCount(A)); // a refusal holds nothing

        using (Open(l, B, limits)) { } // another address is not affected

        s1.Dispose();
        Assert.Equal(1, l.SessionCount(A));
        using var s3 = Open(l, A, limits);
        s2.Dispose();
        Assert.Equal(1, l.SessionCount(A));
    }

    [Fact]
    public void Disposing_a_lease_twice_releases_once()
    {
        var l = new ClientLimiter(new TestClock());
        var s1 = Open(l, A, Unlimited);
        using var s2 = Open(l, A, Unlimited);
        s1.Dispose();
        s1.Dispose();
        Assert.Equal(1, l.SessionCount(A));
        Assert.Equal(ClientKey.From(A), s2.Client);
    }

    [Fact]
    public void Connection_rate_window_rolls_over_after_a_minute()
    {
        var clock = new TestClock();
        var l = new ClientLimiter(clock);
        var limits = Unlimited with { ConnectionsPerMinute = 3 };
        for (var i = 0; i < 3; i++) Open(l, A, limits).Dispose();

        var r = l.TryOpenSession(A, limits);
        Assert.False(r.Admitted);
        Assert.Equal(LimitReason.ConnectionRateExceeded, r.Refusal.Reason);
        Assert.Equal(3, r.Refusal.Limit);
        Assert.Equal("connection rate limit exceeded for 192.0.2.1 (3 per minute)", r.Refusal.Describe());
        Open(l, B, limits).Dispose(); // per address

        clock.Advance(TimeSpan.FromSeconds(59));
        Assert.False(l.TryOpenSession(A, limits).Admitted);
        clock.Advance(TimeSpan.FromSeconds(1));
        for (var i = 0; i < 3; i++) Open(l, A, limits).Dispose();
        Assert.False(l.TryOpenSession(A, limits).Admitted);
    }

    [Fact]
    public void Refused_attempts_neither_count_nor_extend_the_penalty()
    {
        var clock = new TestClock();
        var l = new ClientLimiter(clock);
        var limits = Unlimited with { ConnectionsPerMinute = 2 };
        Open(l, A, limits).Dispose();
        clock.Advance(TimeSpan.FromSeconds(30));
        Open(l, A, limits).Dispose();
        // Hammer once a second until the window (opened at t=0) ends.
        for (var t = 30; t < 60; t++)
        {
            Assert.False(l.TryOpenSession(A, limits).Admitted);
            clock.Advance(TimeSpan.FromSeconds(1));
        }
        // t=60: a new window with the full allowance, despite 30 refusals in the last one.
        Open(l, A, limits).Dispose();
        Open(l, A, limits).Dispose();
        Assert.False(l.TryOpenSession(A, limits).Admitted);
    }

    [Fact]
    public void Session_refusals_do_not_use_up_the_connection_rate()
    {
        var l = new ClientLimiter(new TestClock());
        var limits = Unlimited with { MaxSessions = 1, ConnectionsPerMinute = 2 };
        var s = Open(l, A, limits);
        for (var i = 0; i < 10; i++) Assert.Equal(LimitReason.TooManySessions, l.TryOpenSession(A, limits).Refusal.Reason);
        s.Dispose();
        Open(l, A, limits).Dispose(); // second connection of the window
        Assert.Equal(LimitReason.ConnectionRateExceeded, l.TryOpenSession(A, limits).Refusal.Reason);
    }

    [Fact]
    public void Message_rate_is_counted_per_address_and_rolls_over()
    {
        var clock = new TestClock();
        var l = new ClientLimiter(clock);
        var limits = Unlimited with { MessagesPerMinute = 2 };
        using var s = Open(l, A, limits);
        Assert.True(l.TryStartMessage(A, limits, out _));
        Assert.True(l.TryStartMessage(A, limits, out _));
        Assert.False(l.TryStartMessage(A, limits, out var refusal));
        Assert.Equal(LimitReason.MessageRateExceeded, refusal.Reason);
        Assert.Equal(2, refusal.Limit);
        Assert.True(refusal.FirstInWindow);
        Assert.Equal("message rate limit exceeded for 192.0.2.1 (2 per minute)", refusal.Describe());
        Assert.False(l.TryStartMessage(A, limits, out refusal));
        Assert.False(refusal.FirstInWindow);
        Assert.True(l.TryStartMessage(B, limits, out _));

        clock.Advance(ClientLimiter.RateWindow);
        Assert.True(l.TryStartMessage(A, limits, out _));
        Assert.Equal(1, l.SessionCount(A)); // the session outlives windows
    }

    [Fact]
    public void Ipv6_clients_are_grouped_per_64()
    {
        var l = new ClientLimiter(new TestClock());
        var limits = Unlimited with { MaxSessions = 2 };
        using var s1 = Open(l, IPAddress.Parse("2001:db8:0:1::1"), limits);
        using var s2 = Open(l, IPAddress.Parse("2001:db8:0:1:dead:beef:0:2"), limits);
        var r = l.TryOpenSession(IPAddress.Parse("2001:db8:0:1:ffff::3"), limits);
        Assert.Equal(LimitReason.TooManySessions, r.Refusal.Reason);
        Assert.Equal("2001:db8:0:1::/64", r.Refusal.Client.ToString());
        Assert.Equal(2, l.SessionCount(IPAddress.Parse("2001:db8:0:1::42")));
        using var other = Open(l, IPAddress.Parse("2001:db8:0:2::1"), limits);
    }

    [Fact]
    public void Ipv4_mapped_clients_count_as_ipv4()
    {
        var l = new ClientLimiter(new TestClock());
        var limits = Unlimited with { MaxSessions = 1 };
        using var s = Open(l, A, limits);
        var r = l.TryOpenSession(IPAddress.Parse("::ffff:192.0.2.1"), limits);
        Assert.Equal(LimitReason.TooManySessions, r.Refusal.Reason);
        Assert.Equal("192.0.2.1", r.Refusal.Client.ToString());
    }

    [Fact]
    public void Refusals_are_reported_first_once_per_window_per_address()
    {
        var clock = new TestClock();
        var l = new ClientLimiter(clock);
        var limits = Unlimited with { MaxSessions = 1 };
        using var sa = Open(l, A, limits);
        using var sb = Open(l, B, limits);

        var firsts = 0;
        for (var i = 0; i < 1000; i++)
            if (l.TryOpenSession(A, limits).Refusal.FirstInWindow) firsts++;
        Assert.Equal(1, firsts);
        Assert.True(l.TryOpenSession(B, limits).Refusal.FirstInWindow); // per address
        Assert.False(l.TryOpenSession(B, limits).Refusal.FirstInWindow);

        clock.Advance(TimeSpan.FromSeconds(59));
        Assert.False(l.TryOpenSession(A, limits).Refusal.FirstInWindow);
        clock.Advance(TimeSpan.FromSeconds(1));
        Assert.True(l.TryOpenSession(A, limits).Refusal.FirstInWindow);
        Assert.False(l.TryOpenSession(A, limits).Refusal.FirstInWindow);
    }

    [Fact]
    public void Each_reason_is_reported_first_once_per_window()
    {
        var l = new ClientLimiter(new TestClock());
        var limits = Unlimited with { MaxSessions = 1, MessagesPerMinute = 1 };
        using var s = Open(l, A, limits);
        Assert.True(l.TryOpenSession(A, limits).Refusal.FirstInWindow);
        Assert.True(l.TryStartMessage(A, limits, out _));
        Assert.False(l.TryStartMessage(A, limits, out var refusal));
        Assert.True(refusal.FirstInWindow); // a different limit: its own first line
        Assert.False(l.TryStartMessage(A, limits, out refusal));
        Assert.False(refusal.FirstInWindow);
        Assert.False(l.TryOpenSession(A, limits).Refusal.FirstInWindow);
    }

    [Fact]
    public void Relay_defaults_have_no_rate_limits()
    {
        var l = new ClientLimiter(new TestClock());
        for (var i = 0; i < 10_000; i++)
        {
            Open(l, A, ClientLimits.RelayDefault).Dispose();
            Assert.True(l.TryStartMessage(A, ClientLimits.RelayDefault, out _));
        }
    }

    [Fact]
    public void Eviction_never_drops_a_client_with_live_sessions()
    {
        var l = new ClientLimiter(new TestClock(), maxTrackedClients: 10);
        var limits = Unlimited with { MaxSessions = 1, ConnectionsPerMinute = 5 };
        var live = Open(l, A, limits);
        for (var i = 0; i < 10_000; i++) Open(l, V4(i), limits).Dispose();

        Assert.InRange(l.TrackedClients, 1, 10);
        Assert.True(l.ForcedEvictions > 0);
        Assert.Equal(1, l.SessionCount(A));
        Assert.Equal(LimitReason.TooManySessions, l.TryOpenSession(A, limits).Refusal.Reason);
        live.Dispose();
        Assert.Equal(0, l.SessionCount(A));
        Open(l, A, limits).Dispose();
    }

    [Fact]
    public void Clients_with_live_sessions_may_exceed_the_cap_and_the_table_shrinks_back()
    {
        var l = new ClientLimiter(new TestClock(), maxTrackedClients: 5);
        var leases = Enumerable.Range(0, 20).Select(i => Open(l, V4(i), Unlimited)).ToList();
        Assert.Equal(20, l.TrackedClients);
        Assert.All(Enumerable.Range(0, 20), i => Assert.Equal(1, l.SessionCount(V4(i))));
        foreach (var s in leases) s.Dispose();
        Open(l, V4(100), Unlimited).Dispose();
        Assert.InRange(l.TrackedClients, 1, 5);
    }

    [Fact]
    public void A_million_distinct_addresses_stay_within_the_cap()
    {
        var l = new ClientLimiter(new TestClock()); // default cap 100,000; the clock stands still
        for (var i = 0; i < 1_000_000; i++)
        {
            var r = l.TryOpenSession(V4(i), ClientLimits.Default);
            Assert.True(r.Admitted);
            r.Lease.Dispose();
        }
        Assert.Equal(ClientLimiter.DefaultMaxTrackedClients, l.TrackedClients);
        Assert.Equal(1_000_000 - ClientLimiter.DefaultMaxTrackedClients, l.ForcedEvictions); // all fresh: rates failed open
    }

    [Fact]
    public void A_flood_of_ipv6_prefixes_stays_within_the_cap()
    {
        var l = new ClientLimiter(new TestClock(), maxTrackedClients: 1000);
        var b = new byte[16];
        b[0] = 0x20; b[1] = 0x01; b[2] = 0x0d; b[3] = 0xb8;
        for (var i = 0; i < 100_000; i++)
        {
            b[4] = (byte)(i >> 16); b[5] = (byte)(i >> 8); b[6] = (byte)i; // a new /64 each time
            b[15] = (byte)i;
            Assert.True(l.TryStartMessage(new IPAddress(b), ClientLimits.Default, out _));
        }
        Assert.Equal(1000, l.TrackedClients);
    }

    [Fact]
    public void Idle_clients_are_swept_once_their_window_has_run_out()
    {
        var clock = new TestClock();
        var l = new ClientLimiter(clock, maxTrackedClients: 100_000);
        // 1000 new clients a second for 200 s: at most ~61 s worth are ever held, and nothing fresh is evicted.
        for (var i = 0; i < 200_000; i++)
        {
            if (i % 1000 == 0) clock.Advance(TimeSpan.FromSeconds(1));
            Open(l, V4(i), ClientLimits.Default).Dispose();
        }
        Assert.InRange(l.TrackedClients, 60_000, 61_000);
        Assert.Equal(0, l.ForcedEvictions);
    }

    [Fact]
    public void Parallel_open_and_dispose_ends_with_no_sessions()
    {
        var l = new ClientLimiter(new TestClock(), maxTrackedClients: 8);
        var addresses = Enumerable.Range(0, 32).Select(V4).ToArray();
        Parallel.For(0, 8, new ParallelOptions { MaxDegreeOfParallelism = 8 }, t =>
        {
            var held = new List<SessionLease>();
            for (var i = 0; i < 20_000; i++)
            {
                var r = l.TryOpenSession(addresses[(i * 7 + t) % addresses.Length], Unlimited);
                Assert.True(r.Admitted);
                held.Add(r.Lease);
                if (held.Count > 3)
                {
                    held[0].Dispose();
                    held[0].Dispose(); // double dispose is harmless
                    held.RemoveAt(0);
                }
            }
            foreach (var s in held) s.Dispose();
        });
        Assert.All(addresses, a => Assert.Equal(0, l.SessionCount(a)));
        Open(l, V4(1000), Unlimited).Dispose(); // the next insertion trims the table back to its cap
        Assert.InRange(l.TrackedClients, 1, 8);
    }

    [Fact]
    public void Concurrent_double_dispose_of_one_lease_releases_once()
    {
        var l = new ClientLimiter(new TestClock());
        for (var round = 0; round < 200; round++)
        {
            using var keep = Open(l, A, Unlimited);
            var s = Open(l, A, Unlimited);
            Parallel.For(0, 4, _ => s.Dispose());
            Assert.Equal(1, l.SessionCount(A));
        }
        Assert.Equal(0, l.SessionCount(A));
    }
}
