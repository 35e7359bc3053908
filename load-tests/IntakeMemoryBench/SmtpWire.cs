using System.Net.Sockets;
using System.Text;

namespace MtaSts.Actors.IntakeMemoryBench;

/// <summary>Buffered reader over one SMTP connection: command/reply lines, and (receiver side) a DATA section consumed
/// up to CRLF.CRLF into a fixed buffer without keeping it — the body is counted and dropped.</summary>
internal sealed class SmtpWire(NetworkStream stream) : IDisposable
{
    private readonly byte[] _buf = new byte[64 * 1024];
    private int _pos, _len;

    public NetworkStream Stream => stream;

    private async ValueTask<bool> FillAsync(CancellationToken ct)
    {
        if (_pos < _len) return true;
        _pos = 0;
        _len = await stream.ReadAsync(_buf, ct).ConfigureAwait(false);
        return _len > 0;
    }

    /// <summary>One line without its CRLF (or LF); null at end of stream. Lines over 4 KB are cut (not SMTP anyway).</summary>
    public async ValueTask<string?> ReadLineAsync(CancellationToken ct)
    {
        var sb = new StringBuilder();
        while (true)
        {
            if (!await FillAsync(ct).ConfigureAwait(false)) return sb.Length > 0 ? sb.ToString() : null;
            var span = _buf.AsSpan(_pos, _len - _pos);
            var nl = span.IndexOf((byte)'\n');
            var take = nl < 0 ? span.Length : nl;
            if (sb.Length < 4096) sb.Append(Encoding.ASCII.GetString(span[..Math.Min(take, 4096 - sb.Length)]));
            _pos += nl < 0 ? take : take + 1;
            if (nl >= 0)
            {
                if (sb.Length > 0 && sb[^1] == '\r') sb.Length--;
                return sb.ToString();
            }
        }
    }

    /// <summary>A complete (possibly multi-line) reply: its code and last line. Code 0 = connection closed.</summary>
    public async ValueTask<(int Code, string Text)> ReadReplyAsync(CancellationToken ct)
    {
        while (true)
        {
            var line = await ReadLineAsync(ct).ConfigureAwait(false);
            if (line is null) return (0, "connection closed");
            if (line.Length < 3 || !int.TryParse(line.AsSpan(0, 3), out var code)) return (0, "bad reply: " + line);
            if (line.Length > 3 && line[3] == '-') continue;
            return (code, line);
        }
    }

    /// <summary>Receiver side, after the 354: reads the DATA section up to and including CRLF.CRLF (the section starts
    /// at a line start) and returns how many octets it had, terminator included; -1 if the connection closed first.</summary>
    public async ValueTask<long> DiscardDataAsync(CancellationToken ct)
    {
        // 0 mid-line, 1 after CR, 2 at a line start, 3 line start + '.', 4 line start + '.' + CR
        var state = 2;
        long count = 0;
        while (true)
        {
            if (!await FillAsync(ct).ConfigureAwait(false)) return -1;
            while (_pos < _len)
            {
                var b = _buf[_pos++];
                count++;
                state = (state, b) switch
                {
                    (4, (byte)'\n') => 5,
                    (2, (byte)'.') => 3,
                    (3, (byte)'\r') => 4,
                    (1, (byte)'\n') => 2,
                    (_, (byte)'\r') => 1,
                    _ => 0,
                };
                if (state == 5) return count;
            }
        }
    }

    public async ValueTask WriteAsync(string s, CancellationToken ct) =>
        await stream.WriteAsync(Encoding.ASCII.GetBytes(s), ct).ConfigureAwait(false);

    public void Dispose() => stream.Dispose();
}
