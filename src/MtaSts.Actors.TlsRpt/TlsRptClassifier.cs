using System.Net;
using MtaSts.Actors.Dns;
using MtaSts.Actors.Policy;
using MtaSts.Actors.Policy.Fetch;
using MtaSts.Actors.Smtp.Outbound;
using MtaSts.Actors.Tls;

namespace MtaSts.Actors.TlsRpt;

/// <summary>What the delivery transport knows about one attempt on one MX address (or one skipped MX).</summary>
/// <param name="AppliedPolicy">The MTA-STS policy applied (mode enforce or testing), or null.</param>
/// <param name="PolicyFailure">RFC 8460 §4.3.2.2 failure met while resolving the policy when none could be applied
/// (fetch error, invalid policy, policy host certificate); null when a policy (possibly a cached fallback) applies.</param>
/// <param name="Result">The connection result; null when the planner skipped the MX (no connection).</param>
public sealed record TlsRptAttempt(
    string PolicyDomain,
    StsPolicy? AppliedPolicy,
    TlsRptResultType? PolicyFailure,
    ConnectionSecurity Plan,
    TlsaLookup Tlsa,
    DaneSupport Dane,
    string MxHost,
    IPAddress? ReceivingIp,
    ConnectResult? Result,
    IPAddress? SendingIp,
    DateTimeOffset At);

/// <summary>
/// Turns one attempt into a TLS-RPT session (or nothing: an attempt that never reached TLS negotiation — TCP refused,
/// timeout, greeting refused — is not a TLS session, and a plaintext session where we never tried STARTTLS is none).
/// Policy attribution (RFC 8460 §4.4): TLSA records that governed the MX → tlsa; an applied MTA-STS policy → sts;
/// otherwise no-policy-found (also when the MTA-STS policy could not be fetched: the session then counts as a failure
/// of the §4.3.2.2 type). Pure.
/// </summary>
public static class TlsRptClassifier
{
    public static TlsRptSession? Classify(TlsRptAttempt a)
    {
        ArgumentNullException.ThrowIfNull(a);
        var domain = a.PolicyDomain.Trim().TrimEnd('.').ToLowerInvariant();
        var mx = a.MxHost.Trim().TrimEnd('.').ToLowerInvariant();
        var stsPolicy = a.AppliedPolicy is { Mode: not StsMode.None } p ? StsPolicyOf(p) : null;
        // A skipped MX had no connection: no sending or receiving address to report.
        TlsRptSession S(TlsRptPolicy policy, string? result) => a.Plan.Skip
            ? new(domain, policy, result, null, mx, null, a.At)
            : new(domain, policy, result, a.SendingIp?.ToString(), mx, a.ReceivingIp?.ToString(), a.At);

        if (a.Plan.Skip)
        {
            if (a.Dane != DaneSupport.None)
            {
                switch (a.Tlsa.State)
                {
                    case TlsaState.TempFail: return S(new TlsRptPolicy(TlsRptPolicyType.Tlsa, [], []), TlsRptResult.DnssecInvalid);
                    case TlsaState.Unusable when a.Dane == DaneSupport.Mandatory:
                        return S(new TlsRptPolicy(TlsRptPolicyType.Tlsa, [], []), TlsRptResult.TlsaInvalid);
                    case TlsaState.Absent when a.Dane == DaneSupport.Mandatory:
                        return S(TlsRptPolicy.NoPolicy, TlsRptResult.DaneRequired);
                }
            }
            // MTA-STS enforce: the MX is not listed by the policy (RFC 8461 §4.1); RFC 8460 has no narrower type.
            return stsPolicy is not null ? S(stsPolicy, TlsRptResult.ValidationFailure) : null;
        }

        var policy = a.Plan.GovernedBy == SecuritySource.Dane
            ? new TlsRptPolicy(TlsRptPolicyType.Tlsa, a.Tlsa.Records.Select(Presentation).ToArray(), [])
            : stsPolicy ?? TlsRptPolicy.NoPolicy;

        var r = a.Result;
        if (r is null) return null;
        string? result;
        if (r.Ready)
        {
            if (r.Reports.Count > 0) result = r.Reports[0];                       // report-only finding (testing mode)
            else if (r.Tls is not null) result = null;                            // negotiated TLS
            else if (a.Plan.StartTls != StartTlsPolicy.Never) result = TlsRptResult.StartTlsNotSupported; // offered? no
            else if (a.PolicyFailure is null) return null;                        // we never tried TLS: not a TLS session
            else result = null;
        }
        else
        {
            result = r.Failure switch
            {
                ConnectFailure.StartTlsUnavailable => TlsRptResult.StartTlsNotSupported,
                ConnectFailure.TlsHandshake => TlsRptResult.ValidationFailure,
                ConnectFailure.Verification => FailedCheck(r),
                _ => null,
            };
            if (result is null) return null; // network, timeout, greeting/EHLO refused: no TLS negotiation happened
        }
        if (a.PolicyFailure is { } pf && policy.Type == TlsRptPolicyType.NoPolicyFound)
            result = pf.ToWireString();
        return S(policy, result);
    }

    /// <summary>§4.3.1 type of the enforced certificate check that failed.</summary>
    private static string FailedCheck(ConnectResult r)
    {
        var failed = r.Checks.FirstOrDefault(c => !c.Ok && c.Check.Enforced);
        if (failed is null) return TlsRptResult.ValidationFailure;
        // DANE: no TLSA record of the RRset matched the presented chain (§4.3.2.1 tlsa-invalid).
        if (failed.Check.Kind == CheckKind.Dane) return TlsRptResult.TlsaInvalid;
        return CertificateResult(failed.Error);
    }

    public static string CertificateResult(string? error) => error switch
    {
        CertificateVerifier.NameMismatch => TlsRptResult.CertificateHostMismatch,
        CertificateVerifier.Expired or CertificateVerifier.NotYetValid => TlsRptResult.CertificateExpired,
        CertificateVerifier.UnknownIssuer or CertificateVerifier.SelfSigned => TlsRptResult.CertificateNotTrusted,
        _ => TlsRptResult.ValidationFailure,
    };

    /// <summary>§4.4 policy-string for sts: the policy's lines; mx-host: its mx patterns.</summary>
    public static TlsRptPolicy StsPolicyOf(StsPolicy p)
    {
        var lines = new List<string> { "version: STSv1", "mode: " + p.Mode.ToWireString() };
        lines.AddRange(p.Mx.Select(m => "mx: " + m.Pattern));
        lines.Add("max_age: " + p.MaxAgeSeconds.ToString(System.Globalization.CultureInfo.InvariantCulture));
        return new TlsRptPolicy(TlsRptPolicyType.Sts, lines, p.Mx.Select(m => m.Pattern).ToArray());
    }

    /// <summary>TLSA presentation form, e.g. <c>3 1 1 1F85…</c>.</summary>
    public static string Presentation(TlsaRecord r) => $"{r.Usage} {r.Selector} {r.MatchingType} {Convert.ToHexString(r.Data)}";
}
