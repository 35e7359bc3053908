using System.Security.Cryptography;
using System.Security.Cryptography.X509Certificates;
using BenchmarkDotNet.Attributes;
using MtaSts.Actors.Tls;

namespace MtaSts.Actors.MicroBench;

/// <summary>What verifying an MX certificate costs per TLS handshake (resumed ones too: .NET calls the callback on every
/// connection), as the gateway does it with a private CA (<c>extra-ca-bundle</c>, as in the <c>-tls</c> load tests):
/// the system roots are tried first, then the extra roots — two X509 chain builds — then the RFC 6125 name check.
/// <c>Cached</c>: the same certificates again within <see cref="CertificateVerifier.DefaultChainCacheTime"/>.</summary>
[MemoryDiagnoser]
public class CertificateVerifyBench
{
    private X509Certificate2 _root = null!;
    private X509Certificate2 _leaf = null!;
    private X509Certificate2[] _presented = null!;
    private CertificateVerifier _uncached = null!;
    private CertificateVerifier _cached = null!;
    private readonly string[] _names = ["mx.loadtest.invalid"];

    [GlobalSetup]
    public void Setup()
    {
        using var rootKey = ECDsa.Create(ECCurve.NamedCurves.nistP256);
        var rootReq = new CertificateRequest("CN=MicroBench Test CA", rootKey, HashAlgorithmName.SHA256);
        rootReq.CertificateExtensions.Add(new X509BasicConstraintsExtension(true, false, 0, true));
        rootReq.CertificateExtensions.Add(new X509KeyUsageExtension(X509KeyUsageFlags.KeyCertSign | X509KeyUsageFlags.CrlSign, true));
        _root = rootReq.CreateSelfSigned(DateTimeOffset.UtcNow.AddDays(-1), DateTimeOffset.UtcNow.AddYears(1));
        using var leafKey = ECDsa.Create(ECCurve.NamedCurves.nistP256);
        var leafReq = new CertificateRequest("CN=mx.loadtest.invalid", leafKey, HashAlgorithmName.SHA256);
        var san = new SubjectAlternativeNameBuilder();
        san.AddDnsName("mx.loadtest.invalid");
        leafReq.CertificateExtensions.Add(san.Build());
        leafReq.CertificateExtensions.Add(new X509EnhancedKeyUsageExtension([new Oid("1.3.6.1.5.5.7.3.1")], false));
        _leaf = leafReq.Create(_root, DateTimeOffset.UtcNow.AddDays(-1), DateTimeOffset.UtcNow.AddDays(90), [1, 2, 3, 4]);
        _presented = [_leaf];
        _uncached = new CertificateVerifier([_root], useSystemRoots: true, chainCacheTime: TimeSpan.Zero);
        _cached = new CertificateVerifier([_root], useSystemRoots: true);
        if (!_uncached.Verify(_leaf, _presented, _names).Ok || !_cached.Verify(_leaf, _presented, _names).Ok)
            throw new InvalidOperationException("the benchmark certificate does not verify");
    }

    [Benchmark(Baseline = true)]
    public bool Uncached() => _uncached.Verify(_leaf, _presented, _names).Ok;

    [Benchmark]
    public bool Cached() => _cached.Verify(_leaf, _presented, _names).Ok;

    [GlobalCleanup]
    public void Cleanup()
    {
        _leaf.Dispose();
        _root.Dispose();
    }
}
