using BenchmarkDotNet.Attributes;
using MtaSts.Actors.Dns;
using MtaSts.Actors.Engine.Policy;
using MtaSts.Actors.Logging;
using MtaSts.Actors.Policy;
using MtaSts.Actors.Policy.Cache;
using MtaSts.Actors.Policy.Fetch;
using MtaSts.Actors.Policy.Parsing;
using MtaSts.Actors.Policy.Resolution;

namespace MtaSts.Actors.MicroBench;

/// <summary>
/// A cached MTA-STS policy, looked up in process, three ways: what a destination does per delivery attempt while its
/// answer is fresh (<see cref="PolicyState.Readiness"/>), the policy cache read (<see cref="PolicyStore.Get"/>), and a
/// whole <see cref="PolicyResolver.ResolveAsync(string, PolicyResolveOptions, CancellationToken)"/> when the TXT answer
/// comes from the DNS cache and its id matches the cached policy (RFC 8461 §3.1: TXT first, no fetch).
/// </summary>
[MemoryDiagnoser]
public class PolicyLookupBench
{
    private const int Ops = 1000;
    private const string Domain = "d00042.test";
    private PolicyStore _store = null!;
    private PolicyResolver _resolver = null!;
    private PolicyState _state = null!;
    private DateTimeOffset _now;

    [GlobalSetup]
    public void Setup()
    {
        _now = DateTimeOffset.UtcNow;
        var text = "version: STSv1\nmode: enforce\nmx: mx1.d00042.test\nmx: *.mx.d00042.test\nmax_age: 604800\n";
        var policy = StsPolicyParser.Parse(text).Value!;
        _store = PolicyStore.InMemory();
        for (int i = 0; i < 10_000; i++)
        {
            var d = $"d{i:D5}.test";
            _store.Put(new CachedPolicy(d, "20261201", text, policy, _now, _now.AddDays(7), _now));
        }
        _resolver = new PolicyResolver(new CachedTxt(), new NoFetch(), _store, MailLog.Null);
        _state = PolicyState.None.Answered(
            new PolicyResolution(PolicyResolutionKind.Policy, policy, "20261201", PolicySource.Cache, null, null)
                { Domain = Domain, ExpiresAt = _now.AddDays(7) }, null, _now);
    }

    [GlobalCleanup]
    public async Task Cleanup()
    {
        await _resolver.DisposeAsync();
        _store.Dispose();
    }

    [Benchmark(OperationsPerInvoke = Ops, Description = "destination: fresh answer (Readiness)")]
    public bool DestinationReadiness()
    {
        var ready = false;
        for (int i = 0; i < Ops; i++) ready ^= _state.Readiness(_now, TimeSpan.FromSeconds(60)).Ready;
        return ready;
    }

    [Benchmark(OperationsPerInvoke = Ops, Description = "PolicyStore.Get (10,000 cached)")]
    public int StoreGet()
    {
        var n = 0;
        for (int i = 0; i < Ops; i++) n += _store.Get(Domain) is { } p && p.IsValidAt(_now) ? 1 : 0;
        return n;
    }

    [Benchmark(OperationsPerInvoke = Ops, Description = "PolicyResolver.ResolveAsync, TXT cached, policy cached")]
    public async Task<int> ResolveCached()
    {
        var n = 0;
        for (int i = 0; i < Ops; i++)
            n += (await _resolver.ResolveAsync(Domain, PolicyResolveOptions.Default, CancellationToken.None)).Policy is null ? 0 : 1;
        return n;
    }

    /// <summary>A DNS cache hit: the same completed answer every time.</summary>
    private sealed class CachedTxt : IDnsResolver
    {
        private static readonly Task<DnsAnswer<TxtRecord>> Answer = Task.FromResult(
            new DnsAnswer<TxtRecord>(DnsOutcome.Ok, [new TxtRecord(["v=STSv1; id=20261201;"])]));

        public Task<DnsAnswer<TxtRecord>> TxtAsync(string name, CancellationToken ct = default) => Answer;
        public Task<DnsAnswer<MxRecord>> MxAsync(string domain, CancellationToken ct = default) => throw new NotSupportedException();
        public Task<DnsAnswer<System.Net.IPAddress>> AddressesAsync(string host, bool ipv4 = true, bool ipv6 = true, CancellationToken ct = default) =>
            throw new NotSupportedException();
        public Task<DnsAnswer<TlsaRecord>> TlsaAsync(string name, CancellationToken ct = default) => throw new NotSupportedException();
    }

    private sealed class NoFetch : IPolicyFetcher
    {
        public Task<PolicyFetchResult> FetchAsync(string domain, PolicyFetchRequest request, CancellationToken ct) =>
            throw new InvalidOperationException("a cached policy with the current id must not be fetched");
    }
}
