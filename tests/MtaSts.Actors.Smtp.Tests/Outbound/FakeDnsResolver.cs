using System.Collections.Concurrent;
using System.Net;
using MtaSts.Actors.Dns;

namespace MtaSts.Actors.Smtp.Tests.Outbound;

/// <summary>In-memory IDnsResolver: answers are set per name; unknown names are NXDOMAIN.</summary>
internal sealed class FakeDnsResolver : IDnsResolver
{
    public ConcurrentDictionary<string, DnsAnswer<MxRecord>> Mx { get; } = new(StringComparer.OrdinalIgnoreCase);
    public ConcurrentDictionary<string, DnsAnswer<IPAddress>> Addresses { get; } = new(StringComparer.OrdinalIgnoreCase);
    public ConcurrentDictionary<string, DnsAnswer<TlsaRecord>> Tlsa { get; } = new(StringComparer.OrdinalIgnoreCase);
    public bool Authenticated { get; set; }

    public FakeDnsResolver SetMx(string domain, params (int Pref, string Host)[] mx)
    {
        Mx[domain] = new DnsAnswer<MxRecord>(DnsOutcome.Ok, mx.Select(m => new MxRecord(m.Pref, m.Host)).ToArray(), Authenticated);
        return this;
    }

    public FakeDnsResolver SetHost(string host, params string[] addresses)
    {
        Addresses[host] = new DnsAnswer<IPAddress>(DnsOutcome.Ok, addresses.Select(IPAddress.Parse).ToArray(), Authenticated);
        return this;
    }

    public Task<DnsAnswer<TxtRecord>> TxtAsync(string name, CancellationToken ct = default) =>
        Task.FromResult(new DnsAnswer<TxtRecord>(DnsOutcome.NxDomain, Array.Empty<TxtRecord>()));

    public Task<DnsAnswer<MxRecord>> MxAsync(string domain, CancellationToken ct = default) =>
        Task.FromResult(Mx.TryGetValue(domain, out var a) ? a : new DnsAnswer<MxRecord>(DnsOutcome.NxDomain, Array.Empty<MxRecord>()));

    public Task<DnsAnswer<IPAddress>> AddressesAsync(string host, bool ipv4 = true, bool ipv6 = true, CancellationToken ct = default)
    {
        if (!Addresses.TryGetValue(host, out var a))
            return Task.FromResult(new DnsAnswer<IPAddress>(DnsOutcome.NxDomain, Array.Empty<IPAddress>()));
        if (a.Outcome != DnsOutcome.Ok) return Task.FromResult(a);
        var filtered = a.Records.Where(r => r.AddressFamily == System.Net.Sockets.AddressFamily.InterNetwork ? ipv4 : ipv6).ToArray();
        return Task.FromResult(filtered.Length == 0
            ? new DnsAnswer<IPAddress>(DnsOutcome.NoData, filtered, a.Authenticated)
            : a with { Records = filtered });
    }

    public Task<DnsAnswer<TlsaRecord>> TlsaAsync(string name, CancellationToken ct = default) =>
        Task.FromResult(Tlsa.TryGetValue(name, out var a) ? a : new DnsAnswer<TlsaRecord>(DnsOutcome.NxDomain, Array.Empty<TlsaRecord>()));
}
