using System.Globalization;
using MtaSts.Actors.TestInfra.Certificates;
using MtaSts.Actors.TestInfra.Dns;
using MtaSts.Actors.TestInfra.Http;

namespace MtaSts.Actors.LoadTests.Targets;

/// <summary>
/// Locally served MTA-STS for every destination of a run (mta-sts-everywhere, "on" variant), in the harness process
/// and on loopback only: a test DNS server (<c>_mta-sts.&lt;domain&gt;</c> TXT, <c>mta-sts.&lt;domain&gt;</c> A 127.0.0.1,
/// <c>mx.loadtest.invalid</c> A 127.0.0.1), a test CA (its root written as a PEM bundle for
/// <c>mtasts.policy.extra-ca-bundle</c>) and an HTTPS policy host serving a <c>mode: testing</c> policy whose only
/// mx is <see cref="MxHost"/>. The gateway routes every domain to <c>MxHost:&lt;receiver port&gt;</c> by name, so the
/// policy's mx pattern matches and the name is resolved through this DNS server.
/// </summary>
public sealed class LocalMtaStsWorld : IAsyncDisposable
{
    public const string MxHost = "mx.loadtest.invalid";
    public const string Policy = "version: STSv1\nmode: testing\nmx: " + MxHost + "\nmax_age: 86400\n";

    private readonly TestCertificateAuthority? _ca; // owned (null when the run's CA is shared)
    private readonly IReadOnlyList<string> _domains;

    private LocalMtaStsWorld(TestCertificateAuthority? ca, TestDnsServer dns, PolicyHttpsServer https, string caBundle, IReadOnlyList<string> domains)
    {
        _ca = ca;
        Dns = dns;
        Https = https;
        CaBundle = caBundle;
        _domains = domains;
    }

    public TestDnsServer Dns { get; }
    public PolicyHttpsServer Https { get; }
    /// <summary>Path of the test CA root (PEM), for mtasts.policy.extra-ca-bundle.</summary>
    public string CaBundle { get; }

    /// <param name="sharedCa">The run's CA when the receiver's STARTTLS certificate comes from it too (`--tls`): one
    /// bundle then verifies the policy hosts and the MX; the caller owns it.</param>
    public static async Task<LocalMtaStsWorld> StartAsync(IReadOnlyList<string> domains, string directory, CancellationToken ct,
        TestCertificateAuthority? sharedCa = null)
    {
        var ca = sharedCa ?? new TestCertificateAuthority("MtaSts.Actors load-test CA");
        var bundle = ca.WriteRootPem(directory);
        // Negative answers (the MX host's AAAA, absent records) carry an SOA as a real zone's do (RFC 2308 §3).
        var dns = TestDnsServer.Start();
        dns.NegativeTtl = 300;
        PolicyHttpsServer https;
        try { https = await PolicyHttpsServer.StartAsync(ca, ct); }
        catch
        {
            await dns.DisposeAsync();
            if (sharedCa is null) ca.Dispose();
            throw;
        }
        dns.AddA(MxHost, "127.0.0.1");
        foreach (var d in domains)
        {
            dns.AddTxt("_mta-sts." + d, "v=STSv1; id=loadtest1;");
            dns.AddA("mta-sts." + d, "127.0.0.1");
            https.ServePolicy(d, Policy);
        }
        return new LocalMtaStsWorld(sharedCa is null ? ca : null, dns, https, bundle, domains);
    }

    /// <summary>Facts for the report: policy fetches (HTTPS requests) and DNS queries seen during the run.</summary>
    public IEnumerable<KeyValuePair<string, string>> Facts()
    {
        var inv = CultureInfo.InvariantCulture;
        var fetches = _domains.Select(d => Https.Requests(d)).ToArray();
        yield return new("mta-sts policy domains", _domains.Count.ToString(inv));
        yield return new("mta-sts policy fetches (total, max per domain)",
            $"{Https.TotalRequests.ToString(inv)}, {(fetches.Length == 0 ? 0 : fetches.Max()).ToString(inv)}");
        yield return new("mta-sts DNS queries (total, _mta-sts TXT of first domain, MX host A)",
            $"{Dns.TotalQueries.ToString(inv)}, {(_domains.Count == 0 ? 0 : Dns.QueryCount("_mta-sts." + _domains[0])).ToString(inv)}, {Dns.QueryCount(MxHost).ToString(inv)}");
    }

    public async ValueTask DisposeAsync()
    {
        await Https.DisposeAsync();
        await Dns.DisposeAsync();
        _ca?.Dispose();
    }
}
