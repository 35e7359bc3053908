using System.Security.Cryptography;
using System.Security.Cryptography.X509Certificates;
using MtaSts.Actors.Dns;
using MtaSts.Actors.TestInfra.Certificates;

namespace MtaSts.Actors.Tls.Tests;

public sealed class DaneVerifierTests : IDisposable
{
    private const string Mx = "mx.example.com";
    private readonly TestCertificateAuthority _ca = new();

    public void Dispose() => _ca.Dispose();

    public static TheoryData<byte, byte> SelectorsAndMatchingTypes()
    {
        var d = new TheoryData<byte, byte>();
        foreach (byte s in new byte[] { 0, 1 })
            foreach (byte m in new byte[] { 0, 1, 2 }) d.Add(s, m);
        return d;
    }

    [Theory]
    [MemberData(nameof(SelectorsAndMatchingTypes))]
    public void DaneEe_matches_leaf_ignoring_names_and_expiry(byte selector, byte matching)
    {
        // RFC 7672 §3.1.1: a self-signed, expired certificate for another name is fine under DANE-EE.
        using var leaf = _ca.Leaf(new[] { "unrelated.invalid" }, DateTimeOffset.UtcNow.AddDays(-30), DateTimeOffset.UtcNow.AddDays(-2));
        var tlsa = DaneVerifier.RecordFor(leaf, 3, selector, matching);
        var v = DaneVerifier.Verify(leaf, new[] { leaf }, new[] { tlsa }, new[] { Mx });
        Assert.True(v.Ok, v.Error);
        Assert.Equal(0, v.Depth);
        Assert.Same(tlsa, v.Matched);
    }

    [Theory]
    [MemberData(nameof(SelectorsAndMatchingTypes))]
    public void DaneEe_self_signed_matches(byte selector, byte matching)
    {
        using var leaf = TestCertificateAuthority.SelfSigned("whatever.invalid");
        var v = DaneVerifier.Verify(leaf, Array.Empty<X509Certificate2>(), new[] { DaneVerifier.RecordFor(leaf, 3, selector, matching) }, new[] { Mx });
        Assert.True(v.Ok, v.Error);
    }

    [Theory]
    [MemberData(nameof(SelectorsAndMatchingTypes))]
    public void DaneEe_other_certificate_does_not_match(byte selector, byte matching)
    {
        using var leaf = _ca.Leaf(Mx);
        using var other = _ca.Leaf(Mx);
        var v = DaneVerifier.Verify(leaf, new[] { leaf }, new[] { DaneVerifier.RecordFor(other, 3, selector, matching) }, new[] { Mx });
        Assert.False(v.Ok);
        Assert.Equal(DaneVerifier.NoMatch, v.Error);
    }

    [Theory]
    [MemberData(nameof(SelectorsAndMatchingTypes))]
    public void DaneTa_root_presented_in_chain(byte selector, byte matching)
    {
        using var leaf = _ca.Leaf(Mx);
        var v = DaneVerifier.Verify(leaf, new[] { leaf, _ca.Root }, new[] { DaneVerifier.RecordFor(_ca.Root, 2, selector, matching) }, new[] { Mx });
        Assert.True(v.Ok, v.Error);
        Assert.Equal(1, v.Depth);
    }

    [Theory]
    [MemberData(nameof(SelectorsAndMatchingTypes))]
    public void DaneTa_requires_the_mx_name(byte selector, byte matching)
    {
        using var leaf = _ca.Leaf("mx.other.net");
        var v = DaneVerifier.Verify(leaf, new[] { leaf, _ca.Root }, new[] { DaneVerifier.RecordFor(_ca.Root, 2, selector, matching) }, new[] { Mx });
        Assert.False(v.Ok);
        Assert.Equal(CertificateVerifier.NameMismatch, v.Error);
    }

    [Theory]
    [MemberData(nameof(SelectorsAndMatchingTypes))]
    public void DaneTa_intermediate_anchor(byte selector, byte matching)
    {
        var (intermediate, leaf) = TestChains.WithIntermediate(_ca, Mx);
        using (intermediate) using (leaf)
        {
            var v = DaneVerifier.Verify(leaf, new[] { leaf, intermediate }, new[] { DaneVerifier.RecordFor(intermediate, 2, selector, matching) }, new[] { Mx });
            Assert.True(v.Ok, v.Error);
            Assert.Equal(1, v.Depth);
        }
    }

    [Fact]
    public void DaneTa_anchor_must_be_presented()
    {
        using var leaf = _ca.Leaf(Mx);
        var v = DaneVerifier.Verify(leaf, new[] { leaf }, new[] { DaneVerifier.RecordFor(_ca.Root, 2, 1, 1) }, new[] { Mx });
        Assert.False(v.Ok);
        Assert.Equal(DaneVerifier.NoMatch, v.Error);
    }

    [Fact]
    public void DaneTa_full_certificate_in_dns_need_not_be_presented()
    {
        // RFC 7671 §5.2.2: "2 0 0" carries the whole TA certificate.
        using var leaf = _ca.Leaf(Mx);
        var v = DaneVerifier.Verify(leaf, new[] { leaf }, new[] { DaneVerifier.RecordFor(_ca.Root, 2, 0, 0) }, new[] { Mx });
        Assert.True(v.Ok, v.Error);
    }

    [Fact]
    public void DaneTa_checks_expiry()
    {
        var (intermediate, leaf) = TestChains.WithIntermediate(_ca, Mx, DateTimeOffset.UtcNow.AddDays(-1));
        using (intermediate) using (leaf)
        {
            var v = DaneVerifier.Verify(leaf, new[] { leaf, intermediate }, new[] { DaneVerifier.RecordFor(intermediate, 2, 1, 1) }, new[] { Mx });
            Assert.False(v.Ok);
            Assert.Equal(CertificateVerifier.Expired, v.Error);
        }
    }

    [Fact]
    public void DaneTa_accepts_wildcard_names()
    {
        using var leaf = _ca.Leaf("*.example.com");
        var v = DaneVerifier.Verify(leaf, new[] { leaf, _ca.Root }, new[] { DaneVerifier.RecordFor(_ca.Root, 2, 1, 1) }, new[] { Mx });
        Assert.True(v.Ok, v.Error);
    }

    [Fact]
    public void DaneTa_record_for_the_leaf_is_not_a_trust_anchor()
    {
        using var leaf = _ca.Leaf(Mx);
        var v = DaneVerifier.Verify(leaf, new[] { leaf, _ca.Root }, new[] { DaneVerifier.RecordFor(leaf, 2, 1, 1) }, new[] { Mx });
        Assert.False(v.Ok);
    }

    [Theory]
    [InlineData(0)]
    [InlineData(1)]
    public void Pkix_usages_are_unusable_for_smtp(byte usage)
    {
        // RFC 7672 §3.1.3.
        using var leaf = _ca.Leaf(Mx);
        var rec = DaneVerifier.RecordFor(usage == 0 ? _ca.Root : leaf, usage, 1, 1);
        Assert.False(DaneVerifier.IsUsable(rec));
        var v = DaneVerifier.Verify(leaf, new[] { leaf, _ca.Root }, new[] { rec }, new[] { Mx });
        Assert.Equal(DaneVerifier.NoUsableRecords, v.Error);
    }

    [Fact]
    public void Usable_records_need_known_parameters_and_right_lengths()
    {
        Assert.True(DaneVerifier.IsUsable(new TlsaRecord(3, 1, 1, new byte[32])));
        Assert.True(DaneVerifier.IsUsable(new TlsaRecord(2, 0, 2, new byte[64])));
        Assert.True(DaneVerifier.IsUsable(new TlsaRecord(3, 0, 0, new byte[300])));
        Assert.False(DaneVerifier.IsUsable(new TlsaRecord(3, 1, 1, new byte[31])));
        Assert.False(DaneVerifier.IsUsable(new TlsaRecord(3, 1, 2, new byte[32])));
        Assert.False(DaneVerifier.IsUsable(new TlsaRecord(3, 2, 1, new byte[32])));
        Assert.False(DaneVerifier.IsUsable(new TlsaRecord(3, 1, 3, new byte[32])));
        Assert.False(DaneVerifier.IsUsable(new TlsaRecord(4, 1, 1, new byte[32])));
        Assert.False(DaneVerifier.IsUsable(new TlsaRecord(3, 0, 0, Array.Empty<byte>())));
    }

    [Fact]
    public void One_matching_record_among_several_is_enough()
    {
        using var leaf = _ca.Leaf(Mx);
        using var old = _ca.Leaf(Mx);
        var records = new[] { new TlsaRecord(1, 1, 1, new byte[32]), DaneVerifier.RecordFor(old, 3, 1, 1), DaneVerifier.RecordFor(leaf, 3, 1, 2) };
        var v = DaneVerifier.Verify(leaf, new[] { leaf }, records, new[] { Mx });
        Assert.True(v.Ok);
        Assert.Equal(2, v.Matched!.MatchingType);
    }

    [Fact]
    public void Spki_is_taken_verbatim_from_the_certificate()
    {
        using var leaf = _ca.Leaf(Mx);
        Assert.Equal(leaf.PublicKey.ExportSubjectPublicKeyInfo(), DaneVerifier.SubjectPublicKeyInfo(leaf));
        Assert.Equal(SHA256.HashData(leaf.RawData), DaneVerifier.AssociationData(leaf, 0, 1));
    }
}
