using System.Net;
using MtaSts.Actors.Dns;
using MtaSts.Actors.Smtp.Outbound;
using MtaSts.Actors.Tls;

namespace MtaSts.Actors.Smtp.Tests.Outbound;

public sealed class MxResolverTests
{
    private static FakeDnsResolver Dns() => new FakeDnsResolver()
        .SetMx("example.com", (20, "b2.example.com"), (10, "a1.example.com"), (10, "a2.example.com."), (20, "b1.example.com"))
        .SetHost("a1.example.com", "192.0.2.1")
        .SetHost("a2.example.com", "192.0.2.2")
        .SetHost("b1.example.com", "192.0.2.3")
        .SetHost("b2.example.com", "192.0.2.4");

    [Fact]
    public async Task Preference_order_with_random_order_among_equals()
    {
        var seen = new HashSet<string>();
        for (int seed = 0; seed < 40; seed++)
        {
            var r = await new MxResolver(Dns(), random: new Random(seed)).ResolveAsync("example.com");
            Assert.True(r.Ok);
            Assert.Equal(MxSource.Dns, r.Source);
            var names = r.Hosts.Select(h => h.Name).ToArray();
            Assert.Equal(new[] { "a1.example.com", "a2.example.com" }, names[..2].Order());
            Assert.Equal(new[] { "b1.example.com", "b2.example.com" }, names[2..].Order());
            Assert.Equal(new[] { 10, 10, 20, 20 }, r.Hosts.Select(h => h.Preference));
            seen.Add(string.Join(",", names));
        }
        Assert.True(seen.Count > 1, "equal-preference hosts should not always come in the same order");
    }

    [Fact]
    public async Task Targets_flatten_hosts_and_addresses()
    {
        var dns = new FakeDnsResolver().SetMx("x.test", (10, "mx.x.test")).SetHost("mx.x.test", "192.0.2.7", "192.0.2.8");
        var r = await new MxResolver(dns).ResolveAsync("X.TEST.");
        Assert.Equal(new[] { "mx.x.test [192.0.2.7]:25", "mx.x.test [192.0.2.8]:25" }, r.Targets.Select(t => t.ToString()));
    }

    [Fact]
    public async Task Implicit_mx_when_no_mx_records()
    {
        var dns = new FakeDnsResolver().SetHost("plain.test", "192.0.2.9");
        dns.Mx["plain.test"] = new DnsAnswer<MxRecord>(DnsOutcome.NoData, Array.Empty<MxRecord>());
        var r = await new MxResolver(dns).ResolveAsync("plain.test");
        Assert.True(r.Ok);
        Assert.Equal(MxSource.ImplicitMx, r.Source);
        var h = Assert.Single(r.Hosts);
        Assert.Equal("plain.test", h.Name);
        Assert.Equal(0, h.Preference);
    }

    [Fact]
    public async Task Implicit_mx_without_address_is_permanent()
    {
        var dns = new FakeDnsResolver();
        dns.Mx["noaddr.test"] = new DnsAnswer<MxRecord>(DnsOutcome.NoData, Array.Empty<MxRecord>());
        var r = await new MxResolver(dns).ResolveAsync("noaddr.test");
        Assert.Equal(MxResolutionStatus.Permanent, r.Status);
        Assert.Equal("5.4.4", r.EnhancedStatus);
    }

    [Theory]
    [InlineData("")]
    [InlineData(".")]
    public async Task Null_mx_is_a_permanent_5_1_10(string exchange)
    {
        var dns = new FakeDnsResolver().SetMx("nullmx.test", (0, exchange));
        var r = await new MxResolver(dns).ResolveAsync("nullmx.test");
        Assert.Equal(MxResolutionStatus.Permanent, r.Status);
        Assert.Equal("5.1.10", r.EnhancedStatus);
        Assert.Contains("null MX", r.Error);
    }

    [Fact]
    public async Task Nxdomain_is_a_permanent_5_1_2()
    {
        var r = await new MxResolver(new FakeDnsResolver()).ResolveAsync("nowhere.test");
        Assert.Equal(MxResolutionStatus.Permanent, r.Status);
        Assert.Equal("5.1.2", r.EnhancedStatus);
    }

    [Fact]
    public async Task Mx_tempfail_is_transient()
    {
        var dns = new FakeDnsResolver();
        dns.Mx["flaky.test"] = DnsAnswer<MxRecord>.Fail("SERVFAIL from 127.0.0.1:53");
        var r = await new MxResolver(dns).ResolveAsync("flaky.test");
        Assert.Equal(MxResolutionStatus.Transient, r.Status);
        Assert.Equal("4.4.3", r.EnhancedStatus);
        Assert.Contains("SERVFAIL", r.Error);
    }

    [Fact]
    public async Task Address_tempfail_on_every_mx_is_transient_and_one_good_mx_is_enough()
    {
        var dns = new FakeDnsResolver().SetMx("t.test", (10, "a.t.test"), (20, "b.t.test"));
        dns.Addresses["a.t.test"] = DnsAnswer<IPAddress>.Fail("timeout");
        dns.Addresses["b.t.test"] = DnsAnswer<IPAddress>.Fail("timeout");
        Assert.Equal(MxResolutionStatus.Transient, (await new MxResolver(dns).ResolveAsync("t.test")).Status);
        dns.SetHost("b.t.test", "192.0.2.5");
        var r = await new MxResolver(dns).ResolveAsync("t.test");
        Assert.True(r.Ok);
        Assert.True(r.Hosts[0].AddressesTransient);
        Assert.Equal("b.t.test", Assert.Single(r.Targets).Host);
    }

    [Fact]
    public async Task Ip_preference_orders_and_filters_families()
    {
        var dns = new FakeDnsResolver().SetMx("v.test", (10, "mx.v.test")).SetHost("mx.v.test", "192.0.2.1", "2001:db8::1");
        var resolver = new MxResolver(dns);
        Assert.Equal("192.0.2.1", (await resolver.ResolveAsync("v.test", IpPreference.PreferV4)).Hosts[0].Addresses[0].ToString());
        Assert.Equal("2001:db8::1", (await resolver.ResolveAsync("v.test", IpPreference.PreferV6)).Hosts[0].Addresses[0].ToString());
        Assert.Equal(new[] { "192.0.2.1" }, (await resolver.ResolveAsync("v.test", IpPreference.RequireV4)).Hosts[0].Addresses.Select(a => a.ToString()));
        Assert.Equal(new[] { "2001:db8::1" }, (await resolver.ResolveAsync("v.test", IpPreference.RequireV6)).Hosts[0].Addresses.Select(a => a.ToString()));
    }

    [Fact]
    public async Task Require_v6_without_v6_addresses_is_permanent()
    {
        var dns = new FakeDnsResolver().SetMx("v4only.test", (10, "mx.v4only.test")).SetHost("mx.v4only.test", "192.0.2.1");
        var r = await new MxResolver(dns).ResolveAsync("v4only.test", IpPreference.RequireV6);
        Assert.Equal(MxResolutionStatus.Permanent, r.Status);
        Assert.Contains("IPv6", r.Error);
    }

    [Fact]
    public async Task Static_override_keeps_mx_names_with_fixed_addresses()
    {
        var map = MxResolver.StaticMap(new Dictionary<string, IReadOnlyList<HostPort>>
        {
            ["example.com"] = new[] { new HostPort("mx1.example.com", 2525, IPAddress.Loopback), HostPort.Parse("127.0.0.2:2526") },
        });
        var r = await new MxResolver(new FakeDnsResolver(), map).ResolveAsync("Example.com");
        Assert.Equal(MxSource.Override, r.Source);
        Assert.Equal(new[] { "mx1.example.com [127.0.0.1]:2525", "127.0.0.2 [127.0.0.2]:2526" }, r.Targets.Select(t => t.ToString()));
        // Domains not in the map use DNS.
        Assert.Equal(MxResolutionStatus.Permanent, (await new MxResolver(new FakeDnsResolver(), map).ResolveAsync("other.test")).Status);
    }

    [Fact]
    public async Task Smtp_route_hops_in_order()
    {
        var dns = new FakeDnsResolver().SetHost("relay.internal", "10.0.0.5");
        var r = await new MxResolver(dns).ResolveRouteAsync(new[] { HostPort.Parse("relay.internal:587"), HostPort.Parse("[2001:db8::9]:25") });
        Assert.Equal(MxSource.Route, r.Source);
        Assert.Equal(new[] { "relay.internal [10.0.0.5]:587", "2001:db8::9 [2001:db8::9]:25" }, r.Targets.Select(t => t.ToString()));
    }

    [Fact]
    public async Task Named_override_hops_are_as_secure_as_their_address_answers()
    {
        // The override replaces the MX RRset (trusted configuration), so DANE keeps applying to named hops.
        var dns = new FakeDnsResolver { Authenticated = true }.SetHost("mx.o.test", "192.0.2.7");
        var map = MxResolver.StaticMap(new Dictionary<string, IReadOnlyList<HostPort>> { ["o.test"] = new[] { HostPort.Parse("mx.o.test") } });
        Assert.True((await new MxResolver(dns, map).ResolveAsync("o.test")).Hosts[0].Secure);
        Assert.False((await new MxResolver(dns).ResolveRouteAsync(new[] { HostPort.Parse("mx.o.test") })).Hosts[0].Secure);
        dns.Authenticated = false;
        dns.SetHost("mx.o.test", "192.0.2.7");
        Assert.False((await new MxResolver(dns, map).ResolveAsync("o.test")).Hosts[0].Secure);
    }

    [Fact]
    public async Task Secure_only_when_mx_and_addresses_are_authenticated()
    {
        var dns = new FakeDnsResolver { Authenticated = true }.SetMx("s.test", (10, "mx.s.test")).SetHost("mx.s.test", "192.0.2.1");
        Assert.True((await new MxResolver(dns).ResolveAsync("s.test")).Hosts[0].Secure);
        dns.Authenticated = false;
        dns.SetHost("mx.s.test", "192.0.2.1");
        Assert.False((await new MxResolver(dns).ResolveAsync("s.test")).Hosts[0].Secure);
    }

    [Theory]
    [InlineData("mx.example.com", "mx.example.com", 25)]
    [InlineData("mx.example.com:2525", "mx.example.com", 2525)]
    [InlineData("10.1.1.3:26", "10.1.1.3", 26)]
    [InlineData("[::1]:2525", "::1", 2525)]
    [InlineData("[::1]", "::1", 25)]
    public void HostPort_parse(string text, string host, int port)
    {
        var hp = HostPort.Parse(text);
        Assert.Equal(host, hp.Host);
        Assert.Equal(port, hp.Port);
    }
}
