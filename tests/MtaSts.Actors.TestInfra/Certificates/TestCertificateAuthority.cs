using System.Security.Cryptography;
using System.Security.Cryptography.X509Certificates;
using System.Text;

namespace MtaSts.Actors.TestInfra.Certificates;

/// <summary>
/// A private CA for loopback tests: a root, and leaf certificates for any DNS names (valid, expired,
/// not-yet-valid, wrong name), plus self-signed ones. Nothing here is trusted by the OS; code under test
/// trusts it through its "extra CA bundle" setting (<see cref="WriteRootPem"/>).
/// </summary>
public sealed class TestCertificateAuthority : IDisposable
{
    public X509Certificate2 Root { get; }

    public TestCertificateAuthority(string name = "MtaSts.Actors Test Root CA")
    {
        using var key = ECDsa.Create(ECCurve.NamedCurves.nistP256);
        var req = new CertificateRequest($"CN={name}, O=MtaSts.Actors tests", key, HashAlgorithmName.SHA256);
        req.CertificateExtensions.Add(new X509BasicConstraintsExtension(true, false, 0, true));
        req.CertificateExtensions.Add(new X509KeyUsageExtension(X509KeyUsageFlags.KeyCertSign | X509KeyUsageFlags.CrlSign, true));
        req.CertificateExtensions.Add(new X509SubjectKeyIdentifierExtension(req.PublicKey, false));
        Root = req.CreateSelfSigned(DateTimeOffset.UtcNow.AddDays(-30), DateTimeOffset.UtcNow.AddYears(5));
    }

    /// <summary>A leaf certificate (with private key) for the given DNS names, signed by this CA.</summary>
    /// <param name="notBefore">Defaults to one day ago.</param>
    /// <param name="notAfter">Defaults to one year ahead; pass a past date for an expired certificate.</param>
    /// <param name="commonName">Subject CN; defaults to the first name.</param>
    public X509Certificate2 Issue(IReadOnlyList<string> dnsNames, DateTimeOffset? notBefore = null,
        DateTimeOffset? notAfter = null, string? commonName = null, bool includeSan = true) =>
        Smtp.TestLeafCertificates.Issue(Root, dnsNames, notBefore, notAfter, commonName, includeSan);

    public X509Certificate2 Issue(params string[] dnsNames) => Issue((IReadOnlyList<string>)dnsNames);

    /// <summary>A certificate not chained to any trusted root.</summary>
    public static X509Certificate2 SelfSigned(params string[] dnsNames)
    {
        using var key = RSA.Create(2048);
        var req = Smtp.TestLeafCertificates.LeafRequest(key, dnsNames, null, true);
        using var cert = req.CreateSelfSigned(DateTimeOffset.UtcNow.AddDays(-1), DateTimeOffset.UtcNow.AddYears(1));
        return Smtp.TestLeafCertificates.Exportable(cert);
    }

    public string RootPem => Pem(Root);

    public static string Pem(X509Certificate2 cert) =>
        "-----BEGIN CERTIFICATE-----\n" + Convert.ToBase64String(cert.RawData, Base64FormattingOptions.InsertLineBreaks)
        + "\n-----END CERTIFICATE-----\n";

    /// <summary>PEM of the private key (PKCS#8), for daemons configured from files (nginx, Postfix).</summary>
    public static string KeyPem(X509Certificate2 cert)
    {
        using AsymmetricAlgorithm key = (AsymmetricAlgorithm?)cert.GetRSAPrivateKey() ?? cert.GetECDsaPrivateKey()
            ?? throw new InvalidOperationException("certificate has no private key");
        return new string(PemEncoding.Write("PRIVATE KEY", key.ExportPkcs8PrivateKey()));
    }

    /// <summary>Writes the root as a PEM bundle file and returns its path.</summary>
    public string WriteRootPem(string directory)
    {
        Directory.CreateDirectory(directory);
        var path = Path.Combine(directory, "test-root-ca.pem");
        File.WriteAllText(path, RootPem, Encoding.ASCII);
        return path;
    }

    public void Dispose() => Root.Dispose();
}
