using System.Collections.Concurrent;
using System.Net;
using System.Net.Sockets;
using System.Text;

namespace MtaSts.Actors.TestInfra.Smtp;

/// <summary>
/// A minimal SMTP receiver that keeps the DATA section exactly as it came off the wire (dot-stuffing included, up to
/// and including the final CRLF.CRLF), to check the bytes a gateway sends to the next hop. Plain text only; no
/// PIPELINING, CHUNKING or STARTTLS offered.
/// </summary>
public sealed class RawCaptureReceiver : IAsyncDisposable
{
    private readonly TcpListener _listener = new(IPAddress.Loopback, 0);
    private readonly CancellationTokenSource _stop = new();
    private readonly ConcurrentQueue<byte[]> _data = new();
    private readonly Task _loop;

    public RawCaptureReceiver()
    {
        _listener.Start();
        _loop = AcceptLoopAsync();
    }

    public int Port => ((IPEndPoint)_listener.LocalEndpoint).Port;

    /// <summary>Raw DATA sections received, each ending in "\r\n.\r\n".</summary>
    public IReadOnlyList<byte[]> Data => _data.ToArray();

    private async Task AcceptLoopAsync()
    {
        var sessions = new List<Task>();
        try
        {
            while (true)
            {
                var client = await _listener.AcceptTcpClientAsync(_stop.Token).ConfigureAwait(false);
                sessions.Add(SessionAsync(client));
            }
        }
        catch (Exception e) when (e is OperationCanceledException or ObjectDisposedException or SocketException) { }
        await Task.WhenAll(sessions).ConfigureAwait(false);
    }

    private async Task SessionAsync(TcpClient client)
    {
        using var _ = client;
        var stream = client.GetStream();
        var buf = new List<byte>();
        var chunk = new byte[8192];
        var ct = _stop.Token;
        async Task Send(string s) => await stream.WriteAsync(Encoding.ASCII.GetBytes(s + "\r\n"), ct).ConfigureAwait(false);
        async Task<bool> Fill()
        {
            int n = await stream.ReadAsync(chunk, ct).ConfigureAwait(false);
            if (n == 0) return false;
            buf.AddRange(chunk.AsSpan(0, n));
            return true;
        }
        try
        {
            await Send("220 raw.test.invalid ESMTP raw capture").ConfigureAwait(false);
            while (true)
            {
                int lf;
                while ((lf = buf.IndexOf((byte)'\n')) < 0)
                    if (!await Fill().ConfigureAwait(false)) return;
                var line = Encoding.ASCII.GetString(buf.GetRange(0, lf + 1).ToArray()).TrimEnd('\r', '\n');
                buf.RemoveRange(0, lf + 1);
                var verb = line.Split(' ')[0].ToUpperInvariant();
                switch (verb)
                {
                    case "EHLO": await Send("250-raw.test.invalid\r\n250 8BITMIME").ConfigureAwait(false); break;
                    case "HELO": case "MAIL": case "RCPT": case "RSET": case "NOOP": await Send("250 2.0.0 ok").ConfigureAwait(false); break;
                    case "QUIT": await Send("221 2.0.0 bye").ConfigureAwait(false); return;
                    case "DATA":
                    {
                        await Send("354 go ahead").ConfigureAwait(false);
                        // Strictly CRLF.CRLF, searched in the raw bytes (the DATA section starts after the command's CRLF).
                        var data = new List<byte> { (byte)'\r', (byte)'\n' };
                        int end;
                        while (true)
                        {
                            data.AddRange(buf);
                            buf.Clear();
                            end = IndexOf(data, "\r\n.\r\n"u8.ToArray());
                            if (end >= 0) break;
                            if (!await Fill().ConfigureAwait(false)) return;
                        }
                        var section = data.GetRange(2, end + 5 - 2).ToArray();
                        buf.AddRange(data.Skip(end + 5));
                        _data.Enqueue(section);
                        await Send("250 2.0.0 captured").ConfigureAwait(false);
                        break;
                    }
                    default: await Send("502 5.5.1 not here").ConfigureAwait(false); break;
                }
            }
        }
        catch (Exception e) when (e is OperationCanceledException or IOException or SocketException or ObjectDisposedException) { }
    }

    private static int IndexOf(List<byte> haystack, byte[] needle)
    {
        for (int i = 0; i + needle.Length <= haystack.Count; i++)
        {
            int j = 0;
            while (j < needle.Length && haystack[i + j] == needle[j]) j++;
            if (j == needle.Length) return i;
        }
        return -1;
    }

    public async ValueTask DisposeAsync()
    {
        await _stop.CancelAsync().ConfigureAwait(false);
        _listener.Stop();
        await _loop.ConfigureAwait(false);
        _stop.Dispose();
    }
}
