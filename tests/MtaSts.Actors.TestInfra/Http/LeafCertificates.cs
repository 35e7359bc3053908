using System.Security.Cryptography;
using System.Security.Cryptography.X509Certificates;

namespace MtaSts.Actors.TestInfra.Http;

/// <summary>
/// Leaf certificates (ECDSA P-256, serverAuth, SAN) signed by a CA certificate that carries its private key.
/// Used by <see cref="PolicyHttpsServer"/>: TestCertificateAuthority.Issue currently pairs an ECDSA root with an RSA
/// leaf request, which CertificateRequest.Create(issuer, …) rejects ("use the X509SignatureGenerator overload").
/// </summary>
public static class LeafCertificates
{
    public static X509Certificate2 Issue(X509Certificate2 issuer, IReadOnlyList<string> dnsNames,
        DateTimeOffset? notBefore = null, DateTimeOffset? notAfter = null)
    {
        using var key = ECDsa.Create(ECCurve.NamedCurves.nistP256);
        var req = new CertificateRequest($"CN={dnsNames.FirstOrDefault() ?? "localhost"}", key, HashAlgorithmName.SHA256);
        req.CertificateExtensions.Add(new X509BasicConstraintsExtension(false, false, 0, false));
        req.CertificateExtensions.Add(new X509KeyUsageExtension(X509KeyUsageFlags.DigitalSignature, false));
        req.CertificateExtensions.Add(new X509EnhancedKeyUsageExtension(
            new OidCollection { new Oid("1.3.6.1.5.5.7.3.1"), new Oid("1.3.6.1.5.5.7.3.2") }, false));
        var san = new SubjectAlternativeNameBuilder();
        foreach (var n in dnsNames) san.AddDnsName(n);
        req.CertificateExtensions.Add(san.Build());
        var nb = notBefore ?? DateTimeOffset.UtcNow.AddDays(-1);
        var na = notAfter ?? DateTimeOffset.UtcNow.AddYears(1);
        if (na > issuer.NotAfter) na = issuer.NotAfter;
        if (nb < issuer.NotBefore) nb = issuer.NotBefore;
        var serial = RandomNumberGenerator.GetBytes(12);
        serial[0] &= 0x7F;
        using var signed = issuer.GetECDsaPrivateKey() is { } ecKey
            ? req.Create(issuer.SubjectName, X509SignatureGenerator.CreateForECDsa(ecKey), nb, na, serial)
            : req.Create(issuer, nb, na, serial);
        using var withKey = signed.CopyWithPrivateKey(key);
        // Round-trip through PFX so that SslStream on Linux can use the private key.
        return X509CertificateLoader.LoadPkcs12(withKey.Export(X509ContentType.Pfx, ""), "", X509KeyStorageFlags.Exportable);
    }
}
