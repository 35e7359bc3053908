using System.Net;
using System.Net.Sockets;
using System.Security.Cryptography.X509Certificates;
using MtaSts.Actors.TestInfra.Certificates;
using MtaSts.Actors.TestInfra.Dns;
using MtaSts.Actors.TestInfra.Smtp;

namespace MtaSts.Actors.Engine.Tests.Dane;

/// <summary>
/// One DNSSEC world per test class: a test CA and certificates, the signed zone <c>dane.test</c> (one recipient domain
/// per TLSA case: <c>{case}.dane.test MX 10 mx.{case}.dane.test</c>), the unsigned zone <c>insecure.test</c>, the zone
/// <c>expired.test</c> whose signatures expired (bogus), all served by NSD behind a validating Unbound
/// (<see cref="DnssecTestEnvironment"/>). Every MX host has its own address 127.A.B.n of a random private /24 and
/// receivers listen on port 25 there: real MX resolution, TLSA at <c>_25._tcp.{mx}</c>, no MX override.
/// </summary>
public sealed class DaneWorld : IAsyncLifetime
{
    /// <summary>TLSA cases in dane.test; the index gives the MX address.</summary>
    public static readonly string[] Cases =
    [
        "ee311", "ee301", "ee312", "ta201", "tai211", "ta200", "tar201", "wrong", "pkix", "notlsa", "bogus", "ee311b", "sts-good", "sts-wrong",
    ];

    public TestCertificateAuthority Ca { get; } = new("DANE Test Root");
    /// <summary>The DANE-EE leaf: names every mx.*.dane.test host (PKIX-valid under <see cref="Ca"/> too).</summary>
    public X509Certificate2 Leaf { get; private set; } = null!;
    /// <summary>Another key for the same names: what a wrong/stolen-name server presents.</summary>
    public X509Certificate2 OtherLeaf { get; private set; } = null!;
    public X509Certificate2 Intermediate { get; private set; } = null!;
    /// <summary>Leaf under <see cref="Intermediate"/> (DANE-TA cases).</summary>
    public X509Certificate2 ChainLeaf { get; private set; } = null!;
    public DnssecTestEnvironment Dns { get; private set; } = null!;
    public string CaBundlePath { get; private set; } = null!;
    private byte _a, _b;
    private string _dir = null!;

    public static string Mx(string @case) => $"mx.{@case}.dane.test";
    public static string Domain(string @case) => $"{@case}.dane.test";

    public IPAddress Address(string @case) =>
        new([127, _a, _b, (byte)(10 + (@case == "insecure" ? 100 : @case == "expired" ? 101 : Array.IndexOf(Cases, @case)))]);

    public async Task InitializeAsync()
    {
        _dir = Path.Combine(Path.GetTempPath(), "mtasts-dane-" + Guid.NewGuid().ToString("N"));
        Directory.CreateDirectory(_dir);
        CaBundlePath = Ca.WriteRootPem(_dir);
        PickAddresses();
        var names = Cases.Select(Mx).Append("mx.insecure.test").Append("mx.expired.test").ToArray();
        Leaf = TestLeafCertificates.Issue(Ca, names);
        OtherLeaf = TestLeafCertificates.Issue(Ca, names);
        Intermediate = TestLeafCertificates.Intermediate(Ca.Root, "DANE Test Intermediate");
        ChainLeaf = TestLeafCertificates.Issue(Intermediate, names);

        var dane = new List<string>();
        foreach (var c in Cases)
        {
            dane.Add($"{c} IN MX 10 mx.{c}");
            dane.Add($"mx.{c} IN A {Address(c)}");
            // mta-sts.{case}: the policy host (the HTTPS policy server listens on 127.0.0.1).
            dane.Add($"mta-sts.{c} IN A 127.0.0.1");
        }
        dane.Add(Tlsa.Record(Mx("ee311"), Leaf, 3, 1, 1));
        dane.Add(Tlsa.Record(Mx("ee311b"), Leaf, 3, 1, 1));
        dane.Add(Tlsa.Record(Mx("ee301"), Leaf, 3, 0, 1));
        dane.Add(Tlsa.Record(Mx("ee312"), Leaf, 3, 1, 2));
        // DANE-TA: the issuing CA by certificate digest and by key digest (the server presents it after its leaf); the
        // root as a full certificate in DNS (RFC 7671 §5.2.2: then the server need not send it); the root by digest,
        // which servers that trim the self-signed root from their chain (as .NET's SslStream does) cannot satisfy.
        dane.Add(Tlsa.Record(Mx("ta201"), Intermediate, 2, 0, 1));
        dane.Add(Tlsa.Record(Mx("tai211"), Intermediate, 2, 1, 1));
        dane.Add(Tlsa.Record(Mx("ta200"), Ca.Root, 2, 0, 0));
        dane.Add(Tlsa.Record(Mx("tar201"), Ca.Root, 2, 0, 1));
        dane.Add(Tlsa.WrongDigest(Mx("wrong")));
        dane.Add(Tlsa.Record(Mx("pkix"), Leaf, 1, 1, 1));
        dane.Add(Tlsa.Record(Mx("pkix"), Ca.Root, 0, 0, 1));
        dane.Add(Tlsa.Record(Mx("bogus"), Leaf, 3, 1, 1));
        dane.Add(Tlsa.Record(Mx("sts-good"), Leaf, 3, 1, 1));
        dane.Add(Tlsa.WrongDigest(Mx("sts-wrong")));
        // Two MX hosts: the preferred one's TLSA RRset is bogus (skipped, never downgraded), the other one is good.
        dane.Add("multi IN MX 10 mx.bogus");
        dane.Add("multi IN MX 20 mx.ee311");
        dane.Add("_mta-sts.sts-good IN TXT \"v=STSv1; id=dane1\"");
        dane.Add("_mta-sts.sts-wrong IN TXT \"v=STSv1; id=dane1\"");

        Dns = await DnssecTestEnvironment.StartAsync(
        [
            new DnsZone("dane.test", ZoneSigning.Signed, dane, TamperOwners: ["_25._tcp.mx.bogus"]),
            new DnsZone("insecure.test", ZoneSigning.Unsigned,
            [
                "@ IN MX 10 mx", $"mx IN A {Address("insecure")}", Tlsa.Record("mx.insecure.test", Leaf, 3, 1, 1),
            ]),
            new DnsZone("expired.test", ZoneSigning.Expired,
            [
                "@ IN MX 10 mx", $"mx IN A {Address("expired")}", Tlsa.Record("mx.expired.test", Leaf, 3, 1, 1),
            ]),
        ]);
    }

    /// <summary>A receiver on port 25 of the case's MX address presenting <paramref name="certificate"/>.</summary>
    public TestSmtpReceiver Receiver(string @case, X509Certificate2? certificate, IReadOnlyList<X509Certificate2>? chain = null) =>
        TestSmtpReceiver.Start(new TestSmtpReceiverOptions
        {
            Hostname = @case is "insecure" or "expired" ? $"mx.{@case}.test" : Mx(@case),
            ListenAddress = Address(@case),
            ListenPort = 25,
            Certificate = certificate,
            CertificateChain = chain,
            OfferStartTls = certificate is not null,
        });

    /// <summary>Picks a random 127.A.B.0/24 whose port 25 is free for every case (another test class or run may use
    /// its own /24 concurrently).</summary>
    private void PickAddresses()
    {
        for (var attempt = 0; attempt < 20; attempt++)
        {
            _a = (byte)Random.Shared.Next(64, 250);
            _b = (byte)Random.Shared.Next(1, 250);
            try
            {
                using var probe = new Socket(AddressFamily.InterNetwork, SocketType.Stream, ProtocolType.Tcp);
                probe.Bind(new IPEndPoint(Address(Cases[0]), 25));
                return;
            }
            catch (SocketException) { }
        }
        throw new InvalidOperationException("no free 127.x.y.0/24 with port 25 available (tests must run as root to bind port 25)");
    }

    public async Task DisposeAsync()
    {
        if (Dns is not null) await Dns.DisposeAsync();
        Leaf?.Dispose();
        OtherLeaf?.Dispose();
        Intermediate?.Dispose();
        ChainLeaf?.Dispose();
        Ca.Dispose();
        try { Directory.Delete(_dir, recursive: true); } catch (IOException) { } catch (UnauthorizedAccessException) { }
    }
}
