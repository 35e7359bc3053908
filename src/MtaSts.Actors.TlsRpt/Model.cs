using System.Security.Cryptography;
using System.Text;

namespace MtaSts.Actors.TlsRpt;

/// <summary>RFC 8460 §4.3 result types (wire spelling).</summary>
public static class TlsRptResult
{
    // §4.3.1 negotiation failures
    public const string StartTlsNotSupported = "starttls-not-supported";
    public const string CertificateHostMismatch = "certificate-host-mismatch";
    public const string CertificateExpired = "certificate-expired";
    public const string CertificateNotTrusted = "certificate-not-trusted";
    public const string ValidationFailure = "validation-failure";
    // §4.3.2.1 DANE
    public const string TlsaInvalid = "tlsa-invalid";
    public const string DnssecInvalid = "dnssec-invalid";
    public const string DaneRequired = "dane-required";
    // §4.3.2.2 MTA-STS
    public const string StsPolicyFetchError = "sts-policy-fetch-error";
    public const string StsPolicyInvalid = "sts-policy-invalid";
    public const string StsWebpkiInvalid = "sts-webpki-invalid";

    public static readonly IReadOnlySet<string> All = new HashSet<string>(StringComparer.Ordinal)
    {
        StartTlsNotSupported, CertificateHostMismatch, CertificateExpired, CertificateNotTrusted, ValidationFailure,
        TlsaInvalid, DnssecInvalid, DaneRequired, StsPolicyFetchError, StsPolicyInvalid, StsWebpkiInvalid,
    };
}

/// <summary>RFC 8460 §4.4 policy-type values.</summary>
public static class TlsRptPolicyType
{
    public const string Sts = "sts";
    public const string Tlsa = "tlsa";
    public const string NoPolicyFound = "no-policy-found";
}

/// <summary>The policy a session was evaluated under (RFC 8460 §4.4 "policy"): type, policy-string lines (the MTA-STS
/// policy, or the TLSA records in presentation form) and mx-host (the MTA-STS policy's mx patterns).</summary>
public sealed record TlsRptPolicy(string Type, IReadOnlyList<string> Strings, IReadOnlyList<string> MxHosts)
{
    public static TlsRptPolicy NoPolicy { get; } = new(TlsRptPolicyType.NoPolicyFound, [], []);

    /// <summary>Canonical text of the policy, and a short stable key over it (the store's primary key part).</summary>
    public string Canonical => Type + "\n" + string.Join("\n", Strings) + "\n\n" + string.Join("\n", MxHosts);

    public string Key => Convert.ToHexStringLower(SHA256.HashData(Encoding.UTF8.GetBytes(Canonical)))[..32];

    public bool Equals(TlsRptPolicy? other) => other is not null && Canonical == other.Canonical;
    public override int GetHashCode() => Canonical.GetHashCode(StringComparison.Ordinal);
}

/// <summary>One delivery session's TLS outcome for TLS-RPT. <see cref="ResultType"/> null = a successfully negotiated
/// TLS session; otherwise the §4.3 result type, with the §4.4 failure-details fields.</summary>
public sealed record TlsRptSession(string PolicyDomain, TlsRptPolicy Policy, string? ResultType, string? SendingIp,
    string? ReceivingMx, string? ReceivingIp, DateTimeOffset At)
{
    public bool Success => ResultType is null;

    /// <summary>Key of the failure-details group ("" for success): result type + the three addresses/names.</summary>
    public string ResultKey => ResultType is null ? "" : $"{ResultType}|{SendingIp}|{ReceivingMx}|{ReceivingIp}";
}

/// <summary>Receives each delivery session's outcome. Must be cheap and never throw: it runs on the delivery path.</summary>
public interface ITlsRptRecorder
{
    void Record(TlsRptSession session);
}
