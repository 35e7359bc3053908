using System.Buffers.Binary;
using System.Collections.Concurrent;
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
/// A successful path validation is remembered for a short time (<see cref="DefaultChainCacheTime"/>), keyed by the exact
/// bytes of the leaf and of every certificate the peer presented: a connection to an MX that presents the same
/// certificates skips the X509 chain build (two per handshake with a private CA: system roots, then the extra roots).
/// Only the path result is reused — it depends on nothing but those bytes, this verifier's trust anchors and the time —
/// and only while the verification time is inside every chain certificate's validity period; the name check (RFC 6125)
/// runs on every call, for the reference identifiers of that call. Failures are never remembered.
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

    /// <summary>How long a successful path validation is reused (a change to the OS root store is seen within it).</summary>
    public static readonly TimeSpan DefaultChainCacheTime = TimeSpan.FromSeconds(60);

    /// <summary>Distinct certificate sets remembered; beyond it the expired ones are dropped, then all.</summary>
    internal const int ChainCacheLimit = 4096;

    private static readonly Oid ServerAuth = new("1.3.6.1.5.5.7.3.1");
    private readonly X509Certificate2Collection _extraRoots;
    private readonly bool _useSystemRoots;
    private readonly Func<DateTimeOffset> _clock;
    private readonly TimeSpan _chainCacheTime;
    private readonly ConcurrentDictionary<string, ValidPath> _validPaths = new(StringComparer.Ordinal);
    private long _chainBuilds;

    /// <summary>A validated path: usable from <see cref="From"/> to <see cref="Until"/> (the chain certificates' common
    /// validity period, exclusive end) and no later than <see cref="Expires"/> (cached time).</summary>
    private sealed record ValidPath(DateTime From, DateTime Until, DateTime Expires)
    {
        public bool Covers(DateTime now) => now >= From && now < Until && now < Expires;
    }

    /// <param name="extraRoots">Additional trust anchors (private CA, test CA).</param>
    /// <param name="useSystemRoots">Trust the OS root store as well.</param>
    /// <param name="clock">Validation time (tests); defaults to now.</param>
    /// <param name="chainCacheTime">How long a successful path validation is reused (null: <see cref="DefaultChainCacheTime"/>;
    /// zero: never).</param>
    public CertificateVerifier(IEnumerable<X509Certificate2>? extraRoots = null, bool useSystemRoots = true,
        Func<DateTimeOffset>? clock = null, TimeSpan? chainCacheTime = null)
    {
        _extraRoots = new X509Certificate2Collection();
        if (extraRoots is not null) foreach (var r in extraRoots) _extraRoots.Add(r);
        _useSystemRoots = useSystemRoots;
        _clock = clock ?? (() => DateTimeOffset.UtcNow);
        _chainCacheTime = chainCacheTime ?? DefaultChainCacheTime;
    }

    /// <summary>X509 chain builds done so far (a cached path needs none).</summary>
    public long ChainBuilds => Interlocked.Read(ref _chainBuilds);

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
        var now = _clock();
        var key = _chainCacheTime > TimeSpan.Zero ? PathKey(leaf, extra) : null;
        if (key is not null && _validPaths.TryGetValue(key, out var known) && known.Covers(now.UtcDateTime)) return CertificateVerdict.Success();
        string? firstError = null;
        if (_useSystemRoots)
        {
            var error = Build(leaf, extra, customRoots: null, now, key);
            if (error is null) return CertificateVerdict.Success();
            firstError = error;
        }
        if (_extraRoots.Count > 0)
        {
            var error = Build(leaf, extra, _extraRoots, now, key);
            if (error is null) return CertificateVerdict.Success();
            // Prefer the error of the attempt that got further (not "unknown issuer") when both failed.
            if (firstError is null || firstError == UnknownIssuer || firstError == SelfSigned) firstError = error;
        }
        return CertificateVerdict.Failure(firstError ?? UnknownIssuer);
    }

    /// <param name="key">Where to remember a success (null: not remembered).</param>
    private string? Build(X509Certificate2 leaf, X509Certificate2[] extra, X509Certificate2Collection? customRoots, DateTimeOffset now,
        string? key)
    {
        using var chain = new X509Chain();
        var p = chain.ChainPolicy;
        p.RevocationMode = X509RevocationMode.NoCheck;
        p.DisableCertificateDownloads = true;
        p.VerificationTime = now.UtcDateTime;
        p.ApplicationPolicy.Add(ServerAuth);
        p.ExtraStore.AddRange(extra);
        if (customRoots is not null)
        {
            p.TrustMode = X509ChainTrustMode.CustomRootTrust;
            p.CustomTrustStore.AddRange(customRoots);
        }
        Interlocked.Increment(ref _chainBuilds);
        if (!chain.Build(leaf)) return Describe(leaf, chain, now);
        if (key is not null) Remember(key, chain, now.UtcDateTime);
        return null;
    }

    private void Remember(string key, X509Chain chain, DateTime now)
    {
        var from = DateTime.MinValue;
        var until = DateTime.MaxValue;
        foreach (var e in chain.ChainElements)
        {
            var notBefore = e.Certificate.NotBefore.ToUniversalTime();
            var notAfter = e.Certificate.NotAfter.ToUniversalTime();
            if (notBefore > from) from = notBefore;
            if (notAfter < until) until = notAfter;
        }
        if (_validPaths.Count >= ChainCacheLimit)
        {
            foreach (var (k, v) in _validPaths)
                if (!v.Covers(now)) _validPaths.TryRemove(k, out _);
            if (_validPaths.Count >= ChainCacheLimit) _validPaths.Clear();
        }
        _validPaths[key] = new ValidPath(from, until, now + _chainCacheTime);
    }

    /// <summary>SHA-256 over the leaf and the other presented certificates, each length-prefixed, in the order given.</summary>
    private static string PathKey(X509Certificate2 leaf, X509Certificate2[] extra)
    {
        using var hash = IncrementalHash.CreateHash(HashAlgorithmName.SHA256);
        Span<byte> length = stackalloc byte[4];
        for (var i = -1; i < extra.Length; i++)
        {
            var raw = (i < 0 ? leaf : extra[i]).RawDataMemory.Span;
            BinaryPrimitives.WriteInt32BigEndian(length, raw.Length);
            hash.AppendData(length);
            hash.AppendData(raw);
        }
        return Convert.ToHexString(hash.GetHashAndReset());
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
