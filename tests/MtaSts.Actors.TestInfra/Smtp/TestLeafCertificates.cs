using System.Security.Cryptography;
using System.Security.Cryptography.X509Certificates;
using MtaSts.Actors.TestInfra.Certificates;

namespace MtaSts.Actors.TestInfra.Smtp;

/// <summary>
/// Leaf (and intermediate) certificates under a <see cref="TestCertificateAuthority"/> for TLS tests. Signs with an
/// explicit <see cref="X509SignatureGenerator"/> so that an RSA leaf can be issued by the ECDSA test root
/// (<c>CertificateRequest.Create(issuerCertificate, …)</c> refuses mixed key algorithms).
/// </summary>
public static class TestLeafCertificates
{
    public static X509Certificate2 Issue(TestCertificateAuthority ca, params string[] dnsNames) =>
        Issue(ca.Root, dnsNames);

    /// <param name="issuer">A CA certificate with its private key (the test root or an intermediate from <see cref="Intermediate"/>).</param>
    public static X509Certificate2 Issue(X509Certificate2 issuer, IReadOnlyList<string> dnsNames, DateTimeOffset? notBefore = null,
        DateTimeOffset? notAfter = null, string? commonName = null, bool includeSan = true)
    {
        using var key = RSA.Create(2048);
        var req = LeafRequest(key, dnsNames, commonName, includeSan);
        var nb = notBefore ?? DateTimeOffset.UtcNow.AddDays(-1);
        var na = notAfter ?? DateTimeOffset.UtcNow.AddYears(1);
        if (na > issuer.NotAfter) na = issuer.NotAfter;
        if (nb < issuer.NotBefore) nb = issuer.NotBefore;
        using var signed = Sign(req, issuer, nb, na);
        return Exportable(signed.CopyWithPrivateKey(key));
    }

    /// <summary>An intermediate CA (ECDSA P-256, path length 0) under <paramref name="issuer"/>.</summary>
    public static X509Certificate2 Intermediate(X509Certificate2 issuer, string name = "MtaSts.Actors Test Intermediate",
        DateTimeOffset? notAfter = null)
    {
        using var key = ECDsa.Create(ECCurve.NamedCurves.nistP256);
        var req = new CertificateRequest($"CN={name}, O=MtaSts.Actors tests", key, HashAlgorithmName.SHA256);
        req.CertificateExtensions.Add(new X509BasicConstraintsExtension(true, true, 0, true));
        req.CertificateExtensions.Add(new X509KeyUsageExtension(X509KeyUsageFlags.KeyCertSign | X509KeyUsageFlags.CrlSign, true));
        req.CertificateExtensions.Add(new X509SubjectKeyIdentifierExtension(req.PublicKey, false));
        var na = notAfter ?? DateTimeOffset.UtcNow.AddYears(2);
        if (na > issuer.NotAfter) na = issuer.NotAfter;
        using var signed = Sign(req, issuer, DateTimeOffset.UtcNow.AddDays(-10), na);
        return Exportable(signed.CopyWithPrivateKey(key));
    }

    private static X509Certificate2 Sign(CertificateRequest req, X509Certificate2 issuer, DateTimeOffset nb, DateTimeOffset na)
    {
        var serial = RandomNumberGenerator.GetBytes(12);
        serial[0] &= 0x7F;
        X509SignatureGenerator generator = issuer.GetECDsaPrivateKey() is { } ec
            ? X509SignatureGenerator.CreateForECDsa(ec)
            : X509SignatureGenerator.CreateForRSA(issuer.GetRSAPrivateKey()
                ?? throw new ArgumentException("issuer has no private key", nameof(issuer)), RSASignaturePadding.Pkcs1);
        return req.Create(issuer.SubjectName, generator, nb, na, serial);
    }

    /// <summary>An RSA serverAuth/clientAuth leaf request with the names as SAN (and the first as CN).</summary>
    internal static CertificateRequest LeafRequest(RSA key, IReadOnlyList<string> dnsNames, string? cn, bool includeSan)
    {
        var req = new CertificateRequest($"CN={cn ?? dnsNames.FirstOrDefault() ?? "localhost"}", key,
            HashAlgorithmName.SHA256, RSASignaturePadding.Pkcs1);
        req.CertificateExtensions.Add(new X509BasicConstraintsExtension(false, false, 0, false));
        req.CertificateExtensions.Add(new X509KeyUsageExtension(
            X509KeyUsageFlags.DigitalSignature | X509KeyUsageFlags.KeyEncipherment, false));
        req.CertificateExtensions.Add(new X509EnhancedKeyUsageExtension(
            new OidCollection { new Oid("1.3.6.1.5.5.7.3.1"), new Oid("1.3.6.1.5.5.7.3.2") }, false));
        if (includeSan && dnsNames.Count > 0)
        {
            var san = new SubjectAlternativeNameBuilder();
            foreach (var n in dnsNames) san.AddDnsName(n);
            req.CertificateExtensions.Add(san.Build());
        }
        return req;
    }

    // Round-trip through PFX so that SslStream on Linux can use the private key.
    internal static X509Certificate2 Exportable(X509Certificate2 cert) =>
        X509CertificateLoader.LoadPkcs12(cert.Export(X509ContentType.Pfx, ""), "", X509KeyStorageFlags.Exportable);
}
