using System.Diagnostics;
using System.Net;
using System.Net.Sockets;
using System.Security.Cryptography;
using System.Security.Cryptography.X509Certificates;
using System.Text;
using System.Text.RegularExpressions;
using MtaSts.Actors.Dns;

namespace MtaSts.Actors.TestInfra.Dns;

/// <summary>How a test zone is published.</summary>
public enum ZoneSigning
{
    /// <summary>Signed with ldns-signzone (ECDSA P-256, one CSK, 30 days validity); its DNSKEY is a trust anchor of the
    /// resolver, so answers carry the AD bit.</summary>
    Signed,
    /// <summary>Not signed and declared <c>domain-insecure</c>: answers are valid but never AD (RFC 4035 "insecure").</summary>
    Unsigned,
    /// <summary>Signed with signatures that expired in 2020 (trust anchor configured): every answer is bogus → SERVFAIL.</summary>
    Expired,
}

/// <param name="Name">Zone apex, e.g. "dane.test" (no trailing dot needed).</param>
/// <param name="Records">Zone-file lines relative to the apex ("mx.good IN A 127.0.0.1", "@ IN MX 10 mx") or absolute.
/// SOA and NS are added.</param>
/// <param name="TamperOwners">Owner names (absolute or relative) whose RDATA is altered after signing: those RRsets
/// fail validation (bogus → SERVFAIL) while the rest of the zone stays secure.</param>
public sealed record DnsZone(string Name, ZoneSigning Signing, IReadOnlyList<string> Records, IReadOnlyList<string>? TamperOwners = null)
{
    public string Apex => Name.Trim().TrimEnd('.').ToLowerInvariant();
}

/// <summary>
/// A real DNSSEC world on loopback built from Debian packages (tests/dnssec/setup.sh): zones written and signed with
/// ldns-keygen/ldns-signzone, served by NSD on an ephemeral loopback port, and Unbound on another loopback port as a
/// validating resolver (trust anchors = the signed zones' keys, stub zones → NSD, unsigned zones domain-insecure; the
/// root is stubbed to NSD too, so nothing ever leaves the machine). Private temporary directory; both daemons run in
/// the foreground as children of the test process and are killed on dispose.
/// </summary>
public sealed class DnssecTestEnvironment : IAsyncDisposable
{
    private readonly List<Process> _processes = new();
    private readonly StringBuilder _output = new();

    private DnssecTestEnvironment(string dir, IReadOnlyList<DnsZone> zones)
    {
        Directory = dir;
        Zones = zones;
    }

    /// <summary>The validating resolver (Unbound) endpoint: what the code under test should query.</summary>
    public IPEndPoint Resolver { get; private set; } = null!;
    /// <summary>The authoritative server (NSD) endpoint: answers without validation (never AD).</summary>
    public IPEndPoint Authoritative { get; private set; } = null!;
    public string Directory { get; }
    public IReadOnlyList<DnsZone> Zones { get; }

    /// <summary>Both daemons' output so far (for failure messages).</summary>
    public string Output { get { lock (_output) return _output.ToString(); } }

    public static string? MissingTools()
    {
        var missing = new[] { "nsd", "unbound", "ldns-keygen", "ldns-signzone" }.Where(t => Which(t) is null).ToArray();
        return missing.Length == 0 ? null : $"missing {string.Join(", ", missing)} (run tests/dnssec/setup.sh)";
    }

    public static async Task<DnssecTestEnvironment> StartAsync(IEnumerable<DnsZone> zones, CancellationToken ct = default)
    {
        if (MissingTools() is { } missing) throw new InvalidOperationException("DNSSEC test environment: " + missing);
        var dir = Path.Combine(Path.GetTempPath(), "mtasts-dnssec-" + Guid.NewGuid().ToString("N"));
        System.IO.Directory.CreateDirectory(dir);
        var env = new DnssecTestEnvironment(dir, zones.ToArray());
        try
        {
            var anchors = new StringBuilder();
            foreach (var zone in env.Zones)
                anchors.Append(await env.WriteZoneAsync(zone, ct).ConfigureAwait(false));
            await File.WriteAllTextAsync(Path.Combine(dir, "anchors.key"), anchors.ToString(), ct).ConfigureAwait(false);
            await env.StartDaemonsAsync(ct).ConfigureAwait(false);
            return env;
        }
        catch
        {
            await env.DisposeAsync().ConfigureAwait(false);
            throw;
        }
    }

    /// <summary>A resolver client (the project's DnsClientResolver, DO bit set) pointed at the validating resolver.</summary>
    public DnsClientResolver CreateClient() => new(new DnsResolverOptions
    {
        NameServers = [Resolver], Timeout = TimeSpan.FromSeconds(3), Retries = 1,
    });

    /// <summary>Writes the zone file, signs it if asked; returns the trust-anchor lines (DNSKEY) for Unbound.</summary>
    private async Task<string> WriteZoneAsync(DnsZone zone, CancellationToken ct)
    {
        var apex = zone.Apex;
        var sb = new StringBuilder();
        sb.Append($"$ORIGIN {apex}.\n$TTL 300\n");
        sb.Append($"@ IN SOA ns.{apex}. hostmaster.{apex}. 1 3600 600 86400 60\n");
        sb.Append($"@ IN NS ns.{apex}.\nns IN A 127.0.0.1\n");
        foreach (var r in zone.Records) sb.Append(r).Append('\n');
        var file = Path.Combine(Directory, apex + ".zone");
        await File.WriteAllTextAsync(file, sb.ToString(), ct).ConfigureAwait(false);
        if (zone.Signing == ZoneSigning.Unsigned)
        {
            File.Copy(file, file + ".signed");
            return "";
        }

        // One key with the SEP flag (a CSK): ldns-signzone signs every RRset with it.
        var keyName = (await RunAsync("ldns-keygen", ["-a", "ECDSAP256SHA256", "-k", apex], ct).ConfigureAwait(false)).Trim();
        var args = new List<string>();
        if (zone.Signing == ZoneSigning.Expired) args.AddRange(["-i", "20190101000000", "-e", "20200101000000"]);
        else args.AddRange(["-i", DateTime.UtcNow.AddDays(-1).ToString("yyyyMMddHHmmss"), "-e", DateTime.UtcNow.AddDays(30).ToString("yyyyMMddHHmmss")]);
        args.AddRange(["-o", apex + ".", file, Path.Combine(Directory, keyName)]);
        await RunAsync("ldns-signzone", args, ct).ConfigureAwait(false);
        if (zone.TamperOwners is { Count: > 0 } tamper) Tamper(file + ".signed", apex, tamper);
        var key = await File.ReadAllTextAsync(Path.Combine(Directory, keyName + ".key"), ct).ConfigureAwait(false);
        return Regex.Replace(key, ";.*", "").Trim() + "\n";
    }

    /// <summary>Changes the last character of the RDATA of every non-DNSSEC record at the given owners, so that
    /// their RRSIGs no longer verify.</summary>
    private static void Tamper(string signedFile, string apex, IReadOnlyList<string> owners)
    {
        var absolute = owners.Select(o => o.TrimEnd('.').ToLowerInvariant())
            .Select(o => o == "@" ? apex : o.EndsWith("." + apex, StringComparison.Ordinal) || o == apex ? o : o + "." + apex)
            .Select(o => o + ".").ToHashSet(StringComparer.Ordinal);
        var lines = File.ReadAllLines(signedFile);
        var changed = 0;
        for (int i = 0; i < lines.Length; i++)
        {
            var f = lines[i].Split('\t');
            if (f.Length < 5 || !absolute.Contains(f[0].ToLowerInvariant())) continue;
            if (f[3] is "RRSIG" or "NSEC" or "NSEC3" or "DNSKEY") continue;
            var rdata = f[4].TrimEnd();
            var last = rdata[^1];
            var replacement = char.IsAsciiHexDigit(last) ? (last == '0' ? '1' : '0') : (last == 'a' ? 'b' : 'a');
            f[4] = rdata[..^1] + replacement;
            lines[i] = string.Join('\t', f);
            changed++;
        }
        if (changed == 0) throw new InvalidOperationException($"nothing to tamper with at {string.Join(", ", absolute)}");
        File.WriteAllLines(signedFile, lines);
    }

    private async Task StartDaemonsAsync(CancellationToken ct)
    {
        // Ports are found free and then handed to the daemons; a race with another process is retried.
        for (var attempt = 1; ; attempt++)
        {
            var nsdPort = FreeUdpTcpPort();
            var unboundPort = FreeUdpTcpPort(nsdPort);
            Authoritative = new IPEndPoint(IPAddress.Loopback, nsdPort);
            Resolver = new IPEndPoint(IPAddress.Loopback, unboundPort);
            WriteConfigs(nsdPort, unboundPort);
            try
            {
                var nsd = Launch("nsd", ["-d", "-c", Path.Combine(Directory, "nsd.conf")], "nsd");
                await WaitAnsweringAsync(nsd, Authoritative, ct).ConfigureAwait(false);
                var unbound = Launch("unbound", ["-d", "-c", Path.Combine(Directory, "unbound.conf")], "unbound");
                await WaitAnsweringAsync(unbound, Resolver, ct).ConfigureAwait(false);
                return;
            }
            catch (InvalidOperationException) when (attempt < 3)
            {
                StopAll();
            }
        }
    }

    private void WriteConfigs(int nsdPort, int unboundPort)
    {
        var d = Directory;
        var nsd = new StringBuilder($"""
            server:
              ip-address: 127.0.0.1@{nsdPort}
              port: {nsdPort}
              username: ""
              chroot: ""
              zonesdir: "{d}"
              database: ""
              pidfile: "{d}/nsd.pid"
              xfrdfile: "{d}/xfrd.state"
              zonelistfile: "{d}/zone.list"
              server-count: 1
              verbosity: 1
              do-ip6: no
              hide-version: yes
            remote-control:
              control-enable: no

            """);
        foreach (var z in Zones)
            nsd.Append($"zone:\n  name: \"{z.Apex}\"\n  zonefile: \"{z.Apex}.zone.signed\"\n");
        File.WriteAllText(Path.Combine(d, "nsd.conf"), nsd.ToString());

        var unbound = new StringBuilder($"""
            server:
              interface: 127.0.0.1@{unboundPort}
              port: {unboundPort}
              do-daemonize: no
              username: ""
              chroot: ""
              directory: "{d}"
              pidfile: ""
              use-syslog: no
              logfile: ""
              verbosity: 1
              val-log-level: 2
              num-threads: 1
              do-ip6: no
              do-not-query-localhost: no
              qname-minimisation: no
              module-config: "validator iterator"
              trust-anchor-file: "{d}/anchors.key"
              val-bogus-ttl: 1
              cache-max-negative-ttl: 1
              # RFC 6761 special-use names are served locally by default; these tests use ".test".
              local-zone: "test." nodefault

            """);
        foreach (var z in Zones.Where(z => z.Signing == ZoneSigning.Unsigned))
            unbound.Append($"  domain-insecure: \"{z.Apex}.\"\n");
        unbound.Append("remote-control:\n  control-enable: no\n");
        // The root is stubbed to NSD as well (which refuses it): names outside the test zones fail locally instead of
        // sending queries to the real root servers.
        unbound.Append($"stub-zone:\n  name: \".\"\n  stub-addr: 127.0.0.1@{nsdPort}\n");
        foreach (var z in Zones)
            unbound.Append($"stub-zone:\n  name: \"{z.Apex}.\"\n  stub-addr: 127.0.0.1@{nsdPort}\n");
        File.WriteAllText(Path.Combine(d, "unbound.conf"), unbound.ToString());
    }

    private Process Launch(string tool, IReadOnlyList<string> args, string tag)
    {
        var psi = new ProcessStartInfo(Which(tool)!)
        {
            RedirectStandardOutput = true, RedirectStandardError = true, UseShellExecute = false, WorkingDirectory = Directory,
        };
        foreach (var a in args) psi.ArgumentList.Add(a);
        var p = Process.Start(psi) ?? throw new InvalidOperationException($"could not start {tool}");
        _processes.Add(p);
        p.OutputDataReceived += (_, e) => { if (e.Data is not null) lock (_output) _output.Append(tag).Append(": ").AppendLine(e.Data); };
        p.ErrorDataReceived += (_, e) => { if (e.Data is not null) lock (_output) _output.Append(tag).Append(": ").AppendLine(e.Data); };
        p.BeginOutputReadLine();
        p.BeginErrorReadLine();
        return p;
    }

    /// <summary>Waits until the server answers (any rcode other than a timeout) for the first zone's NS host.</summary>
    private async Task WaitAnsweringAsync(Process p, IPEndPoint ep, CancellationToken ct)
    {
        var probe = new DnsClientResolver(new DnsResolverOptions
        {
            NameServers = [ep], Timeout = TimeSpan.FromMilliseconds(300), Retries = 0, RequestDnssec = false,
        });
        var name = "ns." + (Zones.FirstOrDefault(z => z.Signing != ZoneSigning.Expired)?.Apex ?? "test");
        var deadline = DateTime.UtcNow + TimeSpan.FromSeconds(20);
        while (true)
        {
            if (p.HasExited)
                throw new InvalidOperationException($"{Path.GetFileName(p.StartInfo.FileName)} exited with {p.ExitCode}:\n{Output}");
            var a = await probe.AddressesAsync(name, true, false, ct).ConfigureAwait(false);
            if (a.Outcome == DnsOutcome.Ok) return;
            if (DateTime.UtcNow > deadline)
                throw new TimeoutException($"{Path.GetFileName(p.StartInfo.FileName)} on {ep} not answering: {a.Error}\n{Output}");
            await Task.Delay(100, ct).ConfigureAwait(false);
        }
    }

    private static int FreeUdpTcpPort(int exclude = 0)
    {
        for (var i = 0; i < 50; i++)
        {
            using var tcp = new Socket(AddressFamily.InterNetwork, SocketType.Stream, ProtocolType.Tcp);
            tcp.Bind(new IPEndPoint(IPAddress.Loopback, 0));
            var port = ((IPEndPoint)tcp.LocalEndPoint!).Port;
            if (port == exclude) continue;
            try
            {
                using var udp = new Socket(AddressFamily.InterNetwork, SocketType.Dgram, ProtocolType.Udp);
                udp.Bind(new IPEndPoint(IPAddress.Loopback, port));
                return port;
            }
            catch (SocketException) { }
        }
        throw new InvalidOperationException("no free loopback port for both UDP and TCP");
    }

    private async Task<string> RunAsync(string tool, IReadOnlyList<string> args, CancellationToken ct)
    {
        var psi = new ProcessStartInfo(Which(tool) ?? tool)
        {
            RedirectStandardOutput = true, RedirectStandardError = true, UseShellExecute = false, WorkingDirectory = Directory,
        };
        foreach (var a in args) psi.ArgumentList.Add(a);
        using var p = Process.Start(psi) ?? throw new InvalidOperationException($"could not start {tool}");
        var stdout = p.StandardOutput.ReadToEndAsync(ct);
        var stderr = p.StandardError.ReadToEndAsync(ct);
        await p.WaitForExitAsync(ct).ConfigureAwait(false);
        if (p.ExitCode != 0)
            throw new InvalidOperationException($"{tool} {string.Join(' ', args)} failed ({p.ExitCode}): {await stderr.ConfigureAwait(false)}");
        return await stdout.ConfigureAwait(false);
    }

    private static string? Which(string tool)
    {
        foreach (var dir in (Environment.GetEnvironmentVariable("PATH") ?? "").Split(':').Concat(["/usr/sbin", "/usr/bin", "/sbin"]))
        {
            if (dir.Length == 0) continue;
            var path = Path.Combine(dir, tool);
            if (File.Exists(path)) return path;
        }
        return null;
    }

    private void StopAll()
    {
        foreach (var p in _processes)
        {
            try { if (!p.HasExited) { p.Kill(entireProcessTree: true); p.WaitForExit(5000); } }
            catch (InvalidOperationException) { }
            catch (System.ComponentModel.Win32Exception) { }
            p.Dispose();
        }
        _processes.Clear();
    }

    public ValueTask DisposeAsync()
    {
        StopAll();
        try { System.IO.Directory.Delete(Directory, recursive: true); } catch (IOException) { } catch (UnauthorizedAccessException) { }
        return ValueTask.CompletedTask;
    }
}

/// <summary>TLSA records (RFC 6698 §2) computed independently of the code under test, in zone-file syntax.</summary>
public static class Tlsa
{
    /// <summary>The certificate association data for a selector (0 full certificate, 1 SubjectPublicKeyInfo) and
    /// matching type (0 exact, 1 SHA-256, 2 SHA-512), as hex.</summary>
    public static string Data(X509Certificate2 cert, int selector, int matchingType)
    {
        ArgumentNullException.ThrowIfNull(cert);
        var selected = selector == 0 ? cert.RawData : cert.PublicKey.ExportSubjectPublicKeyInfo();
        var data = matchingType switch
        {
            0 => selected,
            1 => SHA256.HashData(selected),
            2 => SHA512.HashData(selected),
            _ => throw new ArgumentOutOfRangeException(nameof(matchingType)),
        };
        return Convert.ToHexStringLower(data);
    }

    /// <summary>"_25._tcp.{host}. IN TLSA u s m hex".</summary>
    public static string Record(string host, X509Certificate2 cert, int usage, int selector, int matchingType, int port = 25) =>
        $"_{port}._tcp.{host.TrimEnd('.')}. IN TLSA {usage} {selector} {matchingType} {Data(cert, selector, matchingType)}";

    /// <summary>A well-formed TLSA record whose digest matches nothing.</summary>
    public static string WrongDigest(string host, int usage = 3, int selector = 1, int port = 25) =>
        $"_{port}._tcp.{host.TrimEnd('.')}. IN TLSA {usage} {selector} 1 {Convert.ToHexStringLower(RandomNumberGenerator.GetBytes(32))}";
}
