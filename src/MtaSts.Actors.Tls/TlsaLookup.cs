using MtaSts.Actors.Dns;

namespace MtaSts.Actors.Tls;

/// <summary>What the TLSA lookup for one MX host said, reduced to what the DANE rules need (RFC 7672 §2.2).</summary>
public enum TlsaState
{
    /// <summary>No TLSA RRset, an answer without the AD bit, or an insecure MX/address chain: DANE does not apply (D05).</summary>
    Absent,
    /// <summary>DNSSEC-validated TLSA records of which at least one is usable for SMTP (usage 2 or 3, known selector and matching type).</summary>
    Usable,
    /// <summary>DNSSEC-validated TLSA records, none usable (e.g. only PKIX-TA/PKIX-EE): STARTTLS mandatory, unauthenticated (RFC 7672 §2.2).</summary>
    Unusable,
    /// <summary>SERVFAIL, timeout, bogus: not an answer. Never downgrade — defer this MX (RFC 7672 §2.2, D04).</summary>
    TempFail,
}

/// <param name="Records">Only the usable records when <see cref="State"/> is Usable; otherwise empty.</param>
public sealed record TlsaLookup(TlsaState State, IReadOnlyList<TlsaRecord> Records, string? Detail = null)
{
    public static TlsaLookup Absent { get; } = new(TlsaState.Absent, Array.Empty<TlsaRecord>());

    /// <summary>The TLSA owner name for an SMTP server (RFC 7672 §2.2.3 / RFC 6698 §3): <c>_25._tcp.mx.example.com</c>.</summary>
    public static string OwnerName(string host, int port = 25) => $"_{port}._tcp.{host.TrimEnd('.')}";

    /// <param name="hostSecure">Whether the MX RRset and the host's address records were DNSSEC-validated. RFC 7672
    /// §2.2.1-2: TLSA records are only sought for hosts reached through a secure chain; otherwise DANE is n/a.</param>
    public static TlsaLookup FromAnswer(DnsAnswer<TlsaRecord> answer, bool hostSecure = true)
    {
        switch (answer.Outcome)
        {
            case DnsOutcome.TempFail:
                return new(TlsaState.TempFail, Array.Empty<TlsaRecord>(), answer.Error ?? "TLSA lookup failed");
            case DnsOutcome.NxDomain:
            case DnsOutcome.NoData:
                return Absent;
        }
        if (!hostSecure) return Absent with { Detail = "MX host not DNSSEC-secure" };
        // RFC 7672 §2.2: an answer that is not DNSSEC-validated is not DANE.
        if (!answer.Authenticated) return Absent with { Detail = "TLSA answer not DNSSEC-authenticated" };
        var usable = answer.Records.Where(DaneVerifier.IsUsable).ToArray();
        if (usable.Length > 0) return new(TlsaState.Usable, usable);
        return answer.Records.Count == 0
            ? Absent
            : new(TlsaState.Unusable, Array.Empty<TlsaRecord>(), "no usable TLSA records");
    }

    public static async Task<TlsaLookup> QueryAsync(IDnsResolver dns, string host, int port = 25, bool hostSecure = true,
        CancellationToken ct = default)
    {
        ArgumentNullException.ThrowIfNull(dns);
        if (!hostSecure) return Absent with { Detail = "MX host not DNSSEC-secure" };
        var answer = await dns.TlsaAsync(OwnerName(host, port), ct).ConfigureAwait(false);
        return FromAnswer(answer, hostSecure);
    }
}
