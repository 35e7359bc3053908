using System.Net;
using MtaSts.Actors.Dns;
using MtaSts.Actors.TestInfra.Dns;

namespace MtaSts.Actors.Policy.Tests.Dns;

public sealed class DnsClientResolverTests : IAsyncLifetime
{
    private TestDnsServer _dns = null!;
    private DnsClientResolver _resolver = null!;

    public Task InitializeAsync()
    {
        _dns = TestDnsServer.Start();
        // Generous: test machines are shared and busy; only the drop test waits for a timeout (with its own resolver).
        _resolver = new DnsClientResolver(DnsResolverOptions.ForServer(_dns.EndPoint, TimeSpan.FromSeconds(3), retries: 1));
        return Task.CompletedTask;
    }

    public async Task DisposeAsync() => await _dns.DisposeAsync();

    private static CancellationToken Ct => new CancellationTokenSource(TimeSpan.FromSeconds(30)).Token;

    [Fact]
    public async Task Txt_multi_string_records_keep_their_strings()
    {
        _dns.AddTxt("_mta-sts.example.test", "v=STSv1; id=", "policy1;");
        _dns.AddTxt("_mta-sts.example.test", "unrelated");
        var answer = await _resolver.TxtAsync("_mta-sts.example.test", Ct);
        Assert.Equal(DnsOutcome.Ok, answer.Outcome);
        Assert.Equal(2, answer.Records.Count);
        var sts = Assert.Single(answer.Records, r => r.Strings.Count == 2);
        Assert.Equal(new[] { "v=STSv1; id=", "policy1;" }, sts.Strings);
        Assert.Equal("v=STSv1; id=policy1;", sts.Joined);
    }

    [Fact]
    public async Task Nxdomain_and_nodata_are_answers()
    {
        _dns.AddA("host.example.test", "192.0.2.1");
        var nx = await _resolver.TxtAsync("missing.example.test", Ct);
        Assert.Equal(DnsOutcome.NxDomain, nx.Outcome);
        var nodata = await _resolver.TxtAsync("host.example.test", Ct);
        Assert.Equal(DnsOutcome.NoData, nodata.Outcome);
        // Empty non-terminal: the name exists because a child exists.
        var ent = await _resolver.TxtAsync("example.test", Ct);
        Assert.Equal(DnsOutcome.NoData, ent.Outcome);
    }

    [Theory]
    [InlineData(DnsFault.ServFail, "SERVFAIL")]
    [InlineData(DnsFault.Refused, "REFUSED")]
    [InlineData(DnsFault.Drop, "timeout")]
    public async Task Server_failures_are_tempfail_never_none(DnsFault fault, string expected)
    {
        _dns.AddTxt("_mta-sts.broken.test", "v=STSv1; id=1");
        _dns.SetFault("_mta-sts.broken.test", fault);
        var resolver = fault == DnsFault.Drop
            ? new DnsClientResolver(DnsResolverOptions.ForServer(_dns.EndPoint, TimeSpan.FromMilliseconds(700)))
            : _resolver;
        var answer = await resolver.TxtAsync("_mta-sts.broken.test", Ct);
        Assert.Equal(DnsOutcome.TempFail, answer.Outcome);
        Assert.Empty(answer.Records);
        Assert.Contains(expected, answer.Error);
    }

    [Fact]
    public async Task Network_error_is_tempfail()
    {
        // Nothing listens there: ICMP port unreachable or a timeout, never "none".
        var port = FreeUdpPort();
        var resolver = new DnsClientResolver(DnsResolverOptions.ForServer(new IPEndPoint(IPAddress.Loopback, port), TimeSpan.FromMilliseconds(500)));
        var answer = await resolver.TxtAsync("_mta-sts.example.test", Ct);
        Assert.Equal(DnsOutcome.TempFail, answer.Outcome);
        Assert.False(string.IsNullOrEmpty(answer.Error));
    }

    [Fact]
    public async Task Cname_chain_is_followed_when_server_returns_whole_chain()
    {
        _dns.AddCname("_mta-sts.a.cnames.test", "_mta-sts.b.cnames.test");
        _dns.AddCname("_mta-sts.b.cnames.test", "_mta-sts.c.cnames.test");
        _dns.AddTxt("_mta-sts.c.cnames.test", "v=STSv1; id=1");
        var answer = await _resolver.TxtAsync("_mta-sts.a.cnames.test", Ct);
        Assert.Equal(DnsOutcome.Ok, answer.Outcome);
        Assert.Equal("v=STSv1; id=1", Assert.Single(answer.Records).Joined);
    }

    [Fact]
    public async Task Cname_chain_is_followed_when_server_returns_only_the_cname()
    {
        _dns.ChaseCnames = false;
        _dns.AddCname("_mta-sts.a.cnames.test", "_mta-sts.b.cnames.test");
        _dns.AddCname("_mta-sts.b.cnames.test", "_mta-sts.c.cnames.test");
        _dns.AddTxt("_mta-sts.c.cnames.test", "v=STSv1; id=1");
        var answer = await _resolver.TxtAsync("_mta-sts.a.cnames.test", Ct);
        Assert.Equal(DnsOutcome.Ok, answer.Outcome);
        Assert.Equal("v=STSv1; id=1", Assert.Single(answer.Records).Joined);
        Assert.Equal(1, _dns.QueryCount("_mta-sts.c.cnames.test"));
    }

    [Fact]
    public async Task Cname_to_missing_target_is_nxdomain_and_loop_is_tempfail()
    {
        _dns.ChaseCnames = false;
        _dns.AddCname("_mta-sts.dangling.test", "_mta-sts.gone.test");
        Assert.Equal(DnsOutcome.NxDomain, (await _resolver.TxtAsync("_mta-sts.dangling.test", Ct)).Outcome);

        _dns.AddCname("loop1.test", "loop2.test");
        _dns.AddCname("loop2.test", "loop1.test");
        var loop = await _resolver.TxtAsync("loop1.test", Ct);
        Assert.Equal(DnsOutcome.TempFail, loop.Outcome);
        Assert.Contains("CNAME", loop.Error);
    }

    [Fact]
    public async Task Mx_sorted_by_preference_and_null_mx_passed_through()
    {
        _dns.AddMx("example.test", 20, "mx2.example.test");
        _dns.AddMx("example.test", 5, "mx0.example.test.");
        _dns.AddMx("example.test", 10, "MX1.Example.test");
        var mx = await _resolver.MxAsync("example.test", Ct);
        Assert.Equal(DnsOutcome.Ok, mx.Outcome);
        Assert.Equal(new[] { "mx0.example.test", "mx1.example.test", "mx2.example.test" }, mx.Records.Select(r => r.Exchange));
        Assert.Equal(new[] { 5, 10, 20 }, mx.Records.Select(r => r.Preference));

        _dns.AddMx("nullmx.test", 0, ".");
        var nullMx = await _resolver.MxAsync("nullmx.test", Ct);
        var rr = Assert.Single(nullMx.Records);
        Assert.Equal(0, rr.Preference);
        Assert.Equal("", rr.Exchange);
    }

    [Fact]
    public async Task Addresses_combine_a_and_aaaa()
    {
        _dns.AddA("dual.test", "192.0.2.7").AddAaaa("dual.test", "2001:db8::7").AddA("v4.test", "192.0.2.8");
        var both = await _resolver.AddressesAsync("dual.test", ct: Ct);
        Assert.Equal(DnsOutcome.Ok, both.Outcome);
        Assert.Contains(IPAddress.Parse("192.0.2.7"), both.Records);
        Assert.Contains(IPAddress.Parse("2001:db8::7"), both.Records);

        var v6only = await _resolver.AddressesAsync("dual.test", ipv4: false, ct: Ct);
        Assert.Equal(IPAddress.Parse("2001:db8::7"), Assert.Single(v6only.Records));

        Assert.Equal(DnsOutcome.NoData, (await _resolver.AddressesAsync("v4.test", ipv4: false, ct: Ct)).Outcome);
        Assert.Equal(DnsOutcome.NxDomain, (await _resolver.AddressesAsync("none.test", ct: Ct)).Outcome);
        Assert.Equal(IPAddress.Loopback, Assert.Single((await _resolver.AddressesAsync("127.0.0.1", ct: Ct)).Records));

        _dns.SetFault("fail.test", DnsFault.ServFail);
        Assert.Equal(DnsOutcome.TempFail, (await _resolver.AddressesAsync("fail.test", ct: Ct)).Outcome);
    }

    [Fact]
    public async Task Tlsa_and_ad_bit()
    {
        var data = Convert.FromHexString("0102030405060708090a0b0c0d0e0f101112131415161718191a1b1c1d1e1f20");
        _dns.AddTlsa("_25._tcp.mx.example.test", 3, 1, 1, data);
        var unsigned = await _resolver.TlsaAsync("_25._tcp.mx.example.test", Ct);
        Assert.Equal(DnsOutcome.Ok, unsigned.Outcome);
        Assert.False(unsigned.Authenticated);
        var rr = Assert.Single(unsigned.Records);
        Assert.Equal((3, 1, 1), (rr.Usage, rr.Selector, rr.MatchingType));
        Assert.Equal(data, rr.Data);

        _dns.AuthenticatedData = true;
        var signed = await _resolver.TlsaAsync("_25._tcp.mx.example.test", Ct);
        Assert.True(signed.Authenticated);
    }

    [Fact]
    public async Task Truncated_udp_answer_falls_back_to_tcp()
    {
        _dns.MaxUdpPayload = 512;
        var big = new string('x', 200);
        for (var i = 0; i < 10; i++) _dns.AddTxt("big.test", $"{i}{big}", big);
        var answer = await _resolver.TxtAsync("big.test", Ct);
        Assert.Equal(DnsOutcome.Ok, answer.Outcome);
        Assert.Equal(10, answer.Records.Count);
        Assert.True(_dns.TcpQueries >= 1);
    }

    [Fact]
    public async Task Cancellation_is_honoured()
    {
        _dns.SetFault("slow.test", DnsFault.Drop);
        var resolver = new DnsClientResolver(DnsResolverOptions.ForServer(_dns.EndPoint, TimeSpan.FromSeconds(30)));
        using var cts = new CancellationTokenSource(TimeSpan.FromMilliseconds(200));
        await Assert.ThrowsAnyAsync<OperationCanceledException>(() => resolver.TxtAsync("slow.test", cts.Token));
    }

    /// <summary>A resolver with the cache on (as the gateway runs it) and a clock the test moves.</summary>
    private (DnsClientResolver Resolver, ManualClock Clock) Caching(bool useCache = true)
    {
        var clock = new ManualClock();
        return (new DnsClientResolver(DnsResolverOptions.ForServer(_dns.EndPoint, TimeSpan.FromSeconds(3), retries: 1, useCache: useCache), clock), clock);
    }

    [Fact]
    public async Task Negative_answers_with_an_soa_are_cached_for_its_ttl()
    {
        // RFC 2308 §5: NODATA and NXDOMAIN are kept for min(SOA TTL, SOA MINIMUM).
        _dns.NegativeTtl = 300;
        _dns.AddA("mx.example.test", "192.0.2.25");
        var (resolver, clock) = Caching();

        var first = await resolver.AddressesAsync("mx.example.test", ct: Ct); // A answer + AAAA NODATA
        Assert.Equal(IPAddress.Parse("192.0.2.25"), Assert.Single(first.Records));
        Assert.Equal(DnsOutcome.NxDomain, (await resolver.TxtAsync("gone.example.test", Ct)).Outcome);
        var asked = (_dns.QueryCount("mx.example.test"), _dns.QueryCount("gone.example.test"));
        Assert.Equal((2, 1), asked);

        clock.Advance(TimeSpan.FromSeconds(299));
        var again = await resolver.AddressesAsync("mx.example.test", ct: Ct);
        Assert.Equal(DnsOutcome.Ok, again.Outcome);
        Assert.Equal(IPAddress.Parse("192.0.2.25"), Assert.Single(again.Records));
        Assert.Equal(DnsOutcome.NoData, (await resolver.AddressesAsync("mx.example.test", ipv4: false, ct: Ct)).Outcome);
        Assert.Equal(DnsOutcome.NxDomain, (await resolver.TxtAsync("gone.example.test", Ct)).Outcome);
        Assert.Equal(asked, (_dns.QueryCount("mx.example.test"), _dns.QueryCount("gone.example.test")));

        // Expired: asked again, and the new answer is taken.
        _dns.AddAaaa("mx.example.test", "2001:db8::25");
        _dns.AddTxt("gone.example.test", "now here");
        clock.Advance(TimeSpan.FromSeconds(2));
        Assert.Equal(IPAddress.Parse("2001:db8::25"), Assert.Single((await resolver.AddressesAsync("mx.example.test", ipv4: false, ct: Ct)).Records));
        Assert.Equal(DnsOutcome.Ok, (await resolver.TxtAsync("gone.example.test", Ct)).Outcome);
        Assert.Equal((3, 2), (_dns.QueryCount("mx.example.test"), _dns.QueryCount("gone.example.test")));
    }

    [Fact]
    public async Task Negative_answers_without_an_soa_failures_and_an_uncached_resolver_always_ask()
    {
        _dns.AddA("v4.example.test", "192.0.2.4");
        var (resolver, _) = Caching();
        // No SOA with the NODATA (RFC 2308 §5: SHOULD NOT cache).
        for (var i = 0; i < 2; i++)
            Assert.Equal(DnsOutcome.NoData, (await resolver.AddressesAsync("v4.example.test", ipv4: false, ct: Ct)).Outcome);
        Assert.Equal(2, _dns.QueryCount("v4.example.test"));

        _dns.NegativeTtl = 300;
        // A failure is never an answer to keep.
        _dns.SetFault("flaky.example.test", DnsFault.ServFail);
        Assert.Equal(DnsOutcome.TempFail, (await resolver.TxtAsync("flaky.example.test", Ct)).Outcome);
        _dns.SetFault("flaky.example.test", DnsFault.None);
        _dns.AddTxt("flaky.example.test", "v=STSv1; id=1");
        Assert.Equal(DnsOutcome.Ok, (await resolver.TxtAsync("flaky.example.test", Ct)).Outcome);

        // Cache off (the domain checker's fresh look): every question reaches the server.
        var (uncached, _) = Caching(useCache: false);
        for (var i = 0; i < 2; i++)
            Assert.Equal(DnsOutcome.NxDomain, (await uncached.TxtAsync("nothing.example.test", Ct)).Outcome);
        Assert.Equal(2, _dns.QueryCount("nothing.example.test"));
    }

    private sealed class ManualClock : TimeProvider
    {
        private DateTimeOffset _now = new(2026, 12, 2, 0, 0, 0, TimeSpan.Zero);
        public override DateTimeOffset GetUtcNow() => _now;
        public void Advance(TimeSpan by) => _now += by;
    }

    private static int FreeUdpPort()
    {
        using var u = new System.Net.Sockets.UdpClient(new IPEndPoint(IPAddress.Loopback, 0));
        return ((IPEndPoint)u.Client.LocalEndPoint!).Port;
    }
}
