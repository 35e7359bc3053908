using MtaSts.Actors.TestInfra.Certificates;

namespace MtaSts.Actors.Tls.Tests;

/// <summary>The remembered path validation (<see cref="CertificateVerifier.DefaultChainCacheTime"/>): it saves chain
/// builds and never a check a fresh verification would make.</summary>
public sealed class CertificateVerifierCacheTests : IDisposable
{
    private readonly TestCertificateAuthority _ca = new();
    private DateTimeOffset _now = DateTimeOffset.UtcNow;

    public void Dispose() => _ca.Dispose();

    private CertificateVerifier Verifier(TimeSpan? cacheTime = null, bool systemRoots = false) =>
        new(new[] { _ca.Root }, systemRoots, () => _now, cacheTime);

    [Fact]
    public void The_same_certificates_are_validated_once()
    {
        using var cert = _ca.Leaf("mx.example.com");
        var verifier = Verifier(systemRoots: true);
        Assert.True(verifier.Verify(cert, new[] { cert }, new[] { "mx.example.com" }).Ok);
        var builds = verifier.ChainBuilds;
        Assert.Equal(2, builds); // system roots (unknown issuer), then the extra roots
        for (var i = 0; i < 3; i++) Assert.True(verifier.Verify(cert, new[] { cert }, new[] { "mx.example.com" }).Ok);
        Assert.Equal(builds, verifier.ChainBuilds);
    }

    [Fact]
    public void A_remembered_path_still_gets_the_name_check_of_each_call()
    {
        using var cert = _ca.Leaf("mx.example.com");
        var verifier = Verifier();
        Assert.True(verifier.Verify(cert, null, new[] { "mx.example.com" }).Ok);
        var v = verifier.Verify(cert, null, new[] { "mx.other.net" });
        Assert.False(v.Ok);
        Assert.Equal(CertificateVerifier.NameMismatch, v.Error);
        Assert.Equal("mx.example.com", verifier.Verify(cert, null, new[] { "mx.other.net", "mx.example.com" }).MatchedName);
    }

    [Fact]
    public void A_certificate_that_expires_within_the_cache_time_fails_once_expired()
    {
        using var cert = _ca.Leaf(new[] { "mx.example.com" }, _now.AddDays(-10), _now.AddSeconds(10));
        var verifier = Verifier(TimeSpan.FromHours(1));
        Assert.True(verifier.Verify(cert, null, new[] { "mx.example.com" }).Ok);
        _now = _now.AddSeconds(30);
        Assert.Equal(CertificateVerifier.Expired, verifier.Verify(cert, null, new[] { "mx.example.com" }).Error);
    }

    [Fact]
    public void An_expired_intermediate_ends_the_remembered_path()
    {
        var (intermediate, leaf) = TestChains.WithIntermediate(_ca, "mx.example.com");
        using (intermediate) using (leaf)
        {
            var verifier = Verifier(TimeSpan.FromDays(3650));
            Assert.True(verifier.Verify(leaf, new[] { leaf, intermediate }, new[] { "mx.example.com" }).Ok);
            _now = new DateTimeOffset(intermediate.NotAfter.ToUniversalTime()).AddSeconds(1);
            Assert.False(verifier.Verify(leaf, new[] { leaf, intermediate }, new[] { "mx.example.com" }).Ok);
        }
    }

    [Fact]
    public void A_clock_before_the_validity_period_is_not_covered()
    {
        using var cert = _ca.Leaf(new[] { "mx.example.com" }, _now.AddMinutes(-1), _now.AddDays(10));
        var verifier = Verifier();
        Assert.True(verifier.Verify(cert, null, new[] { "mx.example.com" }).Ok);
        _now = _now.AddMinutes(-5);
        Assert.Equal(CertificateVerifier.NotYetValid, verifier.Verify(cert, null, new[] { "mx.example.com" }).Error);
    }

    [Fact]
    public void The_path_is_validated_again_after_the_cache_time()
    {
        using var cert = _ca.Leaf("mx.example.com");
        var verifier = Verifier(TimeSpan.FromSeconds(60));
        Assert.True(verifier.VerifyChain(cert, null).Ok);
        _now = _now.AddSeconds(59);
        Assert.True(verifier.VerifyChain(cert, null).Ok);
        Assert.Equal(1, verifier.ChainBuilds);
        _now = _now.AddSeconds(2);
        Assert.True(verifier.VerifyChain(cert, null).Ok);
        Assert.Equal(2, verifier.ChainBuilds);
    }

    [Fact]
    public void Other_presented_certificates_are_another_path()
    {
        // The leaf validated with the intermediate it was presented with; the same leaf without it has no path.
        var (intermediate, leaf) = TestChains.WithIntermediate(_ca, "mx.example.com");
        using (intermediate) using (leaf)
        {
            var verifier = Verifier();
            Assert.True(verifier.Verify(leaf, new[] { leaf, intermediate }, new[] { "mx.example.com" }).Ok);
            Assert.Equal(CertificateVerifier.UnknownIssuer, verifier.Verify(leaf, new[] { leaf }, new[] { "mx.example.com" }).Error);
        }
    }

    [Fact]
    public void A_different_certificate_for_the_same_name_is_validated_on_its_own()
    {
        using var other = new TestCertificateAuthority("Some Other CA");
        using var good = _ca.Leaf("mx.example.com");
        using var bad = other.Leaf("mx.example.com");
        var verifier = Verifier();
        Assert.True(verifier.Verify(good, null, new[] { "mx.example.com" }).Ok);
        Assert.Equal(CertificateVerifier.UnknownIssuer, verifier.Verify(bad, null, new[] { "mx.example.com" }).Error);
    }

    [Fact]
    public void Failures_are_not_remembered()
    {
        using var other = new TestCertificateAuthority("Some Other CA");
        using var bad = other.Leaf("mx.example.com");
        var verifier = Verifier();
        Assert.False(verifier.VerifyChain(bad, null).Ok);
        Assert.False(verifier.VerifyChain(bad, null).Ok);
        Assert.Equal(2, verifier.ChainBuilds);
    }

    [Fact]
    public void Another_verifier_does_not_share_what_this_one_validated()
    {
        // Trust anchors are per verifier: a path to this CA says nothing to a verifier that does not trust it.
        using var cert = _ca.Leaf("mx.example.com");
        Assert.True(Verifier().VerifyChain(cert, null).Ok);
        using var otherCa = new TestCertificateAuthority("Some Other CA");
        var stranger = new CertificateVerifier(new[] { otherCa.Root }, false, () => _now);
        Assert.Equal(CertificateVerifier.UnknownIssuer, stranger.VerifyChain(cert, null).Error);
    }

    [Fact]
    public void Zero_cache_time_builds_every_time()
    {
        using var cert = _ca.Leaf("mx.example.com");
        var verifier = Verifier(TimeSpan.Zero);
        Assert.True(verifier.VerifyChain(cert, null).Ok);
        Assert.True(verifier.VerifyChain(cert, null).Ok);
        Assert.Equal(2, verifier.ChainBuilds);
    }
}
