using System.Security.Cryptography.X509Certificates;
using MtaSts.Actors.TestInfra.Certificates;
using MtaSts.Actors.TestInfra.Smtp;

namespace MtaSts.Actors.Tls.Tests;

/// <summary>Certificates for these tests. Leaves are issued through <see cref="TestLeafCertificates"/> (explicit
/// signature generator: the ECDSA test root cannot sign an RSA request through CertificateRequest.Create(issuer)).</summary>
internal static class TestChains
{
    public static X509Certificate2 Leaf(this TestCertificateAuthority ca, params string[] names) => TestLeafCertificates.Issue(ca, names);

    public static X509Certificate2 Leaf(this TestCertificateAuthority ca, IReadOnlyList<string> names, DateTimeOffset? notBefore = null,
        DateTimeOffset? notAfter = null, string? commonName = null, bool includeSan = true) =>
        TestLeafCertificates.Issue(ca.Root, names, notBefore, notAfter, commonName, includeSan);

    public static (X509Certificate2 Intermediate, X509Certificate2 Leaf) WithIntermediate(TestCertificateAuthority ca, string dnsName,
        DateTimeOffset? leafNotAfter = null)
    {
        var intermediate = TestLeafCertificates.Intermediate(ca.Root);
        var notAfter = leafNotAfter ?? DateTimeOffset.UtcNow.AddYears(1);
        var notBefore = notAfter < DateTimeOffset.UtcNow ? notAfter.AddDays(-5) : DateTimeOffset.UtcNow.AddDays(-1);
        var leaf = TestLeafCertificates.Issue(intermediate, new[] { dnsName }, notBefore, notAfter);
        return (intermediate, leaf);
    }
}
