using System.Security.Cryptography.X509Certificates;
using MtaSts.Actors.Dns;
using MtaSts.Actors.Engine.Tests.EndToEnd;
using MtaSts.Actors.TestInfra.Certificates;
using MtaSts.Actors.TestInfra.Dns;
using MtaSts.Actors.TestInfra.Smtp;

namespace MtaSts.Actors.Engine.Tests.Security;

/// <summary>What a loopback receiving MTA presents in STARTTLS.</summary>
public enum ReceiverKind
{
    /// <summary>Test-CA certificate naming the MX host and the recipient domain.</summary>
    Valid,
    /// <summary>Test-CA certificate for an unrelated name.</summary>
    WrongName,
    /// <summary>Test-CA certificate for the right names, expired yesterday.</summary>
    Expired,
    /// <summary>Self-signed certificate for the right names.</summary>
    SelfSigned,
    /// <summary>STARTTLS not offered at all.</summary>
    NoStartTls,
    /// <summary>Test-CA certificate naming only the MX host (Google Workspace / Microsoft 365 style).</summary>
    Hosted,
}

/// <summary>
/// The shared loopback world of the security tests: a private CA (trusted by the gateway through
/// <c>mtasts.policy.extra-ca-bundle</c>, which also governs MX certificates), an authoritative DNS server that the
/// gateway uses for everything (A records of MX hosts, MX records, <c>_mta-sts</c> TXT, policy hosts), and receivers
/// whose certificates are issued per MX host name. MX host names reach their ephemeral ports through
/// <c>mtasts.delivery.mx-override</c> with host names (MxResolver keeps the name for SNI, MTA-STS matching and
/// certificate checks, and resolves it through the DNS server).
/// </summary>
public sealed class SecurityLab : IAsyncDisposable
{
    private readonly List<IAsyncDisposable> _owned = new();
    private readonly string _dir;

    public SecurityLab()
    {
        _dir = Path.Combine(Path.GetTempPath(), "mtasts-sec-" + Guid.NewGuid().ToString("N"));
        Ca = new TestCertificateAuthority();
        CaBundle = Ca.WriteRootPem(_dir);
        Dns = TestDnsServer.Start();
    }

    public TestCertificateAuthority Ca { get; }
    public string CaBundle { get; }
    public TestDnsServer Dns { get; }

    /// <summary>A resolver for the gateway that asks only the test DNS server (no cache: tests change the zone).</summary>
    public IDnsResolver Resolver() => new DnsClientResolver(DnsResolverOptions.ForServer(Dns.EndPoint, TimeSpan.FromSeconds(2)));

    /// <summary>HOCON that trusts the test CA (policy hosts and MX hosts).</summary>
    public string TrustHocon => $"mtasts.policy.extra-ca-bundle = \"{CaBundle.Replace("\\", "/")}\"";

    /// <summary>Starts a receiver for <paramref name="mxHost"/> and publishes <c>mxHost A 127.0.0.1</c>.</summary>
    /// <param name="domains">Recipient domains a <see cref="ReceiverKind.Valid"/> (or expired/self-signed) certificate also names.</param>
    public TestSmtpReceiver Receiver(ReceiverKind kind, string mxHost, params string[] domains)
    {
        Dns.AddA(mxHost, "127.0.0.1");
        var names = new[] { mxHost }.Concat(domains).ToArray();
        X509Certificate2? cert = kind switch
        {
            ReceiverKind.Valid => TestLeafCertificates.Issue(Ca, names),
            ReceiverKind.WrongName => TestLeafCertificates.Issue(Ca, "wrong-name.elsewhere.test"),
            ReceiverKind.Expired => TestLeafCertificates.Issue(Ca.Root, names, DateTimeOffset.UtcNow.AddDays(-30), DateTimeOffset.UtcNow.AddDays(-1)),
            ReceiverKind.SelfSigned => TestCertificateAuthority.SelfSigned(names),
            ReceiverKind.Hosted => TestLeafCertificates.Issue(Ca, mxHost),
            _ => null,
        };
        var rx = TestSmtpReceiver.Start(new TestSmtpReceiverOptions
        {
            Hostname = mxHost,
            Certificate = cert,
            OfferStartTls = kind != ReceiverKind.NoStartTls,
        });
        _owned.Add(rx);
        return rx;
    }

    public async ValueTask DisposeAsync()
    {
        foreach (var o in _owned) await o.DisposeAsync().ConfigureAwait(false);
        await Dns.DisposeAsync().ConfigureAwait(false);
        Ca.Dispose();
        try { Directory.Delete(_dir, recursive: true); } catch (IOException) { } catch (UnauthorizedAccessException) { }
    }
}

/// <summary>Log correlation helpers: a receiver's port names the DCIDs that went to it.</summary>
public static class DeliveryLog
{
    /// <summary>DCIDs of the connections the gateway opened to <paramref name="port"/> on loopback.</summary>
    public static IReadOnlyList<string> DcidsTo(this GatewayFixture gw, int port) =>
        gw.Lines.Where(l => l.Contains("New SMTP DCID ", StringComparison.Ordinal) && l.EndsWith($" port {port}", StringComparison.Ordinal))
            .Select(l => l[(l.IndexOf("New SMTP DCID ", StringComparison.Ordinal) + 14)..].Split(' ')[0])
            .Distinct().ToArray();

    /// <summary>Log lines of connections to <paramref name="port"/> (those carrying "DCID n ").</summary>
    public static IReadOnlyList<string> LinesFor(this GatewayFixture gw, int port)
    {
        var dcids = gw.DcidsTo(port);
        return gw.Lines.Where(l => dcids.Any(d => l.Contains($"DCID {d} ", StringComparison.Ordinal))).ToArray();
    }

    /// <summary>Waits until a line of a connection to <paramref name="port"/> matches.</summary>
    public static async Task<string> WaitForConnectionLineAsync(this GatewayFixture gw, int port, Func<string, bool> match, TimeSpan timeout)
    {
        var deadline = DateTime.UtcNow + timeout;
        while (true)
        {
            var hit = gw.LinesFor(port).FirstOrDefault(match);
            if (hit is not null) return hit;
            if (DateTime.UtcNow > deadline)
                throw new TimeoutException($"no matching line for connections to port {port} within {timeout}; their lines:\n" +
                    string.Join("\n", gw.LinesFor(port).Take(40)) + "\nlast gateway lines:\n" + string.Join("\n", gw.Lines.TakeLast(40)));
            await Task.Delay(50).ConfigureAwait(false);
        }
    }

    /// <summary>True when no session on the receiver got as far as MAIL FROM (nothing was sent, in clear or otherwise).</summary>
    public static bool NoTransactionStarted(this TestSmtpReceiver rx) =>
        rx.Sessions.All(s => !s.Commands.Any(c => c.StartsWith("MAIL", StringComparison.OrdinalIgnoreCase)));
}
