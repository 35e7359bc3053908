using System.Buffers.Binary;

namespace MtaSts.Actors.TestInfra.Net;

/// <summary>
/// What a TLS handshake was, read from the two plaintext hellos (SslStream does not say whether a session was resumed).
/// Sits between the receiver's socket stream and its <see cref="System.Net.Security.SslStream"/>: it copies the first
/// handshake message the client sends (ClientHello) and the first one the server sends (ServerHello), then passes
/// everything through untouched.
/// <list type="bullet">
/// <item>Offered: the ClientHello carries a pre_shared_key extension (TLS 1.3 ticket, RFC 8446 §4.2.11) or a non-empty
/// session_ticket extension (TLS 1.2, RFC 5077 §3.2) — the client tried to resume.</item>
/// <item>Resumed: TLS 1.3 — the ServerHello carries pre_shared_key (the server accepted a PSK: no certificate sent,
/// RFC 8446 §2.2); TLS 1.2 — the ServerHello echoes the client's non-empty session id (RFC 5246 §7.4.1.3, RFC 5077
/// §3.4: abbreviated handshake, no Certificate message).</item>
/// </list>
/// </summary>
public sealed class TlsHelloProbe(Stream inner) : Stream
{
    private const int MaxHello = 64 * 1024;
    private readonly HelloCollector _client = new(1);
    private readonly HelloCollector _server = new(2);

    /// <summary>null until both hellos were seen and parsed.</summary>
    public TlsHelloFacts? Facts => _client.Message is { } ch && _server.Message is { } sh ? TlsHelloFacts.From(ch, sh) : null;

    public override async ValueTask<int> ReadAsync(Memory<byte> buffer, CancellationToken ct = default)
    {
        var n = await inner.ReadAsync(buffer, ct).ConfigureAwait(false);
        _client.Feed(buffer.Span[..n]);
        return n;
    }

    public override async ValueTask WriteAsync(ReadOnlyMemory<byte> buffer, CancellationToken ct = default)
    {
        _server.Feed(buffer.Span);
        await inner.WriteAsync(buffer, ct).ConfigureAwait(false);
    }

    public override int Read(byte[] buffer, int offset, int count)
    {
        var n = inner.Read(buffer, offset, count);
        _client.Feed(buffer.AsSpan(offset, n));
        return n;
    }

    public override void Write(byte[] buffer, int offset, int count)
    {
        _server.Feed(buffer.AsSpan(offset, count));
        inner.Write(buffer, offset, count);
    }

    public override Task<int> ReadAsync(byte[] buffer, int offset, int count, CancellationToken ct) => ReadAsync(buffer.AsMemory(offset, count), ct).AsTask();
    public override Task WriteAsync(byte[] buffer, int offset, int count, CancellationToken ct) => WriteAsync(buffer.AsMemory(offset, count), ct).AsTask();
    public override void Flush() => inner.Flush();
    public override Task FlushAsync(CancellationToken ct) => inner.FlushAsync(ct);
    public override bool CanRead => true;
    public override bool CanWrite => true;
    public override bool CanSeek => false;
    public override long Length => throw new NotSupportedException();
    public override long Position { get => throw new NotSupportedException(); set => throw new NotSupportedException(); }
    public override long Seek(long offset, SeekOrigin origin) => throw new NotSupportedException();
    public override void SetLength(long value) => throw new NotSupportedException();

    protected override void Dispose(bool disposing)
    {
        if (disposing) inner.Dispose();
        base.Dispose(disposing);
    }

    public override async ValueTask DisposeAsync()
    {
        await inner.DisposeAsync().ConfigureAwait(false);
        await base.DisposeAsync().ConfigureAwait(false);
    }

    /// <summary>Reassembles the first handshake message of one direction from TLS records (RFC 8446 §5.1: a handshake
    /// message may span records; records may split anywhere in our reads).</summary>
    private sealed class HelloCollector(byte expectedType)
    {
        private readonly List<byte> _wire = new();
        private readonly List<byte> _handshake = new();
        private bool _done;
        public byte[]? Message { get; private set; }

        public void Feed(ReadOnlySpan<byte> data)
        {
            if (_done || data.IsEmpty) return;
            foreach (var b in data) _wire.Add(b);
            var pos = 0;
            while (_wire.Count - pos >= 5)
            {
                var type = _wire[pos];
                var len = (_wire[pos + 3] << 8) | _wire[pos + 4];
                if (type != 22) { _done = true; return; } // not a handshake record: nothing (more) to learn
                if (_wire.Count - pos < 5 + len) break;
                _handshake.AddRange(_wire.GetRange(pos + 5, len));
                pos += 5 + len;
                if (_handshake.Count >= 4)
                {
                    var msgLen = (_handshake[1] << 16) | (_handshake[2] << 8) | _handshake[3];
                    if (_handshake[0] != expectedType) { _done = true; return; }
                    if (_handshake.Count >= 4 + msgLen)
                    {
                        Message = _handshake.GetRange(4, msgLen).ToArray();
                        _done = true;
                        _wire.Clear();
                        return;
                    }
                }
            }
            _wire.RemoveRange(0, pos);
            if (_wire.Count + _handshake.Count > MaxHello) _done = true;
        }
    }
}

/// <param name="Version">The negotiated version: "TLSv1.3" (supported_versions in the ServerHello) or "TLSv1.2".</param>
public sealed record TlsHelloFacts(string Version, bool Offered, bool Resumed)
{
    private const ushort PreSharedKey = 41, SessionTicket = 35, SupportedVersions = 43;

    // RFC 8446 §4.1.3: a ServerHello with this random is a HelloRetryRequest; the real ServerHello follows later.
    private static readonly byte[] HelloRetryRandom = Convert.FromHexString("CF21AD74E59A6111BE1D8C021E65B891C2A211167ABB8C5E079E09E2C8A8339C");

    public static TlsHelloFacts? From(byte[] clientHello, byte[] serverHello)
    {
        if (!TryParse(clientHello, isClient: true, out var cSessionId, out var cExt)) return null;
        if (!TryParse(serverHello, isClient: false, out var sSessionId, out var sExt)) return null;
        if (serverHello.AsSpan(2, 32).SequenceEqual(HelloRetryRandom)) return null;
        var tls13 = sExt.TryGetValue(SupportedVersions, out var v) && v.Length == 2 && v[0] == 3 && v[1] == 4;
        var offered = cExt.ContainsKey(PreSharedKey) || (cExt.TryGetValue(SessionTicket, out var ticket) && ticket.Length > 0);
        var resumed = tls13
            ? sExt.ContainsKey(PreSharedKey)
            : sSessionId.Length > 0 && sSessionId.AsSpan().SequenceEqual(cSessionId);
        return new TlsHelloFacts(tls13 ? "TLSv1.3" : "TLSv1.2", offered, resumed);
    }

    /// <summary>ClientHello / ServerHello body (RFC 8446 §4.1.2–4.1.3): version, random, session id, cipher suite(s),
    /// compression method(s), extensions.</summary>
    public static bool TryParse(byte[] m, bool isClient, out byte[] sessionId, out Dictionary<ushort, byte[]> extensions)
    {
        sessionId = [];
        extensions = new();
        try
        {
            var p = 2 + 32;
            int sidLen = m[p++];
            sessionId = m.AsSpan(p, sidLen).ToArray();
            p += sidLen;
            if (isClient)
            {
                p += 2 + BinaryPrimitives.ReadUInt16BigEndian(m.AsSpan(p));
                p += 1 + m[p];
            }
            else p += 2 + 1;
            if (p == m.Length) return true; // no extensions
            var end = p + 2 + BinaryPrimitives.ReadUInt16BigEndian(m.AsSpan(p));
            p += 2;
            if (end > m.Length) return false;
            while (p + 4 <= end)
            {
                var type = BinaryPrimitives.ReadUInt16BigEndian(m.AsSpan(p));
                var len = BinaryPrimitives.ReadUInt16BigEndian(m.AsSpan(p + 2));
                if (p + 4 + len > end) return false;
                extensions[type] = m.AsSpan(p + 4, len).ToArray();
                p += 4 + len;
            }
            return true;
        }
        catch (ArgumentOutOfRangeException) { return false; }
        catch (IndexOutOfRangeException) { return false; }
    }
}
