using MtaSts.Actors.Policy.Cache;
using MtaSts.Actors.Policy.Fetch;
using MtaSts.Actors.Policy.Resolution;
using MtaSts.Actors.Policy.Tests.Fetch;
using MtaSts.Actors.TestInfra.Dns;
using MtaSts.Actors.TestInfra.Http;
using MtaSts.Actors.TestInfra.Proxy;

namespace MtaSts.Actors.Policy.Tests.Resolution;

public sealed class PolicyResolverTests : IAsyncLifetime
{
    private const string Domain = "example.test";
    private PolicyTestBed _bed = null!;
    private readonly ManualTimeProvider _time = new();
    private readonly List<IAsyncDisposable> _resolvers = new();
    private readonly List<PolicyStore> _stores = new();

    public async Task InitializeAsync() => _bed = await PolicyTestBed.StartAsync();

    public async Task DisposeAsync()
    {
        foreach (var r in _resolvers) await r.DisposeAsync();
        foreach (var s in _stores) s.Dispose();
        await _bed.DisposeAsync();
    }

    private static string Policy(string mode = "enforce", long maxAge = 86400, string mx = "mx.example.test") =>
        $"version: STSv1\nmode: {mode}\n" + (mode == "none" ? "" : $"mx: {mx}\n") + $"max_age: {maxAge}\n";

    private PolicyResolver Resolver(PolicyStore? store = null, PolicyFetcher? fetcher = null, PolicyResolverOptions? options = null)
    {
        store ??= PolicyStore.InMemory();
        _stores.Add(store);
        var r = new PolicyResolver(_bed.Resolver, fetcher ?? _bed.Fetcher(timeout: TimeSpan.FromSeconds(15)), store, _bed.Log, options, _time);
        _resolvers.Add(r);
        return r;
    }

    private static Task<PolicyResolution> Resolve(PolicyResolver r, PolicyResolveOptions? o = null) =>
        r.ResolveAsync(Domain, o ?? PolicyResolveOptions.Default, PolicyTestBed.Ct());

    [Fact]
    public async Task First_call_fetches_then_cache_is_used_while_id_is_unchanged()
    {
        _bed.Publish(Domain, "20260101", PolicyRoute.Policy(Policy()));
        var r = Resolver();

        var first = await Resolve(r);
        Assert.Equal(PolicyResolutionKind.Policy, first.Kind);
        Assert.Equal(PolicySource.Fetched, first.Source);
        Assert.Equal("20260101", first.PolicyId);
        Assert.Equal(StsMode.Enforce, first.Policy!.Mode);
        Assert.Equal(_time.GetUtcNow().AddSeconds(86400), first.ExpiresAt);

        _time.Advance(TimeSpan.FromHours(1));
        var second = await Resolve(r);
        Assert.Equal(PolicySource.Cache, second.Source);
        Assert.Equal(first.Policy, second.Policy);
        Assert.Equal(1, _bed.Https.Requests(Domain));
        Assert.Equal(2, _bed.Dns.QueryCount("_mta-sts." + Domain)); // TXT every time

        Assert.Contains($"Info: Successfully fetched MTA-STS TXT record for domain({Domain})", _bed.Lines);
        Assert.Contains($"Debug: Valid cache entry found for the domain ({Domain}).", _bed.Lines);
        var m = r.Metrics;
        Assert.Equal((2L, 1L, 1L, 0L), (m.Resolutions, m.CacheHits, m.Fetches, m.FetchFailures));
    }

    [Fact]
    public async Task New_id_triggers_a_fetch_and_replaces_the_policy()
    {
        _bed.Publish(Domain, "1", PolicyRoute.Policy(Policy(mx: "old.example.test")));
        var r = Resolver();
        Assert.Equal("old.example.test", (await Resolve(r)).Policy!.Mx[0].Pattern);

        _bed.Publish(Domain, "2", PolicyRoute.Policy(Policy(mx: "new.example.test")));
        var res = await Resolve(r);
        Assert.Equal(PolicySource.Fetched, res.Source);
        Assert.Equal("2", res.PolicyId);
        Assert.Equal("new.example.test", res.Policy!.Mx[0].Pattern);
        Assert.Equal("2", r.Store.Get(Domain)!.PolicyId);
    }

    [Fact]
    public async Task Fetched_mode_none_replaces_enforce_at_once()
    {
        _bed.Publish(Domain, "1", PolicyRoute.Policy(Policy("enforce")));
        var r = Resolver();
        await Resolve(r);
        _bed.Publish(Domain, "2", PolicyRoute.Policy(Policy("none")));
        var res = await Resolve(r);
        Assert.Equal(PolicyResolutionKind.Policy, res.Kind);
        Assert.Equal(StsMode.None, res.Policy!.Mode);
        Assert.Equal(StsMode.None, res.EffectiveMode);
        Assert.Equal(StsMode.None, r.Store.Get(Domain)!.Policy.Mode);
    }

    [Fact]
    public async Task Expired_entry_is_refetched_even_with_the_same_id()
    {
        _bed.Publish(Domain, "1", PolicyRoute.Policy(Policy(maxAge: 1)));
        var r = Resolver();
        await Resolve(r);
        Assert.Equal(PolicySource.Cache, (await Resolve(r)).Source);
        _time.Advance(TimeSpan.FromSeconds(2)); // F07: max_age 1 → not applied after 1 s
        Assert.Equal(PolicySource.Fetched, (await Resolve(r)).Source);
        Assert.Equal(2, _bed.Https.Requests(Domain));
    }

    [Fact]
    public async Task Failed_fetch_of_a_new_id_falls_back_to_the_cached_policy()
    {
        _bed.Publish(Domain, "1", PolicyRoute.Policy(Policy()));
        var r = Resolver();
        var good = await Resolve(r);

        _bed.Publish(Domain, "2", PolicyRoute.Status(500));
        var res = await Resolve(r);
        Assert.Equal(PolicyResolutionKind.Policy, res.Kind);
        Assert.Equal(PolicySource.FallbackCached, res.Source);
        Assert.Equal("1", res.PolicyId);
        Assert.Equal(good.Policy, res.Policy);
        Assert.Equal(TlsRptResultType.StsPolicyFetchError, res.FailureType);
        Assert.Contains("HTTP 500", res.Error);
        Assert.Equal("1", r.Store.Get(Domain)!.PolicyId);
        Assert.Contains($"Info: Failure encountered while fetching MTA-STS policy for the domain({Domain})", _bed.Lines);
        Assert.Contains($"Info: Using cached MTA-STS policy for the domain ({Domain}) (fallback-to-cached-policy)", _bed.Lines);

        // Within 5 minutes: negative cache, still the cached policy, no new request.
        var again = await Resolve(r);
        Assert.Equal(PolicySource.FallbackCached, again.Source);
        Assert.True(again.NegativeCacheHit);
        Assert.Equal(2, _bed.Https.Requests(Domain));
    }

    [Theory]
    [InlineData(DnsFault.ServFail)]
    [InlineData(DnsFault.Refused)]
    [InlineData(DnsFault.Drop)]
    public async Task Txt_tempfail_uses_valid_cache_else_tempfail(DnsFault fault)
    {
        _bed.Publish(Domain, "1", PolicyRoute.Policy(Policy()));
        var withCache = Resolver();
        await Resolve(withCache);
        _bed.Dns.SetFault("_mta-sts." + Domain, fault);

        var fallback = await Resolve(withCache);
        Assert.Equal(PolicySource.FallbackCached, fallback.Source);
        Assert.Equal(PolicyResolutionKind.Policy, fallback.Kind);
        Assert.Null(fallback.FailureType);
        Assert.Contains("TXT lookup", fallback.Error);

        var empty = Resolver();
        var temp = await Resolve(empty);
        Assert.Equal(PolicyResolutionKind.TempFail, temp.Kind);
        Assert.Null(temp.Policy);
        Assert.Equal(1, _bed.Https.Requests(Domain));
        Assert.True(empty.Metrics.TxtTempFails >= 1);
    }

    [Fact]
    public async Task Txt_nxdomain_or_nodata_keeps_a_valid_cached_policy()
    {
        _bed.Publish(Domain, "1", PolicyRoute.Policy(Policy()));
        var r = Resolver();
        await Resolve(r);

        _bed.Dns.Remove("_mta-sts." + Domain); // NXDOMAIN (F01)
        var nx = await Resolve(r);
        Assert.Equal(PolicySource.FallbackCached, nx.Source);
        Assert.Contains("NXDOMAIN", nx.Error);

        _bed.Dns.AddA("_mta-sts." + Domain, "192.0.2.1"); // NODATA for TXT
        var nodata = await Resolve(r);
        Assert.Equal(PolicySource.FallbackCached, nodata.Source);
        Assert.Contains("NODATA", nodata.Error);

        _time.Advance(TimeSpan.FromDays(2)); // cached policy expired: now really no policy
        var gone = await Resolve(r);
        Assert.Equal(PolicyResolutionKind.NoPolicy, gone.Kind);
        Assert.Null(gone.FailureType);
    }

    [Fact]
    public async Task No_record_or_invalid_record_is_no_policy()
    {
        var r = Resolver();
        var none = await Resolve(r);
        Assert.Equal(PolicyResolutionKind.NoPolicy, none.Kind);
        Assert.Null(none.FailureType);

        _bed.Dns.AddTxt("_mta-sts." + Domain, "v=STSv1; id=1").AddTxt("_mta-sts." + Domain, "v=STSv1; id=2"); // T16
        var multiple = await Resolve(r);
        Assert.Equal(PolicyResolutionKind.NoPolicy, multiple.Kind);
        Assert.NotNull(multiple.Error);
        Assert.Equal(0, _bed.Https.TotalRequests);
    }

    [Fact]
    public async Task Bare_version_record_is_discarded_and_the_other_record_is_used()
    {
        // RFC 8461 §3.1: "v=STSv1" does not begin with "v=STSv1;", so it is discarded before counting.
        _bed.Publish(Domain, "1", PolicyRoute.Policy(Policy()));
        _bed.Dns.AddTxt("_mta-sts." + Domain, "v=STSv1");
        var res = await Resolve(Resolver());
        Assert.Equal(PolicyResolutionKind.Policy, res.Kind);
        Assert.Equal("1", res.PolicyId);
        Assert.Equal(1, _bed.Https.Requests(Domain));
    }

    [Fact]
    public async Task Invalid_txt_does_not_erase_a_valid_cached_policy()
    {
        _bed.Publish(Domain, "1", PolicyRoute.Policy(Policy()));
        var r = Resolver();
        await Resolve(r);
        _bed.Dns.Remove("_mta-sts." + Domain).AddTxt("_mta-sts." + Domain, "v=STSv1; id=not-alnum");
        var res = await Resolve(r);
        Assert.Equal(PolicySource.FallbackCached, res.Source);
        Assert.Equal("1", res.PolicyId);
    }

    [Fact]
    public async Task Txt_behind_cname_chain_is_followed()
    {
        _bed.Publish(Domain, "1", PolicyRoute.Policy(Policy()));
        _bed.Dns.Remove("_mta-sts." + Domain)
            .AddCname("_mta-sts." + Domain, "_mta-sts.b.cnames.test")
            .AddCname("_mta-sts.b.cnames.test", "_mta-sts.c.cnames.test")
            .AddTxt("_mta-sts.c.cnames.test", "v=STSv1; id=", "viacname;"); // T18 + T24
        var res = await Resolve(Resolver());
        Assert.Equal(PolicySource.Fetched, res.Source);
        Assert.Equal("viacname", res.PolicyId);
    }

    [Fact]
    public async Task First_fetch_failure_is_no_policy_with_a_5_minute_negative_cache_per_id()
    {
        _bed.Publish(Domain, "1", cert: HostCertificate.Expired);
        var r = Resolver();
        var res = await Resolve(r);
        Assert.Equal(PolicyResolutionKind.NoPolicy, res.Kind); // F04
        Assert.Equal(TlsRptResultType.StsWebpkiInvalid, res.FailureType);
        Assert.Equal("1", res.PolicyId);
        Assert.False(res.NegativeCacheHit);

        _time.Advance(TimeSpan.FromMinutes(4));
        var neg = await Resolve(r);
        Assert.True(neg.NegativeCacheHit);
        Assert.Equal(TlsRptResultType.StsWebpkiInvalid, neg.FailureType);
        Assert.Equal(1, r.Metrics.Fetches);
        Assert.Equal(1, r.Metrics.NegativeHits);

        _bed.Dns.SetTxt("_mta-sts." + Domain, "v=STSv1; id=2;"); // a new id is tried at once
        var newId = await Resolve(r);
        Assert.False(newId.NegativeCacheHit);
        Assert.Equal(2, r.Metrics.Fetches);

        _bed.Publish(Domain, "2"); // fixed, but id 2 is negatively cached
        _time.Advance(TimeSpan.FromMinutes(1));
        Assert.True((await Resolve(r)).NegativeCacheHit);
        _time.Advance(TimeSpan.FromMinutes(5));
        var fixedRes = await Resolve(r);
        Assert.Equal(PolicySource.Fetched, fixedRes.Source);
        Assert.Equal(3, r.Metrics.Fetches);
    }

    /// <summary>A policy route that holds its answer until released (deterministic overlap, no sleeps).</summary>
    private static (PolicyRoute Route, TaskCompletionSource Release) GatedPolicy(string body)
    {
        var release = new TaskCompletionSource(TaskCreationOptions.RunContinuationsAsynchronously);
        var route = new PolicyRoute("gated policy", async (ctx, ct) =>
        {
            await release.Task.WaitAsync(ct);
            await PolicyRoute.Policy(body).Handler(ctx, ct);
        });
        return (route, release);
    }

    private static async Task Eventually(Func<bool> condition)
    {
        var deadline = DateTime.UtcNow.AddSeconds(30);
        while (!condition())
        {
            Assert.True(DateTime.UtcNow < deadline, "condition not reached within 30 s");
            await Task.Delay(20);
        }
    }

    [Fact]
    public async Task Concurrent_callers_share_one_resolution()
    {
        var (route, release) = GatedPolicy(Policy());
        _bed.Publish(Domain, "1", route);
        var r = Resolver();
        var calls = Enumerable.Range(0, 25).Select(_ => Task.Run(() => Resolve(r))).ToArray();
        await Eventually(() => r.Metrics.Resolutions == 25 && _bed.Https.Requests(Domain) == 1);
        release.SetResult();
        var results = await Task.WhenAll(calls);
        Assert.All(results, x => Assert.Equal(PolicySource.Fetched, x.Source));
        Assert.Equal(1, _bed.Https.Requests(Domain));
        Assert.Equal(1, _bed.Dns.QueryCount("_mta-sts." + Domain));
        Assert.Equal(1, r.Metrics.Fetches);
        Assert.Equal(24, r.Metrics.SharedInFlight);
    }

    [Fact]
    public async Task A_cancelled_caller_does_not_cancel_the_shared_resolution()
    {
        var (route, release) = GatedPolicy(Policy());
        _bed.Publish(Domain, "1", route);
        var r = Resolver();
        using var impatient = new CancellationTokenSource();
        var cancelled = r.ResolveAsync(Domain, PolicyResolveOptions.Default, impatient.Token);
        var patient = Resolve(r);
        await Eventually(() => _bed.Https.Requests(Domain) == 1);
        impatient.Cancel();
        await Assert.ThrowsAnyAsync<OperationCanceledException>(() => cancelled);
        release.SetResult();
        Assert.Equal(PolicySource.Fetched, (await patient).Source);
        Assert.Equal(1, _bed.Https.Requests(Domain));
    }

    [Fact]
    public async Task Cache_survives_a_restart()
    {
        var path = _bed.TempPath("state/mtasts.db");
        _bed.Publish(Domain, "1", PolicyRoute.Policy(Policy()));
        var store1 = PolicyStore.Open(path);
        var r1 = new PolicyResolver(_bed.Resolver, _bed.Fetcher(), store1, _bed.Log, time: _time);
        Assert.Equal(PolicySource.Fetched, (await Resolve(r1)).Source);
        await r1.DisposeAsync();
        store1.Dispose();

        // Restart: the policy host is now broken, the TXT id unchanged → cached policy applies (F06).
        _bed.Https.Serve(Domain, PolicyRoute.Status(503));
        var r2 = Resolver(PolicyStore.Open(path));
        var res = await Resolve(r2);
        Assert.Equal(PolicySource.Cache, res.Source);
        Assert.Equal(StsMode.Enforce, res.Policy!.Mode);
        Assert.Equal(1, _bed.Https.Requests(Domain));
    }

    [Fact]
    public async Task Refresh_refetches_entries_near_expiry_or_older_than_a_day()
    {
        _bed.Publish(Domain, "1", PolicyRoute.Policy(Policy(maxAge: 3 * 86400)));
        _bed.Publish("other.test", "1", PolicyRoute.Policy(Policy(maxAge: 3600)));
        var r = Resolver();
        await Resolve(r);
        await r.ResolveAsync("other.test", PolicyResolveOptions.Default, PolicyTestBed.Ct());
        var fetchedAt = r.Store.Get(Domain)!.FetchedAt;

        Assert.Equal(0, await r.RefreshDueAsync(PolicyTestBed.Ct()));

        _time.Advance(TimeSpan.FromMinutes(41)); // other.test: 19 of 60 minutes left (< 1/3)
        Assert.Equal(1, await r.RefreshDueAsync(PolicyTestBed.Ct()));
        Assert.Equal(2, _bed.Https.Requests("other.test"));
        Assert.Equal(1, _bed.Https.Requests(Domain));

        _time.Advance(TimeSpan.FromHours(24)); // example.test: older than a day; other.test expired but recently used
        Assert.Equal(2, await r.RefreshDueAsync(PolicyTestBed.Ct()));
        var refreshed = r.Store.Get(Domain)!;
        Assert.True(refreshed.FetchedAt > fetchedAt);
        Assert.Equal(refreshed.FetchedAt.AddSeconds(3 * 86400), refreshed.ExpiresAt);
        Assert.Equal(2, _bed.Https.Requests(Domain));
        Assert.Equal(3, r.Metrics.Refreshes);
    }

    [Fact]
    public async Task Refresh_failure_keeps_the_cache_and_alerts()
    {
        _bed.Publish(Domain, "1", PolicyRoute.Policy(Policy(maxAge: 3600)));
        var r = Resolver();
        await Resolve(r);
        _bed.Https.Serve(Domain, PolicyRoute.Status(500));
        _time.Advance(TimeSpan.FromMinutes(50));
        Assert.Equal(0, await r.RefreshDueAsync(PolicyTestBed.Ct()));
        Assert.Equal(1, r.Metrics.RefreshFailures);
        Assert.Equal("1", r.Store.Get(Domain)!.PolicyId);
        Assert.Contains($"Warning: MTA-STS policy refresh failed for the domain ({Domain})", _bed.Lines);
        Assert.Equal(PolicySource.Cache, (await Resolve(r)).Source);
    }

    [Fact]
    public async Task Unused_entries_are_not_refreshed_and_are_purged()
    {
        _bed.Publish(Domain, "1", PolicyRoute.Policy(Policy(maxAge: 86400)));
        var r = Resolver();
        await Resolve(r);
        _time.Advance(TimeSpan.FromDays(61));
        Assert.Equal(0, await r.RefreshDueAsync(PolicyTestBed.Ct()));
        Assert.Equal(1, _bed.Https.Requests(Domain));
        Assert.Null(r.Store.Get(Domain));
    }

    [Fact]
    public async Task Hung_proxy_gives_no_policy_with_the_vendor_log_lines()
    {
        await using var proxy = new HangingProxy();
        _bed.Publish(Domain, "1");
        var r = Resolver();
        var res = await Resolve(r, new PolicyResolveOptions { Proxy = proxy.Uri, ProxyConnectTimeout = TimeSpan.FromSeconds(1) });
        Assert.Equal(PolicyResolutionKind.NoPolicy, res.Kind);
        Assert.Equal(TlsRptResultType.StsPolicyFetchError, res.FailureType);
        var lines = _bed.Lines;
        Assert.Contains($"Info: Successfully fetched MTA-STS TXT record for domain({Domain})", lines);
        Assert.Contains($"Debug: Fetch MTA-STS policy for the domain({Domain})", lines);
        Assert.Contains("Debug: Requesting MTA-STS policy fetch via proxy", lines);
        Assert.Contains($"Debug: Request to fetch STS policy failed due to a connection timeout., for the domain {Domain}", lines);
        Assert.Contains($"Info: Failure encountered while fetching MTA-STS policy for the domain({Domain})", lines);
    }

    [TinyproxyFact]
    public async Task Resolves_through_tinyproxy()
    {
        _bed.Publish(Domain, "1", PolicyRoute.Policy(Policy()));
        await using var proxy = await TinyproxyInstance.StartAsync(
            new Dictionary<string, System.Net.IPAddress> { ["mta-sts." + Domain] = System.Net.IPAddress.Loopback });
        var res = await Resolve(Resolver(), new PolicyResolveOptions { Proxy = proxy.Uri });
        Assert.Equal(PolicySource.Fetched, res.Source);
        Assert.Equal(StsMode.Enforce, res.Policy!.Mode);
    }
}
