using System.Security.Cryptography.X509Certificates;
using MtaSts.Actors.TestInfra.Certificates;

namespace MtaSts.Actors.Tls.Tests;

public sealed class CertificateVerifierTests : IDisposable
{
    private readonly TestCertificateAuthority _ca = new();
    private readonly CertificateVerifier _verifier;

    public CertificateVerifierTests() => _verifier = new CertificateVerifier(new[] { _ca.Root });

    public void Dispose() => _ca.Dispose();

    [Fact]
    public void Valid_certificate_for_the_domain_passes()
    {
        using var cert = _ca.Leaf("example.com", "mx.example.com");
        var v = _verifier.Verify(cert, null, new[] { "example.com" });
        Assert.True(v.Ok, v.Error);
        Assert.Equal("example.com", v.MatchedName);
    }

    [Fact]
    public void Wrong_name_gives_the_vendor_message()
    {
        using var cert = _ca.Leaf("mx.other.net");
        var v = _verifier.Verify(cert, null, new[] { "example.com" });
        Assert.False(v.Ok);
        Assert.Equal("peer cert does not match domain", v.Error);
    }

    [Fact]
    public void Expired_certificate()
    {
        using var cert = _ca.Leaf(new[] { "example.com" }, DateTimeOffset.UtcNow.AddDays(-20), DateTimeOffset.UtcNow.AddDays(-1));
        Assert.Equal("certificate has expired", _verifier.Verify(cert, null, new[] { "example.com" }).Error);
    }

    [Fact]
    public void Not_yet_valid_certificate()
    {
        using var cert = _ca.Leaf(new[] { "example.com" }, DateTimeOffset.UtcNow.AddDays(2), DateTimeOffset.UtcNow.AddDays(20));
        Assert.Equal(CertificateVerifier.NotYetValid, _verifier.Verify(cert, null, new[] { "example.com" }).Error);
    }

    [Fact]
    public void Self_signed_certificate()
    {
        using var cert = TestCertificateAuthority.SelfSigned("example.com");
        Assert.Equal(CertificateVerifier.SelfSigned, _verifier.Verify(cert, null, new[] { "example.com" }).Error);
    }

    [Fact]
    public void Certificate_from_an_unknown_ca()
    {
        using var other = new TestCertificateAuthority("Some Other CA");
        using var cert = other.Leaf("example.com");
        Assert.Equal("unable to get local issuer certificate", _verifier.Verify(cert, null, new[] { "example.com" }).Error);
    }

    [Fact]
    public void Test_ca_is_not_trusted_without_the_extra_bundle()
    {
        using var cert = _ca.Leaf("example.com");
        var systemOnly = new CertificateVerifier();
        Assert.Equal(CertificateVerifier.UnknownIssuer, systemOnly.Verify(cert, null, new[] { "example.com" }).Error);
    }

    [Fact]
    public void Pem_bundle_trusts_its_roots()
    {
        using var cert = _ca.Leaf("example.com");
        var dir = Path.Combine(Path.GetTempPath(), "mtasts-tls-" + Guid.NewGuid().ToString("N"));
        try
        {
            var v = CertificateVerifier.FromPemFile(_ca.WriteRootPem(dir), useSystemRoots: false);
            Assert.True(v.Verify(cert, null, new[] { "example.com" }).Ok);
            Assert.Single(v.ExtraRoots);
        }
        finally { Directory.Delete(dir, true); }
    }

    [Fact]
    public void Hosted_style_certificate_naming_only_the_mx_host()
    {
        using var cert = _ca.Leaf("mx1.hosting.example.net");
        Assert.Equal(CertificateVerifier.NameMismatch, _verifier.Verify(cert, null, new[] { "customer.example" }).Error);
        var hosted = _verifier.Verify(cert, null, new[] { "customer.example", "mx1.hosting.example.net" });
        Assert.True(hosted.Ok);
        Assert.Equal("mx1.hosting.example.net", hosted.MatchedName);
    }

    [Theory]
    [InlineData("mx.example.com", true)]
    [InlineData("MX.Example.COM.", true)]
    [InlineData("example.com", false)]
    [InlineData("a.mx.example.com", false)]
    [InlineData("mx.example.org", false)]
    public void Wildcard_certificate(string reference, bool expected)
    {
        using var cert = _ca.Leaf("*.example.com");
        Assert.Equal(expected, _verifier.Verify(cert, null, new[] { reference }).Ok);
    }

    [Theory]
    [InlineData("*.example.com", "mail.example.com", true)]
    [InlineData("f*.example.com", "foo.example.com", false)]
    [InlineData("*oo.example.com", "foo.example.com", false)]
    [InlineData("mail.*.com", "mail.example.com", false)]
    [InlineData("*.*.example.com", "a.b.example.com", false)]
    [InlineData("*.com", "example.com", false)]
    [InlineData("Mail.Example.com.", "mail.example.com", true)]
    [InlineData("mail.example.com", "mail.example.com.", true)]
    [InlineData("xn--aca-6ma.example", "ñaca.example", true)]
    public void Rfc6125_presented_identifier_rules(string presented, string reference, bool expected) =>
        Assert.Equal(expected, CertificateVerifier.MatchesPresented(presented, reference));

    [Fact]
    public void Common_name_is_used_only_without_san_dns_ids()
    {
        using var cnOnly = _ca.Leaf(new[] { "mx.example.com" }, includeSan: false);
        Assert.True(CertificateVerifier.MatchesName(cnOnly, "mx.example.com"));
        using var withSan = _ca.Leaf(new[] { "other.example.com" }, commonName: "mx.example.com");
        Assert.False(CertificateVerifier.MatchesName(withSan, "mx.example.com"));
        Assert.Equal(new[] { "other.example.com" }, CertificateVerifier.PresentedIdentifiers(withSan));
    }

    [Fact]
    public void Chain_error_is_reported_before_name_error()
    {
        using var cert = _ca.Leaf(new[] { "other.net" }, DateTimeOffset.UtcNow.AddDays(-20), DateTimeOffset.UtcNow.AddDays(-1));
        Assert.Equal(CertificateVerifier.Expired, _verifier.Verify(cert, null, new[] { "example.com" }).Error);
    }

    [Fact]
    public void Intermediate_presented_by_the_peer_completes_the_chain()
    {
        var (intermediate, leaf) = TestChains.WithIntermediate(_ca, "mx.example.com");
        using (intermediate) using (leaf)
        {
            Assert.Equal(CertificateVerifier.UnknownIssuer, _verifier.VerifyChain(leaf, null).Error);
            Assert.True(_verifier.Verify(leaf, new[] { leaf, intermediate }, new[] { "mx.example.com" }).Ok);
        }
    }

    [Fact]
    public void Verification_time_is_injectable()
    {
        using var cert = _ca.Leaf("example.com");
        var future = new CertificateVerifier(new[] { _ca.Root }, false, () => DateTimeOffset.UtcNow.AddYears(3));
        Assert.Equal(CertificateVerifier.Expired, future.Verify(cert, null, new[] { "example.com" }).Error);
    }
}
