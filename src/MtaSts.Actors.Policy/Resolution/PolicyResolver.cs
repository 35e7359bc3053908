using System.Collections.Concurrent;
using MtaSts.Actors.Dns;
using MtaSts.Actors.Logging;
using MtaSts.Actors.Policy.Cache;
using MtaSts.Actors.Policy.Fetch;
using MtaSts.Actors.Policy.Parsing;

namespace MtaSts.Actors.Policy.Resolution;

/// <summary>Settings of <see cref="PolicyResolver"/>.</summary>
public sealed record PolicyResolverOptions
{
    /// <summary>RFC 8461 §3.3: after a failed fetch, wait at least 5 minutes per (domain, policy id).</summary>
    public TimeSpan NegativeCacheTime { get; init; } = TimeSpan.FromMinutes(5);

    /// <summary>Longest wait between two background refresh passes (jittered). A pass also runs as soon as a cached
    /// entry falls due (see <see cref="PolicyResolver.RefreshDueAt"/>), so a short max_age is refreshed before it runs out.</summary>
    public TimeSpan RefreshInterval { get; init; } = TimeSpan.FromHours(1);

    /// <summary>Shortest wait between the end of one pass and the next: an entry whose refresh failed stays due, and its
    /// policy host is not asked again sooner than the negative cache time of RFC 8461 §3.3 (5 minutes).</summary>
    public TimeSpan RefreshMinSpacing { get; init; } = TimeSpan.FromMinutes(5);

    /// <summary>±fraction of <see cref="RefreshInterval"/> applied at random to each period.</summary>
    public double RefreshJitter { get; init; } = 0.2;

    /// <summary>Refresh when less than this fraction of max_age is left…</summary>
    public double RefreshWhenRemainingFraction { get; init; } = 1.0 / 3.0;

    /// <summary>…or when the entry is older than this (RFC 8461 §3.3 suggests daily refresh).</summary>
    public TimeSpan RefreshWhenOlderThan { get; init; } = TimeSpan.FromHours(24);

    /// <summary>Stop refreshing domains not used for this long (they expire and are purged).</summary>
    public TimeSpan RefreshOnlyIfUsedWithin { get; init; } = TimeSpan.FromDays(30);

    /// <summary>Purge entries expired and unused for this long.</summary>
    public TimeSpan PurgeAfter { get; init; } = TimeSpan.FromDays(30);

    public int RefreshConcurrency { get; init; } = 8;

    /// <summary>Options for refreshes of domains not resolved since start (after a restart).</summary>
    public PolicyResolveOptions DefaultResolveOptions { get; init; } = PolicyResolveOptions.Default;
}

/// <summary>
/// The engine's entry point to MTA-STS (RFC 8461 §3, §5.1): TXT lookup every time (the DNS resolver caches by TTL),
/// cached policy when the id is unchanged, fetch on a new id or expiry, 5-minute negative cache per (domain, id),
/// fallback to a still-valid cached policy on any failure, single flight per domain, proactive refresh.
/// Async, no Akka. The clock is injectable (<see cref="TimeProvider"/>) so tests can move time.
/// </summary>
public sealed class PolicyResolver : IAsyncDisposable
{
    private readonly IDnsResolver _dns;
    private readonly IPolicyFetcher _fetcher;
    private readonly PolicyStore _store;
    private readonly MailLog _log;
    private readonly PolicyResolverOptions _options;
    private readonly TimeProvider _time;
    private readonly CancellationTokenSource _lifetime = new();
    private readonly ConcurrentDictionary<string, Task<PolicyResolution>> _inFlight = new(StringComparer.Ordinal);
    private readonly ConcurrentDictionary<(string Domain, string Id), NegativeEntry> _negative = new();
    private readonly ConcurrentDictionary<string, PolicyResolveOptions> _lastOptions = new(StringComparer.Ordinal);
    private Task? _refreshLoop;
    // The background loop sleeps until _nextPassTicks; a newly cached policy due earlier completes _wake (RFC 8461 §5.1).
    private TaskCompletionSource _wake = new(TaskCreationOptions.RunContinuationsAsynchronously);
    private long _nextPassTicks = long.MaxValue;

    private long _resolutions, _shared, _hits, _fetches, _fetchFailures, _negativeHits, _fallbacks, _txtTempFails, _refreshes, _refreshFailures;

    private sealed record NegativeEntry(DateTimeOffset Until, TlsRptResultType? FailureType, string? Error);

    public PolicyResolver(IDnsResolver dns, IPolicyFetcher fetcher, PolicyStore store, MailLog log,
        PolicyResolverOptions? options = null, TimeProvider? time = null)
    {
        _dns = dns;
        _fetcher = fetcher;
        _store = store;
        _log = log;
        _options = options ?? new PolicyResolverOptions();
        _time = time ?? TimeProvider.System;
    }

    public PolicyStore Store => _store;

    public PolicyResolverMetrics Metrics => new(
        Interlocked.Read(ref _resolutions), Interlocked.Read(ref _shared), Interlocked.Read(ref _hits),
        Interlocked.Read(ref _fetches), Interlocked.Read(ref _fetchFailures), Interlocked.Read(ref _negativeHits),
        Interlocked.Read(ref _fallbacks), Interlocked.Read(ref _txtTempFails), Interlocked.Read(ref _refreshes),
        Interlocked.Read(ref _refreshFailures));

    /// <summary>Resolves the domain's policy. Concurrent calls for one domain share one resolution; cancelling
    /// <paramref name="ct"/> abandons only this caller's wait. Never throws for DNS/HTTP problems: they are in the result.</summary>
    /// <exception cref="ArgumentException">Not a domain name (the message says why).</exception>
    public Task<PolicyResolution> ResolveAsync(string domain, PolicyResolveOptions options, CancellationToken ct) =>
        ResolveAsync(DestinationDomain.TryParse(domain, out var d, out var error) ? d : throw new ArgumentException(error, nameof(domain)),
            options, ct);

    /// <inheritdoc cref="ResolveAsync(string, PolicyResolveOptions, CancellationToken)"/>
    public Task<PolicyResolution> ResolveAsync(DestinationDomain domain, PolicyResolveOptions options, CancellationToken ct)
    {
        ArgumentNullException.ThrowIfNull(options);
        var key = domain.Name;
        if (key.Length == 0) throw new ArgumentException("empty domain", nameof(domain));
        Interlocked.Increment(ref _resolutions);
        _lastOptions[key] = options;
        return Shared(key, options, forceFetch: false).WaitAsync(ct);
    }

    /// <summary>Operator "policy refresh": the TXT lookup and the policy fetch now, even when the cached policy's id is
    /// current or the last fetch failed recently (negative cache). Joins a resolution already running for the domain.</summary>
    public Task<PolicyResolution> RefreshAsync(DestinationDomain domain, PolicyResolveOptions options, CancellationToken ct)
    {
        ArgumentNullException.ThrowIfNull(options);
        Interlocked.Increment(ref _resolutions);
        _lastOptions[domain.Name] = options;
        return Shared(domain.Name, options, forceFetch: true).WaitAsync(ct);
    }

    private Task<PolicyResolution> Shared(string domain, PolicyResolveOptions options, bool forceFetch)
    {
        while (true)
        {
            if (_inFlight.TryGetValue(domain, out var running))
            {
                Interlocked.Increment(ref _shared);
                return running;
            }
            var tcs = new TaskCompletionSource<PolicyResolution>(TaskCreationOptions.RunContinuationsAsynchronously);
            if (!_inFlight.TryAdd(domain, tcs.Task)) continue;
            _ = RunAsync(domain, options, forceFetch, tcs);
            return tcs.Task;
        }
    }

    private async Task RunAsync(string domain, PolicyResolveOptions options, bool forceFetch, TaskCompletionSource<PolicyResolution> tcs)
    {
        PolicyResolution result;
        try
        {
            // Yield so that the caller (and any joiner) is registered before the work starts.
            await Task.Yield();
            result = await ResolveCoreAsync(domain, options, forceFetch, _lifetime.Token).ConfigureAwait(false);
        }
        catch (OperationCanceledException) when (_lifetime.IsCancellationRequested)
        {
            result = new PolicyResolution(PolicyResolutionKind.TempFail, null, null, PolicySource.None, null,
                "policy resolver stopped") { Domain = domain };
        }
        catch (Exception ex)
        {
            // A bug or an unexpected library exception: defer rather than deliver as if there were no policy.
            _log.Warning("mtasts_resolve_error", $"MTA-STS policy resolution for the domain ({domain}) failed: {ex.Message}",
                ("domain", domain), ("error", ex.ToString()));
            result = new PolicyResolution(PolicyResolutionKind.TempFail, null, null, PolicySource.None, null,
                $"internal error: {ex.Message}") { Domain = domain };
        }
        // Leave the in-flight table before completing: a caller resumed by this result that resolves again must start
        // a new resolution (a changed TXT id), not join this finished one (seen in CI: the old id answered once more).
        _inFlight.TryRemove(new KeyValuePair<string, Task<PolicyResolution>>(domain, tcs.Task));
        tcs.TrySetResult(result);
    }

    private async Task<PolicyResolution> ResolveCoreAsync(string domain, PolicyResolveOptions options, bool forceFetch, CancellationToken ct)
    {
        var now = _time.GetUtcNow();
        var cached = _store.Get(domain);
        var valid = cached is not null && cached.IsValidAt(now) ? cached : null;

        // §3.1: TXT first, every time; its id tells whether the cached policy is current.
        var txt = await _dns.TxtAsync("_mta-sts." + domain, ct).ConfigureAwait(false);
        switch (txt.Outcome)
        {
            case DnsOutcome.TempFail:
                Interlocked.Increment(ref _txtTempFails);
                if (valid is not null)
                    return Fallback(domain, valid, null, $"TXT lookup of _mta-sts.{domain} failed: {txt.Error}", now);
                _log.Info("mtasts_txt_tempfail", $"MTA-STS TXT lookup failed temporarily for domain({domain})",
                    ("domain", domain), ("error", txt.Error));
                return new PolicyResolution(PolicyResolutionKind.TempFail, null, null, PolicySource.None, null,
                    $"TXT lookup of _mta-sts.{domain} failed: {txt.Error}") { Domain = domain };

            case DnsOutcome.NxDomain or DnsOutcome.NoData:
                // §3.1 note / F01: a vanished record does not remove a cached policy; it runs out at max_age
                // (§8.3: removal is announced with mode none first).
                var what = txt.Outcome == DnsOutcome.NxDomain ? "NXDOMAIN" : "NODATA";
                if (valid is not null)
                    return Fallback(domain, valid, null, $"no _mta-sts TXT record ({what}); cached policy applies until it expires", now);
                _log.Debug("mtasts_txt_none", $"No MTA-STS TXT record for domain({domain})", ("domain", domain), ("rcode", what));
                return NoPolicy(domain, null, null, $"no _mta-sts TXT record ({what})");
        }

        var selected = StsTxtParser.Select(txt.Records);
        if (!selected.Ok)
        {
            // §3.1: not exactly one valid STSv1 record = no available policy, but a cached one stays.
            if (valid is not null)
                return Fallback(domain, valid, null, $"unusable _mta-sts TXT record: {selected.Error}", now);
            _log.Info("mtasts_txt_invalid", $"Invalid MTA-STS TXT record for domain({domain})",
                ("domain", domain), ("error", selected.Error));
            return NoPolicy(domain, null, null, $"unusable _mta-sts TXT record: {selected.Error}");
        }

        var id = selected.Value!.Id;
        _log.Info("mtasts_txt_ok", $"Successfully fetched MTA-STS TXT record for domain({domain})", ("domain", domain), ("id", id));

        if (!forceFetch && valid is not null && valid.PolicyId == id)
        {
            Interlocked.Increment(ref _hits);
            _store.Touch(domain, now);
            _log.Debug("mtasts_cache_hit", $"Valid cache entry found for the domain ({domain}).", ("domain", domain), ("id", id),
                ("expires_at", valid.ExpiresAt));
            return Applied(domain, valid, PolicySource.Cache);
        }

        var negKey = (domain, id);
        if (!forceFetch && _negative.TryGetValue(negKey, out var neg))
        {
            if (neg.Until > now)
            {
                Interlocked.Increment(ref _negativeHits);
                if (valid is not null)
                    return Fallback(domain, valid, neg.FailureType, neg.Error, now) with { NegativeCacheHit = true };
                _log.Debug("mtasts_negative_hit", $"MTA-STS policy fetch for the domain({domain}) failed recently; not retrying before {neg.Until:u}",
                    ("domain", domain), ("id", id), ("until", neg.Until));
                return NoPolicy(domain, id, neg.FailureType, neg.Error) with { NegativeCacheHit = true };
            }
            _negative.TryRemove(new KeyValuePair<(string, string), NegativeEntry>(negKey, neg));
        }

        Interlocked.Increment(ref _fetches);
        var fetched = await _fetcher.FetchAsync(domain, new PolicyFetchRequest
        {
            Proxy = options.Proxy,
            LenientContentType = options.LenientContentType,
            Timeout = options.FetchTimeout,
            ConnectTimeout = options.ConnectTimeout,
            ProxyConnectTimeout = options.ProxyConnectTimeout,
        }, ct).ConfigureAwait(false);
        var after = _time.GetUtcNow();

        if (fetched.Ok)
        {
            // §3.3 / F05: a new policy (also mode none) replaces the cached one at once; max_age counts from now.
            var entry = new CachedPolicy(domain, id, fetched.Body ?? "", fetched.Policy!, after,
                after + TimeSpan.FromSeconds(fetched.Policy!.MaxAgeSeconds), after);
            _store.Put(entry);
            if (RefreshDueAt(entry).UtcTicks < Interlocked.Read(ref _nextPassTicks))
                Interlocked.Exchange(ref _wake, new TaskCompletionSource(TaskCreationOptions.RunContinuationsAsynchronously)).TrySetResult();
            _negative.TryRemove(negKey, out _);
            _log.Info("mtasts_policy_updated",
                $"MTA-STS policy for the domain ({domain}) cached: id {id} mode {entry.Policy.Mode.ToWireString()} max_age {entry.Policy.MaxAgeSeconds}",
                ("domain", domain), ("id", id), ("mode", entry.Policy.Mode.ToWireString()), ("max_age", entry.Policy.MaxAgeSeconds),
                ("previous_id", cached?.PolicyId));
            return Applied(domain, entry, PolicySource.Fetched);
        }

        Interlocked.Increment(ref _fetchFailures);
        _negative[negKey] = new NegativeEntry(after + _options.NegativeCacheTime, fetched.FailureType, fetched.Error);
        PruneNegative(after);
        if (valid is not null)
            return Fallback(domain, valid, fetched.FailureType, fetched.Error, after);
        // §3.3 / F04: first fetch failed and nothing cached: no policy (reported), retried after the negative time.
        return NoPolicy(domain, id, fetched.FailureType, fetched.Error);
    }

    private PolicyResolution Applied(string domain, CachedPolicy entry, PolicySource source) =>
        new(PolicyResolutionKind.Policy, entry.Policy, entry.PolicyId, source, null, null)
        { Domain = domain, ExpiresAt = entry.ExpiresAt };

    private PolicyResolution Fallback(string domain, CachedPolicy entry, TlsRptResultType? failure, string? error, DateTimeOffset now)
    {
        Interlocked.Increment(ref _fallbacks);
        _store.Touch(domain, now);
        _log.Info("mtasts_fallback_cached", $"Using cached MTA-STS policy for the domain ({domain}) (fallback-to-cached-policy)",
            ("domain", domain), ("id", entry.PolicyId), ("expires_at", entry.ExpiresAt), ("reason", error),
            ("result_type", failure?.ToWireString()));
        return new PolicyResolution(PolicyResolutionKind.Policy, entry.Policy, entry.PolicyId, PolicySource.FallbackCached, failure, error)
        { Domain = domain, ExpiresAt = entry.ExpiresAt };
    }

    private static PolicyResolution NoPolicy(string domain, string? id, TlsRptResultType? failure, string? error) =>
        new(PolicyResolutionKind.NoPolicy, null, id, PolicySource.None, failure, error) { Domain = domain };

    private void PruneNegative(DateTimeOffset now)
    {
        if (_negative.Count < 10_000) return;
        foreach (var kv in _negative)
            if (kv.Value.Until <= now) _negative.TryRemove(kv);
    }

    // ---- proactive refresh (RFC 8461 §3.3: "SHOULD proactively refresh", suggested daily) ----

    /// <summary>Whether an entry is due for a proactive refresh at <paramref name="now"/>.</summary>
    public bool IsRefreshDue(CachedPolicy entry, DateTimeOffset now) =>
        now - entry.LastChecked <= _options.RefreshOnlyIfUsedWithin && RefreshDueAt(entry) <= now;

    /// <summary>When an entry falls due: once less than <see cref="PolicyResolverOptions.RefreshWhenRemainingFraction"/>
    /// of its max_age is left, or <see cref="PolicyResolverOptions.RefreshWhenOlderThan"/> after its fetch, whichever
    /// comes first (RFC 8461 §3.3 suggests a daily refresh; §5.1 lets a sender refresh a valid policy at any time).</summary>
    public DateTimeOffset RefreshDueAt(CachedPolicy entry)
    {
        var nearExpiry = entry.ExpiresAt - entry.MaxAge * _options.RefreshWhenRemainingFraction;
        var old = entry.FetchedAt + _options.RefreshWhenOlderThan;
        return nearExpiry < old ? nearExpiry : old;
    }

    /// <summary>When the next background pass should run, after a pass that ended at <paramref name="lastPass"/>: when the
    /// first entry used within <see cref="PolicyResolverOptions.RefreshOnlyIfUsedWithin"/> falls due, not before
    /// <paramref name="lastPass"/> + <see cref="PolicyResolverOptions.RefreshMinSpacing"/>, and not after
    /// <paramref name="now"/> + <paramref name="longest"/>.</summary>
    public DateTimeOffset NextPassAt(DateTimeOffset now, DateTimeOffset lastPass, TimeSpan longest)
    {
        var next = now + longest;
        foreach (var e in _store.Snapshot())
            if (now - e.LastChecked <= _options.RefreshOnlyIfUsedWithin && RefreshDueAt(e) is var due && due < next)
                next = due;
        var earliest = lastPass + _options.RefreshMinSpacing;
        return next < earliest ? earliest : next;
    }

    /// <summary>One refresh pass: re-checks the TXT id and re-fetches every due entry (bounded concurrency, random
    /// order), then purges long-dead entries. Returns the number of entries refreshed successfully.</summary>
    public async Task<int> RefreshDueAsync(CancellationToken ct)
    {
        var now = _time.GetUtcNow();
        var due = _store.Snapshot().Where(e => IsRefreshDue(e, now)).OrderBy(_ => Random.Shared.Next()).ToList();
        var ok = 0;
        using var gate = new SemaphoreSlim(Math.Max(1, _options.RefreshConcurrency));
        await Task.WhenAll(due.Select(async entry =>
        {
            await gate.WaitAsync(ct).ConfigureAwait(false);
            try
            {
                Interlocked.Increment(ref _refreshes);
                var options = _lastOptions.GetValueOrDefault(entry.Domain) ?? _options.DefaultResolveOptions;
                var result = await Shared(entry.Domain, options, forceFetch: true).WaitAsync(ct).ConfigureAwait(false);
                if (result.Source == PolicySource.Fetched) Interlocked.Increment(ref ok);
                else if (result.FailureType is not null || result.Kind == PolicyResolutionKind.TempFail)
                {
                    Interlocked.Increment(ref _refreshFailures);
                    // §3.3: alert on refresh failure unless the cached policy is mode none.
                    if (entry.Policy.Mode != StsMode.None)
                        _log.Warning("mtasts_refresh_failure", $"MTA-STS policy refresh failed for the domain ({entry.Domain})",
                            ("domain", entry.Domain), ("id", entry.PolicyId), ("expires_at", entry.ExpiresAt), ("error", result.Error));
                }
            }
            finally
            {
                gate.Release();
            }
        })).ConfigureAwait(false);
        _store.Purge(now - _options.PurgeAfter);
        return ok;
    }

    /// <summary>Starts the background refresh loop (idempotent). Stopped by <see cref="DisposeAsync"/>.</summary>
    public void StartBackgroundRefresh()
    {
        lock (_lifetime)
            _refreshLoop ??= Task.Run(() => RefreshLoopAsync(_lifetime.Token));
    }

    private async Task RefreshLoopAsync(CancellationToken ct)
    {
        var lastPass = _time.GetUtcNow();
        while (!ct.IsCancellationRequested)
        {
            var factor = 1 + _options.RefreshJitter * (Random.Shared.NextDouble() * 2 - 1);
            try
            {
                // Read the wake signal before planning: a policy cached after this point wakes the loop to plan again.
                var wake = Volatile.Read(ref _wake).Task;
                var now = _time.GetUtcNow();
                var at = NextPassAt(now, lastPass, _options.RefreshInterval * factor);
                Interlocked.Exchange(ref _nextPassTicks, at.UtcTicks);
                if (at > now)
                {
                    using var sleep = CancellationTokenSource.CreateLinkedTokenSource(ct);
                    var delay = Task.Delay(at - now, _time, sleep.Token);
                    if (await Task.WhenAny(delay, wake).ConfigureAwait(false) == wake)
                    {
                        await sleep.CancelAsync().ConfigureAwait(false);
                        continue;
                    }
                    await delay.ConfigureAwait(false);
                }
                Interlocked.Exchange(ref _nextPassTicks, long.MaxValue);
                await RefreshDueAsync(ct).ConfigureAwait(false);
                lastPass = _time.GetUtcNow();
            }
            catch (OperationCanceledException) when (ct.IsCancellationRequested)
            {
                return;
            }
            catch (Exception ex)
            {
                _log.Warning("mtasts_refresh_error", $"MTA-STS policy refresh pass failed: {ex.Message}", ("error", ex.ToString()));
                lastPass = _time.GetUtcNow(); // the next attempt waits RefreshMinSpacing
            }
        }
    }

    private static string Normalize(string domain) => DestinationDomain.KeyOf(domain);

    public async ValueTask DisposeAsync()
    {
        _lifetime.Cancel();
        if (_refreshLoop is not null)
            try { await _refreshLoop.ConfigureAwait(false); } catch (Exception) { }
        foreach (var t in _inFlight.Values)
            try { await t.WaitAsync(TimeSpan.FromSeconds(5)).ConfigureAwait(false); } catch (Exception) { }
        _lifetime.Dispose();
    }
}
