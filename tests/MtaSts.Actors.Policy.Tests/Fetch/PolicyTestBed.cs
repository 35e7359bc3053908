using System.Collections.Concurrent;
using MtaSts.Actors.Dns;
using MtaSts.Actors.Logging;
using MtaSts.Actors.Policy.Fetch;
using MtaSts.Actors.TestInfra.Certificates;
using MtaSts.Actors.TestInfra.Dns;
using MtaSts.Actors.TestInfra.Http;

namespace MtaSts.Actors.Policy.Tests.Fetch;

/// <summary>Loopback DNS + HTTPS policy host + test CA, and a fetcher wired to them. One per test.</summary>
public sealed class PolicyTestBed : IAsyncDisposable
{
    public TestCertificateAuthority Ca { get; } = new();
    public TestDnsServer Dns { get; } = TestDnsServer.Start();
    public PolicyHttpsServer Https { get; private set; } = null!;
    public DnsClientResolver Resolver { get; private set; } = null!;
    public string CaBundlePath { get; private set; } = null!;
    public MailLog Log { get; }
    public ConcurrentQueue<MailLogEntry> Entries { get; } = new();
    private readonly string _dir = Directory.CreateTempSubdirectory("policy-tests-").FullName;

    private PolicyTestBed()
    {
        Log = new MailLog(null, minimum: MailLogLevel.Debug);
        Log.Written += e => Entries.Enqueue(e);
    }

    public static async Task<PolicyTestBed> StartAsync()
    {
        var bed = new PolicyTestBed();
        bed.Https = await PolicyHttpsServer.StartAsync(bed.Ca);
        bed.CaBundlePath = bed.Ca.WriteRootPem(bed._dir);
        bed.Resolver = new DnsClientResolver(DnsResolverOptions.ForServer(bed.Dns.EndPoint, TimeSpan.FromSeconds(5), retries: 1));
        return bed;
    }

    public string TempPath(string name) => Path.Combine(_dir, name);

    public PolicyFetcher Fetcher(TimeSpan? timeout = null, TimeSpan? connectTimeout = null, TimeSpan? proxyConnectTimeout = null, bool trustTestCa = true) =>
        new(Resolver, Log, new PolicyFetcherOptions
        {
            Port = Https.Port,
            ExtraCaBundlePath = trustTestCa ? CaBundlePath : null,
            Timeout = timeout ?? TimeSpan.FromSeconds(20),
            ConnectTimeout = connectTimeout ?? TimeSpan.FromSeconds(10),
            ProxyConnectTimeout = proxyConnectTimeout ?? TimeSpan.FromSeconds(10),
        });

    /// <summary>Publishes TXT `_mta-sts.domain` and points `mta-sts.domain` at the loopback HTTPS server.</summary>
    public PolicyTestBed Publish(string domain, string id, PolicyRoute? route = null, HostCertificate cert = HostCertificate.Valid)
    {
        Dns.Remove("_mta-sts." + domain).AddTxt("_mta-sts." + domain, $"v=STSv1; id={id};");
        Dns.Remove("mta-sts." + domain).AddA("mta-sts." + domain, "127.0.0.1");
        Https.Serve(domain, route ?? PolicyRoute.Policy(PolicyRoute.DefaultPolicy), cert);
        return this;
    }

    public IReadOnlyList<string> Lines => Entries.Select(e => $"{e.Level}: {e.Text}").ToList();

    public static CancellationToken Ct(int seconds = 60) => new CancellationTokenSource(TimeSpan.FromSeconds(seconds)).Token;

    public async ValueTask DisposeAsync()
    {
        await Https.DisposeAsync();
        await Dns.DisposeAsync();
        Ca.Dispose();
        try { Directory.Delete(_dir, true); } catch (Exception) { }
    }
}
