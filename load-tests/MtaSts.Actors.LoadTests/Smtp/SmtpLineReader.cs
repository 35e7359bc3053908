using System.Net.Sockets;

namespace MtaSts.Actors.LoadTests.Smtp;

/// <summary>
/// Buffered CRLF line reader over a socket stream, shared by the client and the receiver. Lines are returned as
/// spans into the buffer (valid until the next call) so that reading a 100 KB DATA section allocates nothing.
/// </summary>
public sealed class SmtpLineReader(Stream stream, int initialSize = 16 * 1024)
{
    private byte[] _buf = new byte[initialSize];
    private int _start;
    private int _end;

    /// <summary>True when a complete line is already buffered (the peer pipelined): replies can wait to be flushed together.</summary>
    public bool HasBufferedLine => _buf.AsSpan(_start, _end - _start).IndexOf((byte)'\n') >= 0;

    /// <summary>Reads one line without its CRLF. Returns false on EOF.</summary>
    public async ValueTask<(bool Ok, int Start, int Length)> ReadLineAsync(CancellationToken ct)
    {
        while (true)
        {
            var nl = _buf.AsSpan(_start, _end - _start).IndexOf((byte)'\n');
            if (nl >= 0)
            {
                var lineStart = _start;
                var len = nl;
                if (len > 0 && _buf[lineStart + len - 1] == '\r') len--;
                _start += nl + 1;
                return (true, lineStart, len);
            }
            if (_start > 0)
            {
                Buffer.BlockCopy(_buf, _start, _buf, 0, _end - _start);
                _end -= _start;
                _start = 0;
            }
            if (_end == _buf.Length) Array.Resize(ref _buf, _buf.Length * 2); // over-long line: grow, don't fail
            int n;
            try
            {
                n = await stream.ReadAsync(_buf.AsMemory(_end), ct).ConfigureAwait(false);
            }
            catch (IOException) { n = 0; }
            catch (SocketException) { n = 0; }
            if (n == 0) return (false, 0, 0);
            _end += n;
        }
    }

    public ReadOnlySpan<byte> Line(int start, int length) => _buf.AsSpan(start, length);

    /// <summary>Reads a (possibly multi-line) SMTP reply and returns its code and last line's text.</summary>
    public async ValueTask<SmtpReply> ReadReplyAsync(CancellationToken ct)
    {
        var lines = new List<string>(1);
        while (true)
        {
            var (ok, start, len) = await ReadLineAsync(ct).ConfigureAwait(false);
            if (!ok) return SmtpReply.ConnectionLost;
            var span = _buf.AsSpan(start, len);
            if (span.Length < 3) return new SmtpReply(0, System.Text.Encoding.ASCII.GetString(span), lines);
            var code = (span[0] - '0') * 100 + (span[1] - '0') * 10 + (span[2] - '0');
            var text = System.Text.Encoding.ASCII.GetString(span.Length > 4 ? span[4..] : ReadOnlySpan<byte>.Empty);
            lines.Add(text);
            if (span.Length == 3 || span[3] == ' ') return new SmtpReply(code, text, lines);
        }
    }
}

public sealed record SmtpReply(int Code, string Text, IReadOnlyList<string> Lines)
{
    public static readonly SmtpReply ConnectionLost = new(0, "connection lost", []);
    public bool IsPositive => Code is >= 200 and < 400;
    public string Class => Code switch { 0 => "io", >= 500 => $"{Code}", >= 400 => $"{Code}", _ => $"{Code}" };
}
