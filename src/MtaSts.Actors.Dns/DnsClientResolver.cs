using System.Collections.Concurrent;
using System.Net;
using System.Net.Sockets;
using DnsClient;
using DnsClient.Protocol;

namespace MtaSts.Actors.Dns;

/// <summary>Settings of <see cref="DnsClientResolver"/>.</summary>
public sealed record DnsResolverOptions
{
    /// <summary>Name servers as IP:port. Empty = the system's (/etc/resolv.conf). For DANE these must be validating
    /// resolvers reached over a trusted path (RFC 7672 §1.3): the AD bit is only as good as that path.</summary>
    public IReadOnlyList<IPEndPoint> NameServers { get; init; } = Array.Empty<IPEndPoint>();

    /// <summary>Per-query (per try) timeout.</summary>
    public TimeSpan Timeout { get; init; } = TimeSpan.FromSeconds(5);

    /// <summary>Retries after a timeout or transient error (per name server).</summary>
    public int Retries { get; init; } = 2;

    /// <summary>TTL-honouring response cache: positive answers for their TTL, NXDOMAIN and NODATA for the negative TTL
    /// of the SOA that came with them (RFC 2308 §5); failures (SERVFAIL, timeouts) are never cached.</summary>
    public bool UseCache { get; init; } = true;

    /// <summary>Sets EDNS DO (RFC 3225) so that a validating resolver reports AD.</summary>
    public bool RequestDnssec { get; init; } = true;

    /// <summary>Longest CNAME chain followed (RFC 8461 §3.1 says follow; loops and absurd chains fail temporarily).</summary>
    public int MaxCnameHops { get; init; } = 8;

    public static DnsResolverOptions ForServer(IPEndPoint server, TimeSpan? timeout = null, int retries = 0, bool useCache = false) =>
        new() { NameServers = new[] { server }, Timeout = timeout ?? TimeSpan.FromSeconds(5), Retries = retries, UseCache = useCache };
}

/// <summary>
/// <see cref="IDnsResolver"/> on the DnsClient library. Classifies every outcome: NXDOMAIN and NODATA are answers;
/// SERVFAIL, REFUSED, other rcodes, timeouts and network errors are TempFail (never "none"). UDP first, TCP when
/// the answer is truncated (RFC 7766). CNAME chains are followed, also when the server returns only the CNAME.
/// Thread-safe; one instance per process is intended (it owns the response cache).
/// </summary>
public sealed class DnsClientResolver : IDnsResolver
{
    /// <summary>Most negative answers kept (names come from recipient domains: bounded, expired ones purged first).</summary>
    public const int MaxNegativeEntries = 10_000;

    /// <summary>Longest a negative answer is kept, whatever the SOA says (RFC 2308 §5: one to three hours).</summary>
    public static readonly TimeSpan MaxNegativeTtl = TimeSpan.FromHours(1);

    private readonly LookupClient _client;
    private readonly DnsResolverOptions _options;
    private readonly TimeProvider _clock;
    // DnsClient caches positive answers only. Without this, an MX host with no AAAA record cost an AAAA query at every
    // connection opened to it (many-domains-tls: ≈ 0.9 queries per message, 6 % of the gateway's CPU).
    private readonly ConcurrentDictionary<(string Name, QueryType Type), NegativeEntry> _negative = new();

    private sealed record NegativeEntry(DnsOutcome Outcome, bool Authenticated, DateTimeOffset Expires);

    public DnsClientResolver(DnsResolverOptions? options = null, TimeProvider? clock = null)
    {
        _clock = clock ?? TimeProvider.System;
        _options = options ?? new DnsResolverOptions();
        var lco = _options.NameServers.Count > 0
            ? new LookupClientOptions(_options.NameServers.ToArray())
            : new LookupClientOptions();
        lco.Timeout = _options.Timeout;
        lco.Retries = _options.Retries;
        lco.UseCache = _options.UseCache;
        lco.CacheFailedResults = false;
        lco.UseTcpFallback = true;
        lco.RequestDnsSecRecords = _options.RequestDnssec;
        lco.ThrowDnsErrors = false;
        lco.ContinueOnDnsError = true;
        // NODATA (or a bare CNAME) is an answer; don't shop around other servers for a "better" one.
        lco.ContinueOnEmptyResponse = false;
        lco.UseRandomNameServer = false;
        lco.EnableAuditTrail = false;
        lco.Recursion = true;
        _client = new LookupClient(lco);
    }

    public DnsResolverOptions Options => _options;

    public Task<DnsAnswer<TxtRecord>> TxtAsync(string name, CancellationToken ct = default) =>
        QueryAsync(name, QueryType.TXT, rr => rr is DnsClient.Protocol.TxtRecord t
            ? new TxtRecord(t.Text.ToArray()) : null, ct);

    public async Task<DnsAnswer<MxRecord>> MxAsync(string domain, CancellationToken ct = default)
    {
        var answer = await QueryAsync(domain, QueryType.MX, rr => rr is DnsClient.Protocol.MxRecord mx
            ? new MxRecord(mx.Preference, HostName(mx.Exchange.Value)) : null, ct).ConfigureAwait(false);
        if (!answer.IsOk) return answer;
        // RFC 5321 §5.1: lower preference first; OrderBy is stable, so equal preferences keep server order.
        return answer with { Records = answer.Records.OrderBy(m => m.Preference).ToArray() };
    }

    public async Task<DnsAnswer<IPAddress>> AddressesAsync(string host, bool ipv4 = true, bool ipv6 = true, CancellationToken ct = default)
    {
        if (IPAddress.TryParse(host.Trim('[', ']'), out var literal))
            return new DnsAnswer<IPAddress>(DnsOutcome.Ok, new[] { literal });
        if (!ipv4 && !ipv6) return new DnsAnswer<IPAddress>(DnsOutcome.NoData, Array.Empty<IPAddress>());

        var v4 = ipv4 ? QueryAsync(host, QueryType.A, rr => rr is ARecord a ? a.Address : null, ct) : null;
        var v6 = ipv6 ? QueryAsync(host, QueryType.AAAA, rr => rr is AaaaRecord a ? a.Address : null, ct) : null;
        var parts = new List<DnsAnswer<IPAddress>>();
        if (v4 is not null) parts.Add(await v4.ConfigureAwait(false));
        if (v6 is not null) parts.Add(await v6.ConfigureAwait(false));

        var ok = parts.Where(p => p.IsOk).ToList();
        if (ok.Count > 0)
            return new DnsAnswer<IPAddress>(DnsOutcome.Ok, ok.SelectMany(p => p.Records).ToArray(), ok.All(p => p.Authenticated));
        var fail = parts.FirstOrDefault(p => p.Outcome == DnsOutcome.TempFail);
        if (fail is not null) return fail;
        if (parts.Any(p => p.Outcome == DnsOutcome.NoData))
            return new DnsAnswer<IPAddress>(DnsOutcome.NoData, Array.Empty<IPAddress>(), parts.All(p => p.Authenticated));
        return new DnsAnswer<IPAddress>(DnsOutcome.NxDomain, Array.Empty<IPAddress>(), parts.All(p => p.Authenticated));
    }

    public Task<DnsAnswer<TlsaRecord>> TlsaAsync(string name, CancellationToken ct = default) =>
        QueryAsync(name, QueryType.TLSA, rr => rr is DnsClient.Protocol.TlsaRecord t
            ? new TlsaRecord((byte)t.CertificateUsage, (byte)t.Selector, (byte)t.MatchingType, t.CertificateAssociationData.ToArray())
            : null, ct);

    private async Task<DnsAnswer<T>> QueryAsync<T>(string name, QueryType type, Func<DnsResourceRecord, T?> map, CancellationToken ct)
        where T : class
    {
        var current = HostName(name);
        if (current.Length == 0) return DnsAnswer<T>.Fail($"invalid DNS name '{name}'");
        var authenticated = true;
        var hops = 0;
        if (_options.UseCache && _negative.TryGetValue((current, type), out var cached))
        {
            if (cached.Expires > _clock.GetUtcNow()) return new DnsAnswer<T>(cached.Outcome, Array.Empty<T>(), cached.Authenticated);
            _negative.TryRemove(new KeyValuePair<(string, QueryType), NegativeEntry>((current, type), cached));
        }
        while (true)
        {
            ct.ThrowIfCancellationRequested();
            IDnsQueryResponse response;
            try
            {
                response = await _client.QueryAsync(current, type, QueryClass.IN, ct).ConfigureAwait(false);
            }
            catch (OperationCanceledException) when (ct.IsCancellationRequested) { throw; }
            catch (Exception) when (ct.IsCancellationRequested)
            {
                // DnsClient may wrap our cancellation in its own exception types.
                throw new OperationCanceledException(ct);
            }
            catch (DnsResponseException ex) when (ex.Code == DnsResponseCode.ConnectionTimeout)
            {
                return DnsAnswer<T>.Fail($"timeout after {_options.Timeout.TotalSeconds:0.###}s x{_options.Retries + 1} querying {current} {type} at {Servers}");
            }
            catch (DnsResponseException ex)
            {
                return DnsAnswer<T>.Fail($"{ex.Code} querying {current} {type} at {Servers}: {ex.Message}");
            }
            catch (Exception ex) when (ex is SocketException or IOException or OperationCanceledException or TimeoutException or ObjectDisposedException)
            {
                return DnsAnswer<T>.Fail($"network error querying {current} {type} at {Servers}: {ex.Message}");
            }

            authenticated &= response.Header.IsAuthenticData;
            var rcode = response.Header.ResponseCode;
            var from = response.NameServer?.ToString() ?? Servers;
            if (rcode == DnsHeaderResponseCode.NotExistentDomain)
            {
                if (hops == 0) RememberNegative(current, type, DnsOutcome.NxDomain, authenticated, response);
                return new DnsAnswer<T>(DnsOutcome.NxDomain, Array.Empty<T>(), authenticated);
            }
            if (rcode != DnsHeaderResponseCode.NoError)
                return DnsAnswer<T>.Fail($"{RcodeName(rcode)} from {from} for {current} {type}");

            // Walk the CNAME chain inside this answer (RFC 1034 §3.6.2), then take the records at its end.
            var owner = current;
            while (true)
            {
                var records = response.Answers
                    .Where(rr => rr.RecordType == (ResourceRecordType)type && SameName(rr.DomainName.Value, owner))
                    .Select(map).OfType<T>().ToArray();
                if (records.Length > 0) return new DnsAnswer<T>(DnsOutcome.Ok, records, authenticated);
                if (type == QueryType.CNAME) break;
                var cname = response.Answers.OfType<CNameRecord>().FirstOrDefault(c => SameName(c.DomainName.Value, owner));
                if (cname is null) break;
                if (++hops > _options.MaxCnameHops)
                    return DnsAnswer<T>.Fail($"CNAME chain longer than {_options.MaxCnameHops} at {name}");
                owner = HostName(cname.CanonicalName.Value);
            }
            if (SameName(owner, current))
            {
                if (hops == 0) RememberNegative(current, type, DnsOutcome.NoData, authenticated, response);
                return new DnsAnswer<T>(DnsOutcome.NoData, Array.Empty<T>(), authenticated);
            }
            // The server gave us only (part of) the chain: ask for the target ourselves.
            current = owner;
        }
    }

    /// <summary>RFC 2308 §5: a negative answer is cached for min(SOA TTL, SOA MINIMUM) of the SOA in its authority
    /// section; one without an SOA is not cached (§5: SHOULD NOT). Only answers about the name asked (no CNAME in
    /// between), so an entry never stands for another name's records.</summary>
    private void RememberNegative(string name, QueryType type, DnsOutcome outcome, bool authenticated, IDnsQueryResponse response)
    {
        if (!_options.UseCache) return;
        var soa = response.Authorities.OfType<SoaRecord>().FirstOrDefault();
        if (soa is null) return;
        var seconds = Math.Min((long)soa.TimeToLive, soa.Minimum);
        if (seconds <= 0) return;
        var ttl = TimeSpan.FromSeconds(Math.Min(seconds, (long)MaxNegativeTtl.TotalSeconds));
        var now = _clock.GetUtcNow();
        if (_negative.Count >= MaxNegativeEntries)
        {
            foreach (var e in _negative)
                if (e.Value.Expires <= now) _negative.TryRemove(e);
            if (_negative.Count >= MaxNegativeEntries) return;
        }
        _negative[(name, type)] = new NegativeEntry(outcome, authenticated, now + ttl);
    }

    private string Servers => _options.NameServers.Count == 0 ? "system resolver"
        : string.Join(",", _options.NameServers.Select(e => e.ToString()));

    private static string RcodeName(DnsHeaderResponseCode rcode) => rcode switch
    {
        DnsHeaderResponseCode.ServerFailure => "SERVFAIL",
        DnsHeaderResponseCode.Refused => "REFUSED",
        DnsHeaderResponseCode.FormatError => "FORMERR",
        DnsHeaderResponseCode.NotImplemented => "NOTIMP",
        _ => "RCODE " + (int)rcode,
    };

    /// <summary>Lower-case, no trailing dot; the root (".") becomes "" (null MX, RFC 7505).</summary>
    private static string HostName(string name) => name.Trim().TrimEnd('.').ToLowerInvariant();

    private static bool SameName(string a, string b) => string.Equals(HostName(a), HostName(b), StringComparison.Ordinal);
}
