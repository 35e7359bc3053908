using MtaSts.Actors.Destinations;

namespace MtaSts.Actors.Destinations.Tests;

public sealed class ConnectionBudgetTests
{
    [Theory]
    [InlineData(0, 500, 500)]
    [InlineData(499, 500, 1)]
    [InlineData(500, 500, 0)]
    [InlineData(700, 500, 0)] // after a reload lowered the limit
    [InlineData(-3, 10, 10)]
    public void Available_is_max_minus_in_use_never_negative(int inUse, int max, int expected) =>
        Assert.Equal(expected, ConnectionBudget.Available(inUse, max));

    [Fact]
    public void Acquire_up_to_the_max_then_refuse()
    {
        var b = new ConnectionBudget(2);
        Assert.Equal(1, b.Grant(LimitKey.Domain, 1));
        Assert.Equal(2, b.Grant(LimitKey.Domain, 5));
        Assert.True(b.TryAcquire(LimitKey.Domain));
        Assert.True(b.TryAcquire(LimitKey.Domain));
        Assert.False(b.TryAcquire(LimitKey.Domain));
        Assert.Equal(0, b.Available(LimitKey.Domain));
        Assert.Equal(2, b.TotalInUse);
        Assert.True(b.Release(LimitKey.Domain));
        Assert.Equal(1, b.Available(LimitKey.Domain));
        Assert.True(b.TryAcquire(LimitKey.Domain));
    }

    [Fact]
    public void Double_release_is_refused_and_harmless()
    {
        var b = new ConnectionBudget(1);
        Assert.False(b.Release(LimitKey.Domain));
        Assert.True(b.TryAcquire(LimitKey.Domain));
        Assert.True(b.Release(LimitKey.Domain));
        Assert.False(b.Release(LimitKey.Domain));
        Assert.Equal(0, b.TotalInUse);
        Assert.Equal(1, b.Available(LimitKey.Domain));
    }

    [Fact]
    public void Per_mx_ip_limits_count_separately()
    {
        var profile = new DestinationProfile { LimitType = LimitType.PerMxIp, MaxConcurrentConnections = 1 };
        var b = new ConnectionBudget(profile.MaxConcurrentConnections);
        var ip1 = LimitKey.For(profile, "192.0.2.1", "10.0.0.1", "gw1");
        var ip2 = LimitKey.For(profile, "192.0.2.2", "10.0.0.1", "gw1");
        Assert.True(b.TryAcquire(ip1));
        Assert.False(b.TryAcquire(ip1));
        Assert.True(b.TryAcquire(ip2));
        Assert.Equal(2, b.TotalInUse);
    }

    [Fact]
    public void Whole_domain_limits_ignore_the_mx_ip()
    {
        var profile = new DestinationProfile { MaxConcurrentConnections = 1 };
        var b = new ConnectionBudget(1);
        Assert.True(b.TryAcquire(LimitKey.For(profile, "192.0.2.1", null, null)));
        Assert.False(b.TryAcquire(LimitKey.For(profile, "192.0.2.2", null, null)));
    }

    [Fact]
    public void Limit_keys_follow_type_and_scope()
    {
        var p = new DestinationProfile();
        Assert.Equal(new LimitKey(null, null), LimitKey.For(p, "192.0.2.1", "10.0.0.1", "gw1"));
        Assert.Equal(new LimitKey("192.0.2.1", null), LimitKey.For(p with { LimitType = LimitType.PerMxIp }, "192.0.2.1", "10.0.0.1", "gw1"));
        Assert.Equal(new LimitKey(null, "10.0.0.1"), LimitKey.For(p with { LimitScope = LimitScope.PerVirtualGateway }, "192.0.2.1", "10.0.0.1", "gw1"));
        Assert.Equal(new LimitKey(null, "gw1"), LimitKey.For(p with { LimitScope = LimitScope.PerGatewayHostname }, "192.0.2.1", "10.0.0.1", "gw1"));
        Assert.Equal(new LimitKey("192.0.2.1", "10.0.0.1"),
            LimitKey.For(p with { LimitScope = LimitScope.PerVirtualGateway, LimitType = LimitType.PerMxIp }, "192.0.2.1", "10.0.0.1", "gw1"));
    }

    [Fact]
    public void Lowering_the_max_keeps_open_connections_but_blocks_new_ones()
    {
        var b = new ConnectionBudget(3);
        for (var i = 0; i < 3; i++) Assert.True(b.TryAcquire(LimitKey.Domain));
        b.SetMax(1);
        Assert.Equal(3, b.InUse(LimitKey.Domain));
        Assert.Equal(0, b.Available(LimitKey.Domain));
        b.Release(LimitKey.Domain);
        b.Release(LimitKey.Domain);
        Assert.False(b.TryAcquire(LimitKey.Domain));
        b.Release(LimitKey.Domain);
        Assert.True(b.TryAcquire(LimitKey.Domain));
    }

    [Fact]
    public void Reset_forgets_counts()
    {
        var b = new ConnectionBudget(1);
        b.TryAcquire(LimitKey.Domain);
        b.Reset();
        Assert.Equal(0, b.TotalInUse);
        Assert.True(b.TryAcquire(LimitKey.Domain));
    }

    [Theory]
    [InlineData(0)]
    [InlineData(1001)]
    public void Max_must_be_in_vendor_range(int max)
    {
        Assert.Throws<ArgumentOutOfRangeException>(() => new ConnectionBudget(max));
        Assert.Throws<ArgumentOutOfRangeException>(() => new ConnectionBudget(1).SetMax(max));
    }

    [Fact]
    public void Message_counter_allows_exactly_max_messages()
    {
        var c = new ConnectionMessageCounter(3);
        Assert.Equal(3, c.Remaining);
        Assert.True(c.TryCount());
        Assert.True(c.TryCount());
        Assert.True(c.CanSendAnother);
        Assert.True(c.TryCount());
        Assert.False(c.CanSendAnother);
        Assert.False(c.TryCount());
        Assert.Equal(3, c.Sent);
        Assert.Equal(0, c.Remaining);
        Assert.Throws<ArgumentOutOfRangeException>(() => new ConnectionMessageCounter(0));
    }
}
