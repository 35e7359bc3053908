using System.Diagnostics;
using System.Text.Json;
using MtaSts.Actors.Host.Check;
using MtaSts.Actors.TestInfra.Certificates;
using MtaSts.Actors.TestInfra.Dns;
using MtaSts.Actors.TestInfra.Http;
using MtaSts.Actors.TestInfra.Proxy;
using MtaSts.Actors.TestInfra.Smtp;

namespace MtaSts.Actors.Host.Tests.Check;

/// <summary>Skips (statically, with the reason) when Debian's tinyproxy is not installed.</summary>
public sealed class TinyproxyFactAttribute : FactAttribute
{
    public TinyproxyFactAttribute()
    {
        if (!TinyproxyInstance.IsAvailable) Skip = $"{TinyproxyInstance.BinaryPath} missing: run tests/setup-env.sh as root";
    }
}

/// <summary>One <c>check</c> run: exit code, both streams, and the report when the run printed JSON.</summary>
public sealed record CheckRun(int Exit, string Stdout, string Stderr, CheckReport? Report, TimeSpan Elapsed)
{
    public override string ToString() => $"exit {Exit}\n--- stdout\n{Stdout}\n--- stderr\n{Stderr}";
}

/// <summary>Loopback world for the checker: DNS, HTTPS policy host, test CA (written as a PEM bundle), SMTP receivers.</summary>
public sealed class CheckTestBed : IAsyncDisposable
{
    public const string Domain = "example.test";
    public const string MxName = "mx.example.test";
    public const string EnforcePolicy = "version: STSv1\nmode: enforce\nmx: mx.example.test\nmax_age: 86400\n";
    public const string TestingPolicy = "version: STSv1\nmode: testing\nmx: mx.example.test\nmax_age: 86400\n";

    private readonly string _dir = Directory.CreateTempSubdirectory("check-tests-").FullName;
    private readonly List<TestSmtpReceiver> _receivers = new();

    public TestCertificateAuthority Ca { get; } = new();
    public TestDnsServer Dns { get; } = TestDnsServer.Start();
    public PolicyHttpsServer Https { get; private set; } = null!;
    public string CaBundlePath { get; private set; } = null!;

    private CheckTestBed() { }

    public static async Task<CheckTestBed> StartAsync()
    {
        var bed = new CheckTestBed();
        bed.Https = await PolicyHttpsServer.StartAsync(bed.Ca);
        bed.CaBundlePath = bed.Ca.WriteRootPem(bed._dir);
        return bed;
    }

    /// <summary>TXT <c>_mta-sts.domain</c>, <c>mta-sts.domain</c> → 127.0.0.1 and the route on the HTTPS server.</summary>
    public CheckTestBed Publish(string policy = EnforcePolicy, string id = "20240101", PolicyRoute? route = null,
        HostCertificate cert = HostCertificate.Valid, string domain = Domain)
    {
        Dns.Remove("_mta-sts." + domain).AddTxt("_mta-sts." + domain, $"v=STSv1; id={id};");
        Dns.Remove("mta-sts." + domain).AddA("mta-sts." + domain, "127.0.0.1");
        Https.Serve(domain, route ?? PolicyRoute.Policy(policy), cert);
        return this;
    }

    public CheckTestBed Mx(string exchange = MxName, ushort preference = 10, string domain = Domain)
    {
        Dns.AddMx(domain, preference, exchange);
        return this;
    }

    /// <summary>A loopback SMTP receiver; STARTTLS with a test-CA certificate for <paramref name="certNames"/>
    /// (none: STARTTLS not offered).</summary>
    public TestSmtpReceiver Receiver(params string[] certNames)
    {
        var r = TestSmtpReceiver.Start(new TestSmtpReceiverOptions
        {
            Hostname = MxName,
            Certificate = certNames.Length == 0 ? null : TestLeafCertificates.Issue(Ca, certNames),
        });
        _receivers.Add(r);
        return r;
    }

    /// <summary>The options every test needs: our DNS, our CA, our HTTPS port, short timeouts.</summary>
    public string[] Args(params string[] extra) =>
    [
        Domain, "--dns", $"127.0.0.1:{Dns.Port}", "--ca-bundle", CaBundlePath,
        "--policy-port", Https.Port.ToString(System.Globalization.CultureInfo.InvariantCulture), "--timeout", "5", .. extra,
    ];

    public static async Task<CheckRun> RunAsync(params string[] args)
    {
        using var stdout = new StringWriter();
        using var stderr = new StringWriter();
        using var cts = new CancellationTokenSource(TimeSpan.FromSeconds(60));
        var sw = Stopwatch.StartNew();
        var exit = await CheckCommand.RunAsync(args, stdout, stderr, cts.Token);
        sw.Stop();
        var text = stdout.ToString();
        CheckReport? report = null;
        if (args.Contains("--json") && exit is 0 or 1)
            report = JsonSerializer.Deserialize<CheckReport>(text, CheckCommand.JsonOptions);
        return new CheckRun(exit, text, stderr.ToString(), report, sw.Elapsed);
    }

    public async ValueTask DisposeAsync()
    {
        foreach (var r in _receivers) await r.DisposeAsync();
        await Https.DisposeAsync();
        await Dns.DisposeAsync();
        Ca.Dispose();
        try { Directory.Delete(_dir, true); } catch (Exception) { }
    }
}
