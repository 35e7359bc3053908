using System.Formats.Asn1;
using System.Security.Cryptography;
using System.Security.Cryptography.X509Certificates;
using MtaSts.Actors.Dns;

namespace MtaSts.Actors.Tls;

/// <param name="Matched">The TLSA record that authenticated the peer.</param>
/// <param name="Depth">Chain depth of the matched certificate (0 = leaf).</param>
public sealed record DaneVerdict(bool Ok, string? Error, TlsaRecord? Matched = null, int Depth = -1)
{
    public static DaneVerdict Failure(string error) => new(false, error);
}

/// <summary>
/// DANE for SMTP (RFC 7672, RFC 6698, RFC 7671): usage 3 DANE-EE and usage 2 DANE-TA; selector 0 (full certificate)
/// and 1 (SubjectPublicKeyInfo); matching type 0 (exact), 1 (SHA-256), 2 (SHA-512). Usages 0/1 (PKIX-TA/PKIX-EE) are
/// not usable for SMTP (RFC 7672 §3.1.3) and are ignored.
/// </summary>
public static class DaneVerifier
{
    public const string NoUsableRecords = "DANE: no usable TLSA records";
    public const string NoMatch = "DANE: certificate does not match any TLSA record";

    /// <summary>RFC 7672 §3.1.3 / RFC 7671 §4: only DANE-TA(2) and DANE-EE(3), with known selector and matching type
    /// and a digest of the right length, are usable.</summary>
    public static bool IsUsable(TlsaRecord r)
    {
        ArgumentNullException.ThrowIfNull(r);
        if (r.Usage is not (2 or 3) || r.Selector > 1) return false;
        return r.MatchingType switch
        {
            0 => r.Data.Length > 0,
            1 => r.Data.Length == 32,
            2 => r.Data.Length == 64,
            _ => false,
        };
    }

    /// <summary>The certificate association data a TLSA record with this selector and matching type would carry
    /// (RFC 6698 §2.1.2-§2.1.3). Useful to publish records and in tests.</summary>
    public static byte[] AssociationData(X509Certificate2 cert, byte selector, byte matchingType)
    {
        ArgumentNullException.ThrowIfNull(cert);
        var selected = selector switch
        {
            0 => cert.RawData,
            1 => SubjectPublicKeyInfo(cert),
            _ => throw new ArgumentOutOfRangeException(nameof(selector), selector, "selector must be 0 or 1"),
        };
        return matchingType switch
        {
            0 => selected,
            1 => SHA256.HashData(selected),
            2 => SHA512.HashData(selected),
            _ => throw new ArgumentOutOfRangeException(nameof(matchingType), matchingType, "matching type must be 0, 1 or 2"),
        };
    }

    public static TlsaRecord RecordFor(X509Certificate2 cert, byte usage, byte selector, byte matchingType) =>
        new(usage, selector, matchingType, AssociationData(cert, selector, matchingType));

    public static bool Matches(TlsaRecord r, X509Certificate2 cert)
    {
        if (r.Selector > 1 || r.MatchingType > 2) return false;
        return CryptographicOperations.FixedTimeEquals(AssociationData(cert, r.Selector, r.MatchingType), r.Data);
    }

    /// <summary>
    /// Authenticates a peer chain with TLSA records.
    /// DANE-EE(3): the leaf matches; names and validity dates are ignored (RFC 7672 §3.1.1).
    /// DANE-TA(2): a certificate the server presented (or, for "2 0 0", the one in DNS, RFC 7671 §5.2.2) matches; the
    /// leaf chains to it with valid signatures and dates; and the leaf names one of <paramref name="referenceIds"/>
    /// — the MX host, and the TLSA base domain if it differs (RFC 7672 §3.2.2), wildcards allowed (§3.2.3).
    /// </summary>
    /// <param name="presented">Certificates the server sent (leaf may be included).</param>
    public static DaneVerdict Verify(X509Certificate2 leaf, IReadOnlyList<X509Certificate2> presented,
        IReadOnlyList<TlsaRecord> tlsa, IReadOnlyList<string> referenceIds, DateTimeOffset? now = null)
    {
        ArgumentNullException.ThrowIfNull(leaf);
        var usable = tlsa.Where(IsUsable).ToArray();
        if (usable.Length == 0) return DaneVerdict.Failure(NoUsableRecords);

        foreach (var r in usable.Where(r => r.Usage == 3))
            if (Matches(r, leaf)) return new DaneVerdict(true, null, r, 0);

        var ta = usable.Where(r => r.Usage == 2).ToArray();
        if (ta.Length == 0) return DaneVerdict.Failure(NoMatch);

        using var chain = new X509Chain();
        var p = chain.ChainPolicy;
        p.RevocationMode = X509RevocationMode.NoCheck;
        p.DisableCertificateDownloads = true;
        p.VerificationTime = (now ?? DateTimeOffset.UtcNow).UtcDateTime;
        // The TA comes from DNS, not from a root store: an unknown root or a partial chain is expected.
        p.VerificationFlags = X509VerificationFlags.AllowUnknownCertificateAuthority;
        foreach (var c in presented)
            if (!c.RawDataMemory.Span.SequenceEqual(leaf.RawDataMemory.Span)) p.ExtraStore.Add(c);
        var dnsAnchors = new List<X509Certificate2>();
        foreach (var r in ta.Where(r => r.Selector == 0 && r.MatchingType == 0))
        {
            try { var c = X509CertificateLoader.LoadCertificate(r.Data); dnsAnchors.Add(c); p.ExtraStore.Add(c); }
            catch (CryptographicException) { /* not a certificate: cannot serve as an anchor */ }
        }
        try
        {
            chain.Build(leaf);
            var elements = chain.ChainElements;
            var presentedSet = presented.Select(c => c.Thumbprint).Concat(dnsAnchors.Select(c => c.Thumbprint))
                .ToHashSet(StringComparer.OrdinalIgnoreCase);
            for (int depth = 1; depth < elements.Count; depth++)
            {
                var cert = elements[depth].Certificate;
                // RFC 7672 §3.2.2: the TA must be one the server sent (or fully published in DNS), not one we happen to know.
                if (!presentedSet.Contains(cert.Thumbprint)) continue;
                var record = ta.FirstOrDefault(r => Matches(r, cert));
                if (record is null) continue;
                for (int i = 0; i <= depth; i++)
                {
                    var bad = elements[i].ChainElementStatus
                        .Select(s => s.Status)
                        .Where(s => s is not (X509ChainStatusFlags.UntrustedRoot or X509ChainStatusFlags.PartialChain
                            or X509ChainStatusFlags.NoError or X509ChainStatusFlags.RevocationStatusUnknown
                            or X509ChainStatusFlags.OfflineRevocation))
                        .ToArray();
                    if (bad.Length > 0)
                        return DaneVerdict.Failure(bad[0] == X509ChainStatusFlags.NotTimeValid
                            ? CertificateVerifier.Expired
                            : bad[0] == X509ChainStatusFlags.NotSignatureValid ? CertificateVerifier.BadSignature
                            : $"DANE: chain error {bad[0]}");
                }
                var matched = CertificateVerifier.MatchingReference(leaf, referenceIds);
                return matched is null
                    ? DaneVerdict.Failure(CertificateVerifier.NameMismatch)
                    : new DaneVerdict(true, null, record, depth);
            }
            return DaneVerdict.Failure(NoMatch);
        }
        finally
        {
            foreach (var c in dnsAnchors) c.Dispose();
        }
    }

    /// <summary>The DER SubjectPublicKeyInfo exactly as encoded in the certificate (RFC 5280 §4.1), not re-encoded.</summary>
    public static byte[] SubjectPublicKeyInfo(X509Certificate2 cert)
    {
        var reader = new AsnReader(cert.RawData, AsnEncodingRules.DER);
        var certificate = reader.ReadSequence();
        var tbs = certificate.ReadSequence();
        if (tbs.PeekTag().HasSameClassAndValue(new Asn1Tag(TagClass.ContextSpecific, 0, true))) tbs.ReadEncodedValue(); // version
        tbs.ReadEncodedValue(); // serialNumber
        tbs.ReadEncodedValue(); // signature
        tbs.ReadEncodedValue(); // issuer
        tbs.ReadEncodedValue(); // validity
        tbs.ReadEncodedValue(); // subject
        return tbs.ReadEncodedValue().ToArray(); // subjectPublicKeyInfo
    }
}
