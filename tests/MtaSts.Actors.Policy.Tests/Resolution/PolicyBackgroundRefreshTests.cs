using MtaSts.Actors.Policy.Cache;
using MtaSts.Actors.Policy.Resolution;
using MtaSts.Actors.Policy.Tests.Fetch;
using MtaSts.Actors.TestInfra.Http;

namespace MtaSts.Actors.Policy.Tests.Resolution;

/// <summary>The resolver's background loop (RFC 8461 §3.3 proactive refresh, §5.1): a cached policy is re-fetched
/// before it expires, so the next message finds a valid policy and waits for no fetch; a failed refresh keeps the cached
/// policy and is retried after the minimum spacing. Time is a stepping clock: no sleeps decide the outcome.</summary>
public sealed class PolicyBackgroundRefreshTests : IAsyncLifetime
{
    private const string Domain = "refresh.test";
    private static readonly TimeSpan Generous = TimeSpan.FromSeconds(20);
    private PolicyTestBed _bed = null!;
    private readonly SteppingTimeProvider _time = new();
    private readonly PolicyStore _store = PolicyStore.InMemory();
    private PolicyResolver _resolver = null!;

    public async Task InitializeAsync()
    {
        _bed = await PolicyTestBed.StartAsync();
        _resolver = new PolicyResolver(_bed.Resolver, _bed.Fetcher(timeout: TimeSpan.FromSeconds(10)), _store, _bed.Log,
            new PolicyResolverOptions { RefreshJitter = 0 }, _time);
    }

    public async Task DisposeAsync()
    {
        await _resolver.DisposeAsync();
        _store.Dispose();
        await _bed.DisposeAsync();
    }

    private static string Policy(long maxAge) => $"version: STSv1\nmode: enforce\nmx: mx.{Domain}\nmax_age: {maxAge}\n";

    private Task<PolicyResolution> Resolve() => _resolver.ResolveAsync(Domain, PolicyResolveOptions.Default, PolicyTestBed.Ct());

    private async Task WaitForRequestsAsync(int n)
    {
        var deadline = DateTime.UtcNow + Generous;
        while (_bed.Https.Requests(Domain) < n)
        {
            if (DateTime.UtcNow > deadline) throw new TimeoutException($"{_bed.Https.Requests(Domain)} policy requests, expected {n}");
            await Task.Delay(20);
        }
    }

    [Fact]
    public async Task A_policy_near_expiry_is_refreshed_in_the_background_and_the_next_message_waits_for_no_fetch()
    {
        _bed.Publish(Domain, "1", PolicyRoute.Policy(Policy(maxAge: 3600)));
        _resolver.StartBackgroundRefresh();
        var t0 = _time.GetUtcNow();
        Assert.Equal(PolicySource.Fetched, (await Resolve()).Source);

        // 41 of 60 minutes: under a third of max_age left. Only the background loop fetches now (no message asks).
        _time.Advance(TimeSpan.FromMinutes(41));
        await WaitForRequestsAsync(2);
        var refreshed = await WaitForAsync(() => _store.Get(Domain) is { } e && e.FetchedAt > t0 ? e : null);
        Assert.Equal(t0 + TimeSpan.FromMinutes(41), refreshed.FetchedAt);
        Assert.Equal(t0 + TimeSpan.FromMinutes(101), refreshed.ExpiresAt);

        // Past the first fetch's expiry: a message finds the refreshed policy in the cache, no fetch.
        _time.Advance(TimeSpan.FromMinutes(20));
        var next = await Resolve();
        Assert.Equal(PolicySource.Cache, next.Source);
        Assert.Equal(StsMode.Enforce, next.Policy!.Mode);
        Assert.Equal(2, _bed.Https.Requests(Domain));
        Assert.Equal(1, _resolver.Metrics.Refreshes);
    }

    [Fact]
    public async Task A_failed_refresh_keeps_the_cached_policy_and_is_retried_after_the_minimum_spacing()
    {
        _bed.Publish(Domain, "1", PolicyRoute.Policy(Policy(maxAge: 3600)));
        _resolver.StartBackgroundRefresh();
        var t0 = _time.GetUtcNow();
        await Resolve();
        _bed.Https.Serve(Domain, PolicyRoute.Status(500));

        _time.Advance(TimeSpan.FromMinutes(41));
        await WaitForRequestsAsync(2);
        await WaitForAsync(() => _resolver.Metrics.RefreshFailures == 1 ? "" : null);

        // RFC 8461 §5.1: the cached policy stays in force until its max_age.
        var cached = _store.Get(Domain)!;
        Assert.Equal(t0, cached.FetchedAt);
        var during = await Resolve();
        Assert.Equal(PolicyResolutionKind.Policy, during.Kind);
        Assert.Equal(StsMode.Enforce, during.Policy!.Mode);
        Assert.Contains($"Warning: MTA-STS policy refresh failed for the domain ({Domain})", _bed.Lines);

        // Still due, but the next pass is RefreshMinSpacing (5 min) after the failed one, not at once.
        var failedPassEnd = _time.GetUtcNow();
        Assert.Equal(failedPassEnd + TimeSpan.FromMinutes(5), _resolver.NextPassAt(failedPassEnd, failedPassEnd, TimeSpan.FromHours(1)));

        _bed.Https.Serve(Domain, PolicyRoute.Policy(Policy(maxAge: 3600)));
        _time.Advance(TimeSpan.FromMinutes(5));
        await WaitForRequestsAsync(3);
        var refreshed = await WaitForAsync(() => _store.Get(Domain) is { } e && e.FetchedAt > t0 ? e : null);
        Assert.Equal(t0 + TimeSpan.FromMinutes(46), refreshed.FetchedAt);
    }

    [Fact]
    public async Task The_next_pass_is_planned_for_the_first_entry_that_falls_due_within_the_longest_wait()
    {
        _bed.Publish(Domain, "1", PolicyRoute.Policy(Policy(maxAge: 3600)));
        _bed.Publish("daily.test", "1", PolicyRoute.Policy(Policy(maxAge: 86400)));
        var t0 = _time.GetUtcNow();
        await _resolver.ResolveAsync("daily.test", PolicyResolveOptions.Default, PolicyTestBed.Ct());

        // daily.test falls due after 16 h (a third of max_age left): the longest wait (1 h) decides.
        Assert.Equal(t0 + TimeSpan.FromHours(1), _resolver.NextPassAt(t0, t0 - TimeSpan.FromHours(1), TimeSpan.FromHours(1)));

        await Resolve(); // max_age 1 h: due after 40 min
        Assert.Equal(t0 + TimeSpan.FromMinutes(40), _resolver.NextPassAt(t0, t0 - TimeSpan.FromHours(1), TimeSpan.FromHours(1)));
        Assert.Equal(t0 + TimeSpan.FromMinutes(40), _resolver.RefreshDueAt(_store.Get(Domain)!));
    }

    private static async Task<T> WaitForAsync<T>(Func<T?> probe) where T : class
    {
        var deadline = DateTime.UtcNow + Generous;
        while (true)
        {
            if (probe() is { } v) return v;
            if (DateTime.UtcNow > deadline) throw new TimeoutException("condition not reached");
            await Task.Delay(20);
        }
    }
}
