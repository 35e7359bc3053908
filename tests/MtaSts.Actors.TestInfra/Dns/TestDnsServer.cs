using System.Collections.Concurrent;
using System.Net;
using System.Net.Sockets;
using System.Text;

namespace MtaSts.Actors.TestInfra.Dns;

/// <summary>What the server does for every query at a name (fault injection).</summary>
public enum DnsFault { None, ServFail, Refused, Drop }

/// <summary>
/// An in-process authoritative DNS server on 127.0.0.1 (UDP and TCP, same ephemeral port) with a mutable zone:
/// A, AAAA, MX, TXT (multi-string RRs), CNAME, TLSA; per-name faults (SERVFAIL, REFUSED, drop = never answer);
/// optional AD bit on answers. It answers like a recursive resolver would for names it knows: CNAMEs are chased
/// inside the zone and the whole chain is returned (unless <see cref="ChaseCnames"/> is off).
/// Unknown names get NXDOMAIN; known names (or empty non-terminals) without the asked type get NODATA.
/// Wire format: RFC 1035 §4, EDNS OPT echoed (RFC 6891), no name compression in answers.
/// </summary>
public sealed class TestDnsServer : IAsyncDisposable
{
    private const ushort TypeA = 1, TypeCname = 5, TypeMx = 15, TypeTxt = 16, TypeAaaa = 28, TypeOpt = 41, TypeTlsa = 52, TypeSoa = 6;

    private readonly UdpClient _udp;
    private readonly TcpListener _tcp;
    private readonly CancellationTokenSource _stop = new();
    private readonly Task _udpLoop, _tcpLoop;
    private readonly object _gate = new();
    private readonly Dictionary<string, List<Rr>> _zone = new(StringComparer.OrdinalIgnoreCase);
    private readonly Dictionary<string, DnsFault> _faults = new(StringComparer.OrdinalIgnoreCase);
    private readonly ConcurrentDictionary<string, int> _queryCounts = new(StringComparer.OrdinalIgnoreCase);
    private readonly ConcurrentBag<TcpClient> _tcpClients = new();

    private sealed record Rr(ushort Type, byte[] RData, uint Ttl);

    public IPEndPoint EndPoint { get; }
    public int Port => EndPoint.Port;

    /// <summary>Set the AD (authenticated data, RFC 4035 §3.2.3) bit on every NOERROR answer.</summary>
    public bool AuthenticatedData { get; set; }

    /// <summary>Return the CNAME target's records in the same answer (recursive-resolver behaviour). When off,
    /// only the CNAME is returned and the client must re-query the target.</summary>
    public bool ChaseCnames { get; set; } = true;

    /// <summary>UDP payload above which the answer is truncated (TC=1, empty sections). Default: the client's EDNS
    /// size, or 512 without EDNS (RFC 1035 §4.2.1).</summary>
    public int? MaxUdpPayload { get; set; }

    /// <summary>When set, NXDOMAIN and NODATA answers carry the zone's SOA in the authority section with this TTL and
    /// MINIMUM, as real authoritative servers send them (RFC 2308 §3), so resolvers may cache them (§5). Off by default:
    /// tests that change the zone between queries then always reach the server.</summary>
    public uint? NegativeTtl { get; set; }

    public int TotalQueries => _queryCounts.Values.Sum();
    public int TcpQueries => _tcpQueries;
    private int _tcpQueries;

    private TestDnsServer(UdpClient udp, TcpListener tcp)
    {
        _udp = udp;
        _tcp = tcp;
        EndPoint = (IPEndPoint)udp.Client.LocalEndPoint!;
        _udpLoop = Task.Run(UdpLoopAsync);
        _tcpLoop = Task.Run(TcpLoopAsync);
    }

    /// <summary>Binds UDP and TCP on the same free loopback port.</summary>
    public static TestDnsServer Start()
    {
        for (var attempt = 0; ; attempt++)
        {
            var udp = new UdpClient(new IPEndPoint(IPAddress.Loopback, 0));
            var port = ((IPEndPoint)udp.Client.LocalEndPoint!).Port;
            var tcp = new TcpListener(IPAddress.Loopback, port);
            try
            {
                tcp.Start();
                return new TestDnsServer(udp, tcp);
            }
            catch (SocketException) when (attempt < 20)
            {
                udp.Dispose();
            }
        }
    }

    // ---- zone API ----

    public TestDnsServer AddA(string name, string address, uint ttl = 300) => Add(name, TypeA, IPAddress.Parse(address).GetAddressBytes(), ttl);
    public TestDnsServer AddAaaa(string name, string address, uint ttl = 300) => Add(name, TypeAaaa, IPAddress.Parse(address).GetAddressBytes(), ttl);

    /// <summary>One TXT RR made of the given character-strings (each ≤ 255 bytes).</summary>
    public TestDnsServer AddTxt(string name, params string[] strings) => AddTxt(name, 300, strings);

    public TestDnsServer AddTxt(string name, uint ttl, params string[] strings)
    {
        var ms = new MemoryStream();
        foreach (var s in strings)
        {
            var b = Encoding.UTF8.GetBytes(s);
            if (b.Length > 255) throw new ArgumentException("TXT character-string longer than 255 bytes", nameof(strings));
            ms.WriteByte((byte)b.Length);
            ms.Write(b);
        }
        return Add(name, TypeTxt, ms.ToArray(), ttl);
    }

    /// <summary>MX; exchange "." (or "") is the null MX of RFC 7505.</summary>
    public TestDnsServer AddMx(string name, ushort preference, string exchange, uint ttl = 300)
    {
        var ms = new MemoryStream();
        ms.WriteByte((byte)(preference >> 8));
        ms.WriteByte((byte)preference);
        WriteName(ms, exchange);
        return Add(name, TypeMx, ms.ToArray(), ttl);
    }

    public TestDnsServer AddCname(string name, string target, uint ttl = 300)
    {
        var ms = new MemoryStream();
        WriteName(ms, target);
        return Add(name, TypeCname, ms.ToArray(), ttl);
    }

    public TestDnsServer AddTlsa(string name, byte usage, byte selector, byte matchingType, byte[] data, uint ttl = 300)
    {
        var rdata = new byte[3 + data.Length];
        rdata[0] = usage; rdata[1] = selector; rdata[2] = matchingType;
        data.CopyTo(rdata, 3);
        return Add(name, TypeTlsa, rdata, ttl);
    }

    /// <summary>Removes every record at the name (all types).</summary>
    public TestDnsServer Remove(string name)
    {
        lock (_gate) _zone.Remove(Normalize(name));
        return this;
    }

    /// <summary>Replaces all TXT RRs at the name with one RR of the given strings.</summary>
    public TestDnsServer SetTxt(string name, params string[] strings)
    {
        lock (_gate)
            if (_zone.TryGetValue(Normalize(name), out var list)) list.RemoveAll(r => r.Type == TypeTxt);
        return AddTxt(name, strings);
    }

    public TestDnsServer SetFault(string name, DnsFault fault)
    {
        lock (_gate)
        {
            if (fault == DnsFault.None) _faults.Remove(Normalize(name));
            else _faults[Normalize(name)] = fault;
        }
        return this;
    }

    /// <summary>Number of queries received for a name (any type, UDP and TCP).</summary>
    public int QueryCount(string name) => _queryCounts.TryGetValue(Normalize(name), out var n) ? n : 0;

    private TestDnsServer Add(string name, ushort type, byte[] rdata, uint ttl)
    {
        lock (_gate)
        {
            var key = Normalize(name);
            if (!_zone.TryGetValue(key, out var list)) _zone[key] = list = new List<Rr>();
            list.Add(new Rr(type, rdata, ttl));
        }
        return this;
    }

    private static string Normalize(string name) => name.Trim().TrimEnd('.').ToLowerInvariant();

    // ---- transport ----

    private async Task UdpLoopAsync()
    {
        while (!_stop.IsCancellationRequested)
        {
            UdpReceiveResult rx;
            try { rx = await _udp.ReceiveAsync(_stop.Token); }
            catch (OperationCanceledException) { return; }
            catch (ObjectDisposedException) { return; }
            catch (SocketException) { continue; } // ICMP port unreachable from an earlier reply; keep serving
            try
            {
                var reply = Answer(rx.Buffer, udp: true);
                if (reply is not null) await _udp.SendAsync(reply, rx.RemoteEndPoint, _stop.Token);
            }
            catch (OperationCanceledException) { return; }
            catch (Exception) { /* malformed query: ignore, like a real server would (or FORMERR) */ }
        }
    }

    private async Task TcpLoopAsync()
    {
        while (!_stop.IsCancellationRequested)
        {
            TcpClient client;
            try { client = await _tcp.AcceptTcpClientAsync(_stop.Token); }
            catch (OperationCanceledException) { return; }
            catch (ObjectDisposedException) { return; }
            catch (SocketException) { return; }
            _tcpClients.Add(client);
            _ = Task.Run(() => ServeTcpAsync(client));
        }
    }

    // RFC 1035 §4.2.2 / RFC 7766: two-byte length prefix, several queries per connection allowed.
    private async Task ServeTcpAsync(TcpClient client)
    {
        try
        {
            using (client)
            {
                var stream = client.GetStream();
                var lenBuf = new byte[2];
                while (!_stop.IsCancellationRequested)
                {
                    await stream.ReadExactlyAsync(lenBuf, _stop.Token);
                    var len = (lenBuf[0] << 8) | lenBuf[1];
                    var query = new byte[len];
                    await stream.ReadExactlyAsync(query, _stop.Token);
                    Interlocked.Increment(ref _tcpQueries);
                    var reply = Answer(query, udp: false);
                    if (reply is null) continue; // drop: keep the connection open, answer nothing
                    var framed = new byte[reply.Length + 2];
                    framed[0] = (byte)(reply.Length >> 8);
                    framed[1] = (byte)reply.Length;
                    reply.CopyTo(framed, 2);
                    await stream.WriteAsync(framed, _stop.Token);
                }
            }
        }
        catch (Exception) { /* client went away or server stopping */ }
    }

    // ---- protocol ----

    private byte[]? Answer(byte[] q, bool udp)
    {
        if (q.Length < 12) return null;
        var id = (ushort)((q[0] << 8) | q[1]);
        var flags = (ushort)((q[2] << 8) | q[3]);
        if ((flags & 0x8000) != 0) return null; // a response, not a query
        var rd = (flags & 0x0100) != 0;
        var qd = (q[4] << 8) | q[5];
        var ar = (q[10] << 8) | q[11];
        if (qd != 1) return null;
        var pos = 12;
        var qname = ReadName(q, ref pos);
        var qtype = (ushort)((q[pos] << 8) | q[pos + 1]);
        var qclass = (ushort)((q[pos + 2] << 8) | q[pos + 3]);
        var questionEnd = pos + 4;
        pos = questionEnd;

        // EDNS (RFC 6891): the requestor's UDP payload size and DO bit.
        int? ednsSize = null;
        var dnssecOk = false;
        for (var i = 0; i < ar && pos < q.Length; i++)
        {
            ReadName(q, ref pos);
            var type = (ushort)((q[pos] << 8) | q[pos + 1]);
            var cls = (ushort)((q[pos + 2] << 8) | q[pos + 3]);
            var ttl = (uint)((q[pos + 4] << 24) | (q[pos + 5] << 16) | (q[pos + 6] << 8) | q[pos + 7]);
            var rdlen = (q[pos + 8] << 8) | q[pos + 9];
            pos += 10 + rdlen;
            if (type == TypeOpt) { ednsSize = Math.Max(512, (int)cls); dnssecOk = (ttl & 0x8000) != 0; }
        }

        var name = Normalize(qname);
        _queryCounts.AddOrUpdate(name, 1, (_, n) => n + 1);

        DnsFault fault;
        lock (_gate) fault = _faults.GetValueOrDefault(name);
        if (fault == DnsFault.Drop) return null;

        var answers = new List<(string Owner, Rr Rr)>();
        var rcode = 0;
        if (fault == DnsFault.ServFail) rcode = 2;
        else if (fault == DnsFault.Refused) rcode = 5;
        else if (qclass != 1) rcode = 4; // NOTIMP
        else rcode = Resolve(name, qtype, answers);

        // RFC 2308 §3: the SOA of the zone with a negative answer (owner: the name's last label stands for the zone).
        var negativeSoa = NegativeTtl is { } negTtl && rcode is 0 or 3 && answers.Count == 0
            ? (Owner: name[(name.LastIndexOf('.') + 1)..], Ttl: negTtl)
            : ((string Owner, uint Ttl)?)null;

        var r = new MemoryStream();
        WriteU16(r, id);
        // QR=1, opcode 0, AA=1, RD copied, RA=1, AD per setting (only on success), rcode
        var rflags = 0x8000 | 0x0400 | (rd ? 0x0100 : 0) | 0x0080 | rcode;
        if (AuthenticatedData && rcode is 0 or 3) rflags |= 0x0020;
        var flagsPos = (int)r.Position;
        WriteU16(r, (ushort)rflags);
        WriteU16(r, 1);
        WriteU16(r, (ushort)answers.Count);
        WriteU16(r, (ushort)(negativeSoa is null ? 0 : 1));
        WriteU16(r, (ushort)(ednsSize is null ? 0 : 1));
        r.Write(q, 12, questionEnd - 12);
        foreach (var (owner, rr) in answers)
        {
            WriteName(r, owner);
            WriteU16(r, rr.Type);
            WriteU16(r, 1);
            WriteU32(r, rr.Ttl);
            WriteU16(r, (ushort)rr.RData.Length);
            r.Write(rr.RData);
        }
        if (negativeSoa is { } soa)
        {
            // RFC 1035 §3.3.13: MNAME, RNAME, SERIAL, REFRESH, RETRY, EXPIRE, MINIMUM.
            var rdata = new MemoryStream();
            WriteName(rdata, "ns." + soa.Owner);
            WriteName(rdata, "hostmaster." + soa.Owner);
            WriteU32(rdata, 1);
            WriteU32(rdata, 3600);
            WriteU32(rdata, 600);
            WriteU32(rdata, 86400);
            WriteU32(rdata, soa.Ttl);
            WriteName(r, soa.Owner);
            WriteU16(r, TypeSoa);
            WriteU16(r, 1);
            WriteU32(r, soa.Ttl);
            WriteU16(r, (ushort)rdata.Length);
            r.Write(rdata.ToArray());
        }
        if (ednsSize is not null) WriteOpt(r, dnssecOk);

        var bytes = r.ToArray();
        var limit = MaxUdpPayload ?? ednsSize ?? 512;
        if (udp && bytes.Length > limit)
        {
            // RFC 2181 §9: set TC and drop the sections so that the client retries over TCP.
            var t = new MemoryStream();
            t.Write(bytes, 0, 4);
            t.Position = flagsPos;
            WriteU16(t, (ushort)(rflags | 0x0200));
            WriteU16(t, 1); WriteU16(t, 0); WriteU16(t, 0); WriteU16(t, (ushort)(ednsSize is null ? 0 : 1));
            t.Write(q, 12, questionEnd - 12);
            if (ednsSize is not null) WriteOpt(t, dnssecOk);
            bytes = t.ToArray();
        }
        return bytes;
    }

    private int Resolve(string name, ushort qtype, List<(string, Rr)> answers)
    {
        lock (_gate)
        {
            var current = name;
            for (var hops = 0; hops < 16; hops++)
            {
                if (!_zone.TryGetValue(current, out var rrs) || rrs.Count == 0)
                {
                    if (hops > 0) return 0; // CNAME pointing outside the zone: return the chain, NOERROR
                    var isEmptyNonTerminal = _zone.Keys.Any(k => k.EndsWith("." + current, StringComparison.OrdinalIgnoreCase));
                    return isEmptyNonTerminal ? 0 : 3;
                }
                var cname = rrs.FirstOrDefault(r => r.Type == TypeCname);
                if (cname is not null && qtype != TypeCname)
                {
                    answers.Add((current, cname));
                    if (!ChaseCnames) return 0;
                    var p = 0;
                    current = Normalize(ReadName(cname.RData, ref p));
                    continue;
                }
                foreach (var rr in rrs.Where(r => r.Type == qtype)) answers.Add((current, rr));
                return 0;
            }
            return 2; // CNAME loop
        }
    }

    private static void WriteOpt(MemoryStream r, bool dnssecOk)
    {
        r.WriteByte(0);
        WriteU16(r, TypeOpt);
        WriteU16(r, 4096);
        WriteU32(r, dnssecOk ? 0x8000u : 0u);
        WriteU16(r, 0);
    }

    private static void WriteU16(Stream s, ushort v) { s.WriteByte((byte)(v >> 8)); s.WriteByte((byte)v); }
    private static void WriteU32(Stream s, uint v) { WriteU16(s, (ushort)(v >> 16)); WriteU16(s, (ushort)v); }

    private static void WriteName(Stream s, string name)
    {
        foreach (var label in Normalize(name).Split('.', StringSplitOptions.RemoveEmptyEntries))
        {
            var b = Encoding.ASCII.GetBytes(label);
            if (b.Length > 63) throw new ArgumentException($"label too long: {label}");
            s.WriteByte((byte)b.Length);
            s.Write(b);
        }
        s.WriteByte(0);
    }

    private static string ReadName(byte[] m, ref int pos)
    {
        var labels = new List<string>();
        var p = pos;
        var jumped = false;
        for (var guard = 0; guard < 128; guard++)
        {
            var len = m[p];
            if (len == 0) { p++; break; }
            if ((len & 0xC0) == 0xC0)
            {
                var target = ((len & 0x3F) << 8) | m[p + 1];
                if (!jumped) pos = p + 2;
                jumped = true;
                p = target;
                continue;
            }
            labels.Add(Encoding.ASCII.GetString(m, p + 1, len));
            p += 1 + len;
        }
        if (!jumped) pos = p;
        return string.Join('.', labels);
    }

    public async ValueTask DisposeAsync()
    {
        _stop.Cancel();
        _udp.Dispose();
        _tcp.Stop();
        foreach (var c in _tcpClients) c.Dispose();
        try { await Task.WhenAll(_udpLoop, _tcpLoop).WaitAsync(TimeSpan.FromSeconds(5)); } catch (Exception) { }
        _stop.Dispose();
    }
}
