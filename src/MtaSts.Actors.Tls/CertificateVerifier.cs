using System.Globalization;
using System.Security.Cryptography;
using System.Security.Cryptography.X509Certificates;

namespace MtaSts.Actors.Tls;

/// <summary>Outcome of a certificate check.</summary>
/// <param name="Error">Null on success; otherwise the reason in the vendor's (OpenSSL's) words where they exist:
/// <c>peer cert does not match domain</c>, <c>unable to get local issuer certificate</c>, <c>certificate has expired</c>.</param>
/// <param name="MatchedName">The reference identifier that matched (PKIX), or null.</param>
public sealed record CertificateVerdict(bool Ok, string? Error, string? MatchedName = null)
{
    public static CertificateVerdict Success(string? matched = null) => new(true, null, matched);
    public static CertificateVerdict Failure(string error) => new(false, error);
}

/// <summary>
/// PKIX chain validation (system roots plus an optional extra CA bundle for private deployments and tests) and
/// RFC 6125 name matching. Thread-safe; create once and share.
/// </summary>
public sealed class CertificateVerifier
{
    public const string NameMismatch = "peer cert does not match domain";
    public const string UnknownIssuer = "unable to get local issuer certificate";
    public const string Expired = "certificate has expired";
    public const string NotYetValid = "certificate is not yet valid";
    public const string SelfSigned = "self signed certificate";
    public const string BadSignature = "certificate signature failure";
    public const string Revoked = "certificate revoked";

    private static readonly Oid ServerAuth = new("1.3.6.1.5.5.7.3.1");
    private readonly X509Certificate2Collection _extraRoots;
    private readonly bool _useSystemRoots;
    private readonly Func<DateTimeOffset> _clock;

    /// <param name="extraRoots">Additional trust anchors (private CA, test CA).</param>
    /// <param name="useSystemRoots">Trust the OS root store as well.</param>
    /// <param name="clock">Validation time (tests); defaults to now.</param>
    public CertificateVerifier(IEnumerable<X509Certificate2>? extraRoots = null, bool useSystemRoots = true,
        Func<DateTimeOffset>? clock = null)
    {
        _extraRoots = new X509Certificate2Collection();
        if (extraRoots is not null) foreach (var r in extraRoots) _extraRoots.Add(r);
        _useSystemRoots = useSystemRoots;
        _clock = clock ?? (() => DateTimeOffset.UtcNow);
    }

    /// <summary>The system roots only.</summary>
    public static CertificateVerifier System { get; } = new();

    /// <summary>Trusts the system roots (unless told otherwise) plus every certificate in a PEM bundle.</summary>
    public static CertificateVerifier FromPem(string pemBundle, bool useSystemRoots = true)
    {
        var c = new X509Certificate2Collection();
        c.ImportFromPem(pemBundle);
        return new CertificateVerifier(c, useSystemRoots);
    }

    public static CertificateVerifier FromPemFile(string path, bool useSystemRoots = true) =>
        FromPem(File.ReadAllText(path), useSystemRoots);

    public IReadOnlyList<X509Certificate2> ExtraRoots => _extraRoots.ToArray();

    /// <summary>Chain check plus name check: the chain must validate and the certificate must match at least one of
    /// <paramref name="referenceIds"/> (RFC 6125 §6). The chain error wins over the name error (as OpenSSL reports it).</summary>
    /// <param name="presented">The intermediates the peer sent (leaf excluded or included, either is fine).</param>
    public CertificateVerdict Verify(X509Certificate2 leaf, IEnumerable<X509Certificate2>? presented,
        IReadOnlyList<string> referenceIds)
    {
        var chain = VerifyChain(leaf, presented);
        if (!chain.Ok) return chain;
        var matched = MatchingReference(leaf, referenceIds);
        return matched is null ? CertificateVerdict.Failure(NameMismatch) : CertificateVerdict.Success(matched);
    }

    /// <summary>PKIX path validation (RFC 5280) to the system roots or the extra roots. No revocation checks and no
    /// certificate downloads (an MTA must not block on AIA/OCSP fetches).</summary>
    public CertificateVerdict VerifyChain(X509Certificate2 leaf, IEnumerable<X509Certificate2>? presented)
    {
        ArgumentNullException.ThrowIfNull(leaf);
        var extra = presented?.Where(c => !c.RawDataMemory.Span.SequenceEqual(leaf.RawDataMemory.Span)).ToArray()
                    ?? Array.Empty<X509Certificate2>();
        string? firstError = null;
        if (_useSystemRoots)
        {
            var error = Build(leaf, extra, customRoots: null);
            if (error is null) return CertificateVerdict.Success();
            firstError = error;
        }
        if (_extraRoots.Count > 0)
        {
            var error = Build(leaf, extra, _extraRoots);
            if (error is null) return CertificateVerdict.Success();
            // Prefer the error of the attempt that got further (not "unknown issuer") when both failed.
            if (firstError is null || firstError == UnknownIssuer || firstError == SelfSigned) firstError = error;
        }
        return CertificateVerdict.Failure(firstError ?? UnknownIssuer);
    }

    private string? Build(X509Certificate2 leaf, X509Certificate2[] extra, X509Certificate2Collection? customRoots)
    {
        using var chain = new X509Chain();
        var p = chain.ChainPolicy;
        p.RevocationMode = X509RevocationMode.NoCheck;
        p.DisableCertificateDownloads = true;
        p.VerificationTime = _clock().UtcDateTime;
        p.ApplicationPolicy.Add(ServerAuth);
        p.ExtraStore.AddRange(extra);
        if (customRoots is not null)
        {
            p.TrustMode = X509ChainTrustMode.CustomRootTrust;
            p.CustomTrustStore.AddRange(customRoots);
        }
        if (chain.Build(leaf)) return null;
        return Describe(leaf, chain, _clock());
    }

    private static string Describe(X509Certificate2 leaf, X509Chain chain, DateTimeOffset now)
    {
        var flags = X509ChainStatusFlags.NoError;
        foreach (var s in chain.ChainStatus) flags |= s.Status;
        if (flags.HasFlag(X509ChainStatusFlags.NotTimeValid))
            return FirstTimeInvalid(chain, now) is { } c && c.NotBefore.ToUniversalTime() > now.UtcDateTime ? NotYetValid : Expired;
        if (flags.HasFlag(X509ChainStatusFlags.NotSignatureValid)) return BadSignature;
        if (flags.HasFlag(X509ChainStatusFlags.Revoked)) return Revoked;
        if (flags.HasFlag(X509ChainStatusFlags.UntrustedRoot) || flags.HasFlag(X509ChainStatusFlags.PartialChain))
            return IsSelfIssued(leaf) && chain.ChainElements.Count <= 1 ? SelfSigned : UnknownIssuer;
        if (flags.HasFlag(X509ChainStatusFlags.NotValidForUsage)) return "unsupported certificate purpose";
        return chain.ChainStatus.Length > 0 ? chain.ChainStatus[0].StatusInformation.Trim() : UnknownIssuer;
    }

    private static X509Certificate2? FirstTimeInvalid(X509Chain chain, DateTimeOffset now)
    {
        foreach (var e in chain.ChainElements)
            if (e.Certificate.NotAfter.ToUniversalTime() < now.UtcDateTime || e.Certificate.NotBefore.ToUniversalTime() > now.UtcDateTime)
                return e.Certificate;
        return null;
    }

    private static bool IsSelfIssued(X509Certificate2 c) => c.SubjectName.RawData.AsSpan().SequenceEqual(c.IssuerName.RawData);

    // ---------------------------------------------------------------- RFC 6125 name matching

    /// <summary>The first reference identifier the certificate matches, or null.</summary>
    public static string? MatchingReference(X509Certificate2 cert, IReadOnlyList<string> referenceIds)
    {
        var presented = PresentedIdentifiers(cert);
        foreach (var r in referenceIds)
        {
            var reference = NormalizeReference(r);
            if (reference is null) continue;
            if (presented.Any(p => MatchesPresented(p, reference))) return r;
        }
        return null;
    }

    public static bool MatchesName(X509Certificate2 cert, string referenceId) => MatchingReference(cert, new[] { referenceId }) is not null;

    /// <summary>RFC 6125 §6.4.4: the SAN DNS-IDs; the subject CN only when the certificate has no DNS-ID at all.</summary>
    public static IReadOnlyList<string> PresentedIdentifiers(X509Certificate2 cert)
    {
        ArgumentNullException.ThrowIfNull(cert);
        var names = new List<string>();
        foreach (var ext in cert.Extensions)
            if (ext is X509SubjectAlternativeNameExtension san)
                names.AddRange(san.EnumerateDnsNames());
            else if (ext.Oid?.Value == "2.5.29.17")
                names.AddRange(new X509SubjectAlternativeNameExtension(ext.RawData, ext.Critical).EnumerateDnsNames());
        if (names.Count > 0) return names;
        string? cn = null;
        foreach (var rdn in cert.SubjectName.EnumerateRelativeDistinguishedNames())
            if (rdn.GetSingleElementType().Value == "2.5.4.3") cn = rdn.GetSingleElementValue(); // most specific = last
        return cn is null ? names : new[] { cn };
    }

    /// <summary>RFC 6125 §6.4.1/§6.4.3: case-insensitive A-label comparison; a wildcard only as the complete left-most
    /// label, matching exactly one label, and never directly under a single-label name (<c>*.com</c>).</summary>
    public static bool MatchesPresented(string presented, string reference)
    {
        var p = NormalizeReference(presented);
        var r = NormalizeReference(reference);
        if (p is null || r is null) return false;
        if (!p.Contains('*')) return string.Equals(p, r, StringComparison.Ordinal);
        if (!p.StartsWith("*.", StringComparison.Ordinal) || p.IndexOf('*', 1) >= 0) return false; // f*.x, *.*.x, a.*.x
        var suffix = p[1..];                        // ".example.com"
        if (suffix.Count(ch => ch == '.') < 2) return false;   // "*.com"
        if (!r.EndsWith(suffix, StringComparison.Ordinal)) return false;
        var label = r[..^suffix.Length];
        return label.Length > 0 && !label.Contains('.');
    }

    /// <summary>Lower-case A-label form without the trailing dot; null if not a usable DNS name.</summary>
    public static string? NormalizeReference(string name)
    {
        if (string.IsNullOrWhiteSpace(name)) return null;
        var n = name.Trim().TrimEnd('.');
        if (n.Length == 0) return null;
        if (n.Any(ch => ch > 0x7F))
        {
            try { n = new IdnMapping().GetAscii(n); }
            catch (ArgumentException) { return null; }
        }
        return n.ToLowerInvariant();
    }
}
