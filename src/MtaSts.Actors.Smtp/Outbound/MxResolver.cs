using System.Net;
using System.Net.Sockets;
using MtaSts.Actors.Dns;
using MtaSts.Actors.Tls;

namespace MtaSts.Actors.Smtp.Outbound;

/// <summary>A next hop given by configuration (SMTP route, or a test/private-deployment MX override).</summary>
/// <param name="Host">Host name (kept for SNI, MTA-STS matching and TLSA) or an IP literal.</param>
/// <param name="Address">Optional fixed address: the name is then not resolved (loopback tests).</param>
public sealed record HostPort(string Host, int Port = 25, IPAddress? Address = null)
{
    /// <summary>Parses <c>host</c>, <c>host:port</c>, <c>[v6]:port</c>, <c>1.2.3.4:2525</c>.</summary>
    public static HostPort Parse(string text)
    {
        ArgumentException.ThrowIfNullOrWhiteSpace(text);
        text = text.Trim();
        if (text.StartsWith('['))
        {
            var close = text.IndexOf(']');
            if (close < 0) throw new FormatException($"bad host:port '{text}'");
            var host = text[1..close];
            var port = close + 1 < text.Length && text[close + 1] == ':' ? int.Parse(text[(close + 2)..]) : 25;
            return new HostPort(host, port, IPAddress.TryParse(host, out var a6) ? a6 : null);
        }
        var colon = text.LastIndexOf(':');
        if (colon > 0 && text.IndexOf(':') == colon)
        {
            var host = text[..colon];
            return new HostPort(host, int.Parse(text[(colon + 1)..]), IPAddress.TryParse(host, out var a) ? a : null);
        }
        return new HostPort(text, 25, IPAddress.TryParse(text, out var a2) ? a2 : null);
    }
}

/// <summary>Where the MX list came from. Route: MTA-STS and DANE do not apply (SPEC §2).</summary>
public enum MxSource { Dns, ImplicitMx, Override, Route }

/// <summary>One MX host with its addresses in connection order (IP preference applied).</summary>
/// <param name="AddressError">Set when the address lookup failed or found nothing (the host is then unusable).</param>
/// <param name="AddressesTransient">The address lookup failed temporarily (vs. NXDOMAIN/NODATA).</param>
/// <param name="Secure">MX and address answers were DNSSEC-authenticated (RFC 7672 §2.2.1: TLSA only then).</param>
public sealed record MxHost(string Name, int Preference, int Port, IReadOnlyList<IPAddress> Addresses, bool Secure,
    string? AddressError = null, bool AddressesTransient = false);

/// <summary>A concrete connection target: one address of one MX host.</summary>
public sealed record MxTarget(string Host, IPAddress Address, int Port, int Preference = 0)
{
    public IPEndPoint EndPoint => new(Address, Port);
    public override string ToString() => $"{Host} [{Address}]:{Port}";
}

public enum MxResolutionStatus { Ok, Transient, Permanent }

/// <param name="Status">Ok: at least one host has an address. Transient: retry later. Permanent: bounce.</param>
/// <param name="EnhancedStatus">RFC 3463 code for failures: 5.1.10 null MX, 5.1.2 NXDOMAIN, 5.4.4 no address, 4.4.3 DNS.</param>
public sealed record MxResolution(MxResolutionStatus Status, IReadOnlyList<MxHost> Hosts, MxSource Source,
    string? EnhancedStatus = null, string? Error = null)
{
    public bool Ok => Status == MxResolutionStatus.Ok;

    /// <summary>Every (host, address) pair in connection order, skipping hosts without addresses.</summary>
    public IEnumerable<MxTarget> Targets => Hosts.SelectMany(h => h.Addresses.Select(a => new MxTarget(h.Name, a, h.Port, h.Preference)));

    public static MxResolution Fail(MxResolutionStatus status, MxSource source, string enhanced, string error) =>
        new(status, Array.Empty<MxHost>(), source, enhanced, error);
}

/// <summary>
/// MX resolution for delivery (RFC 5321 §5.1): preference order with a random order among equal preferences,
/// implicit MX (no MX → the domain itself), null MX (RFC 7505), address family preference, static overrides for tests
/// and private deployments, and SMTP routes.
/// </summary>
public sealed class MxResolver
{
    private readonly IDnsResolver _dns;
    private readonly Func<string, IReadOnlyList<HostPort>?>? _override;
    private readonly Random _random;
    private readonly object _randomGate = new();

    /// <param name="mxOverride">Returns fixed next hops for a domain (keeps MTA-STS/DANE semantics: the host names stand
    /// for MX names), or null to use DNS.</param>
    /// <param name="random">Shuffle source (tests pass a seeded one).</param>
    public MxResolver(IDnsResolver dns, Func<string, IReadOnlyList<HostPort>?>? mxOverride = null, Random? random = null)
    {
        _dns = dns ?? throw new ArgumentNullException(nameof(dns));
        _override = mxOverride;
        _random = random ?? Random.Shared;
    }

    /// <summary>A static map domain → next hops (case-insensitive) usable as an override.</summary>
    public static Func<string, IReadOnlyList<HostPort>?> StaticMap(IReadOnlyDictionary<string, IReadOnlyList<HostPort>> map)
    {
        var copy = new Dictionary<string, IReadOnlyList<HostPort>>(map, StringComparer.OrdinalIgnoreCase);
        return d => copy.TryGetValue(d.TrimEnd('.'), out var v) ? v : null;
    }

    public int Port { get; init; } = 25;

    /// <summary>Resolves a recipient domain's MX hosts.</summary>
    public async Task<MxResolution> ResolveAsync(string domain, IpPreference preference = IpPreference.PreferV4,
        CancellationToken ct = default)
    {
        ArgumentException.ThrowIfNullOrWhiteSpace(domain);
        domain = DestinationDomain.KeyOf(domain);
        if (_override?.Invoke(domain) is { Count: > 0 } hops)
            return await ResolveHopsAsync(hops, MxSource.Override, preference, ct).ConfigureAwait(false);

        var mx = await _dns.MxAsync(domain, ct).ConfigureAwait(false);
        switch (mx.Outcome)
        {
            case DnsOutcome.TempFail:
                return MxResolution.Fail(MxResolutionStatus.Transient, MxSource.Dns, "4.4.3",
                    $"MX lookup for {domain} failed: {mx.Error ?? "temporary DNS failure"}");
            case DnsOutcome.NxDomain:
                return MxResolution.Fail(MxResolutionStatus.Permanent, MxSource.Dns, "5.1.2",
                    $"Domain {domain} does not exist (NXDOMAIN)");
            case DnsOutcome.NoData:
                // RFC 5321 §5.1: no MX RRs → the domain itself is the implicit MX, preference 0.
                var host = await ResolveHostAsync(domain, 0, Port, mx.Authenticated, preference, ct).ConfigureAwait(false);
                return Finish(new[] { host }, MxSource.ImplicitMx, domain);
        }

        var records = mx.Records;
        // RFC 7505 §3: a single MX with root target "." means "this domain accepts no mail".
        if (records.Any(IsNullMx))
        {
            if (records.All(IsNullMx))
                return MxResolution.Fail(MxResolutionStatus.Permanent, MxSource.Dns, "5.1.10",
                    $"Domain {domain} publishes a null MX (RFC 7505): it accepts no mail");
            records = records.Where(r => !IsNullMx(r)).ToArray(); // malformed mix: ignore the null entry
        }
        if (records.Count == 0)
        {
            var host = await ResolveHostAsync(domain, 0, Port, mx.Authenticated, preference, ct).ConfigureAwait(false);
            return Finish(new[] { host }, MxSource.ImplicitMx, domain);
        }

        var ordered = Order(records.Select(r => (Name: r.Exchange.TrimEnd('.').ToLowerInvariant(), r.Preference))
            .DistinctBy(r => r.Name).ToList());
        var tasks = ordered.Select(r => ResolveHostAsync(r.Name, r.Preference, Port, mx.Authenticated, preference, ct)).ToArray();
        var hosts = await Task.WhenAll(tasks).ConfigureAwait(false);
        return Finish(hosts, MxSource.Dns, domain);
    }

    /// <summary>Resolves static SMTP-route next hops (tried in the given order). MTA-STS and DANE do not apply.</summary>
    public Task<MxResolution> ResolveRouteAsync(IReadOnlyList<HostPort> hops, IpPreference preference = IpPreference.PreferV4,
        CancellationToken ct = default) => ResolveHopsAsync(hops, MxSource.Route, preference, ct);

    private async Task<MxResolution> ResolveHopsAsync(IReadOnlyList<HostPort> hops, MxSource source, IpPreference preference,
        CancellationToken ct)
    {
        var hosts = new List<MxHost>();
        for (int i = 0; i < hops.Count; i++)
        {
            var hop = hops[i];
            var address = hop.Address ?? (IPAddress.TryParse(hop.Host, out var literal) ? literal : null);
            if (address is not null)
            {
                hosts.Add(Allowed(address, preference)
                    ? new MxHost(hop.Host, i, hop.Port, new[] { address }, false)
                    : new MxHost(hop.Host, i, hop.Port, Array.Empty<IPAddress>(), false, $"{address} excluded by IP preference {preference}"));
                continue;
            }
            // An override stands for the domain's MX RRset (configuration, not DNS, so nothing to validate): a named
            // hop is as secure as its address answer, and DANE applies to it (TLSA at _port._tcp.name). SMTP routes
            // bypass DANE anyway.
            hosts.Add(await ResolveHostAsync(hop.Host.TrimEnd('.').ToLowerInvariant(), i, hop.Port, source == MxSource.Override,
                preference, ct).ConfigureAwait(false));
        }
        return Finish(hosts, source, source == MxSource.Route ? "SMTP route" : "override");
    }

    private async Task<MxHost> ResolveHostAsync(string name, int pref, int port, bool mxSecure, IpPreference p, CancellationToken ct)
    {
        bool v4 = p != IpPreference.RequireV6, v6 = p != IpPreference.RequireV4;
        var answer = await _dns.AddressesAsync(name, v4, v6, ct).ConfigureAwait(false);
        if (answer.Outcome == DnsOutcome.TempFail)
            return new MxHost(name, pref, port, Array.Empty<IPAddress>(), false, $"address lookup for {name} failed: {answer.Error}", true);
        var addrs = answer.Records.Where(a => Allowed(a, p)).ToArray();
        if (addrs.Length == 0)
            return new MxHost(name, pref, port, Array.Empty<IPAddress>(), false,
                answer.Outcome == DnsOutcome.NxDomain ? $"host {name} not found" : $"host {name} has no {Families(p)} address");
        // Preferred family first; keep the resolver's order within a family (RFC 6724 sorting is the resolver's job).
        var preferV6 = p is IpPreference.PreferV6 or IpPreference.RequireV6;
        var ordered = addrs.OrderBy(a => (a.AddressFamily == AddressFamily.InterNetworkV6) == preferV6 ? 0 : 1).ToArray();
        return new MxHost(name, pref, port, ordered, mxSecure && answer.Authenticated);
    }

    private MxResolution Finish(IReadOnlyList<MxHost> hosts, MxSource source, string what)
    {
        if (hosts.Any(h => h.Addresses.Count > 0)) return new MxResolution(MxResolutionStatus.Ok, hosts, source);
        var detail = string.Join("; ", hosts.Select(h => h.AddressError));
        // Any temporary failure keeps the message queued; only hard "no such host/address" answers bounce.
        return hosts.Any(h => h.AddressesTransient)
            ? new MxResolution(MxResolutionStatus.Transient, hosts, source, "4.4.3", $"no usable address for {what}: {detail}")
            : new MxResolution(MxResolutionStatus.Permanent, hosts, source, "5.4.4", $"unable to route {what}: {detail}");
    }

    /// <summary>RFC 5321 §5.1: lowest preference first; hosts of equal preference in random order (load spreading).</summary>
    private List<(string Name, int Preference)> Order(List<(string Name, int Preference)> records)
    {
        var result = new List<(string, int)>(records.Count);
        foreach (var group in records.GroupBy(r => r.Preference).OrderBy(g => g.Key))
        {
            var items = group.ToArray();
            lock (_randomGate) _random.Shuffle(items);
            result.AddRange(items);
        }
        return result;
    }

    private static bool IsNullMx(MxRecord r) => r.Exchange.Length == 0 || r.Exchange == ".";

    private static bool Allowed(IPAddress a, IpPreference p) => p switch
    {
        IpPreference.RequireV4 => a.AddressFamily == AddressFamily.InterNetwork,
        IpPreference.RequireV6 => a.AddressFamily == AddressFamily.InterNetworkV6,
        _ => true,
    };

    private static string Families(IpPreference p) => p switch
    {
        IpPreference.RequireV4 => "IPv4",
        IpPreference.RequireV6 => "IPv6",
        _ => "IPv4/IPv6",
    };
}
