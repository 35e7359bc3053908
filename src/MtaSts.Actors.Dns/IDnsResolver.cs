using System.Net;

namespace MtaSts.Actors.Dns;

/// <summary>How a DNS question ended. NXDOMAIN and NODATA are answers ("there is none"); TempFail
/// (SERVFAIL, timeout, refused, network error) is not an answer and must never be read as "none".</summary>
public enum DnsOutcome { Ok, NxDomain, NoData, TempFail }

/// <param name="Authenticated">AD bit of the response (RFC 4035 §3.2.3) — only meaningful from a
/// validating resolver we trust; DANE (RFC 7672) uses TLSA answers only when it is set.</param>
/// <param name="Error">Human-readable reason for TempFail (e.g. "SERVFAIL from 127.0.0.1:53", "timeout after 5s").</param>
public sealed record DnsAnswer<T>(DnsOutcome Outcome, IReadOnlyList<T> Records, bool Authenticated = false, string? Error = null)
{
    public static DnsAnswer<T> Fail(string error) => new(DnsOutcome.TempFail, Array.Empty<T>(), false, error);
    public bool IsOk => Outcome == DnsOutcome.Ok;
}

/// <summary>One TXT RR: its character-strings in order (RFC 8461 §3.1 concatenates them without spaces).</summary>
public sealed record TxtRecord(IReadOnlyList<string> Strings)
{
    public string Joined => string.Concat(Strings);
}

public sealed record MxRecord(int Preference, string Exchange);

/// <summary>TLSA RR (RFC 6698 §2.1). Usage 0..3, Selector 0..1, MatchingType 0..2.</summary>
public sealed record TlsaRecord(byte Usage, byte Selector, byte MatchingType, byte[] Data);

/// <summary>The gateway's view of DNS. Every call has a timeout (configured on the implementation) and honours
/// the cancellation token. CNAMEs are followed by the resolver (RFC 8461 §3.1 MUST follow CNAME for TXT).</summary>
public interface IDnsResolver
{
    Task<DnsAnswer<TxtRecord>> TxtAsync(string name, CancellationToken ct = default);
    /// <summary>MX records sorted by preference. Null MX (RFC 7505: single MX "." preference 0) is returned as-is
    /// (Exchange = ""), so that callers can bounce.</summary>
    Task<DnsAnswer<MxRecord>> MxAsync(string domain, CancellationToken ct = default);
    /// <summary>A and/or AAAA addresses of a host.</summary>
    Task<DnsAnswer<IPAddress>> AddressesAsync(string host, bool ipv4 = true, bool ipv6 = true, CancellationToken ct = default);
    Task<DnsAnswer<TlsaRecord>> TlsaAsync(string name, CancellationToken ct = default);
}
