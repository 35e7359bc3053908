using System.Net;
using System.Net.Sockets;
using System.Text;

namespace MtaSts.Actors.LoadTests.Smtp;

/// <summary>
/// A deliberately small SMTP client for load generation. MailKit is a fine client, but on two shared cores the
/// generator's own CPU per message matters: this one pipelines MAIL/RCPT/DATA (RFC 2920) in one write, sends
/// headers+body+dot in one write, and parses replies from a reused buffer. It does not do TLS or AUTH (the
/// baseline measures the relay, not the handshake).
/// </summary>
public sealed class SmtpLoadClient : IAsyncDisposable
{
    private readonly Socket _socket;
    private readonly NetworkStream _stream;
    private readonly SmtpLineReader _reader;
    private byte[] _buffer = new byte[8 * 1024];
    private bool _pipelining;

    private SmtpLoadClient(Socket socket)
    {
        _socket = socket;
        _stream = new NetworkStream(socket, ownsSocket: true);
        _reader = new SmtpLineReader(_stream, 4096);
    }

    public int MessagesSent { get; private set; }
    public bool Broken { get; private set; }

    /// <summary>Connects, reads the banner and says EHLO. Returns the client, or the failing reply.</summary>
    public static async Task<(SmtpLoadClient? Client, SmtpReply Reply)> ConnectAsync(IPEndPoint endpoint, string helo, CancellationToken ct)
    {
        var socket = new Socket(endpoint.AddressFamily, SocketType.Stream, ProtocolType.Tcp) { NoDelay = true };
        try
        {
            await socket.ConnectAsync(endpoint, ct).ConfigureAwait(false);
        }
        catch (SocketException ex)
        {
            socket.Dispose();
            return (null, new SmtpReply(0, "connect: " + ex.SocketErrorCode, []));
        }
        var client = new SmtpLoadClient(socket);
        var banner = await client._reader.ReadReplyAsync(ct).ConfigureAwait(false);
        if (banner.Code != 220)
        {
            await client.DisposeAsync().ConfigureAwait(false);
            return (null, banner);
        }
        await client.WriteAsync("EHLO " + helo + "\r\n", ct).ConfigureAwait(false);
        var ehlo = await client._reader.ReadReplyAsync(ct).ConfigureAwait(false);
        if (ehlo.Code != 250)
        {
            await client.DisposeAsync().ConfigureAwait(false);
            return (null, ehlo);
        }
        client._pipelining = ehlo.Lines.Any(l => l.StartsWith("PIPELINING", StringComparison.OrdinalIgnoreCase));
        return (client, ehlo);
    }

    /// <summary>
    /// Sends one message. Returns the final reply (250 on success). A 421 or a lost connection marks the client
    /// broken; the caller opens a new one. A refused MAIL/RCPT is followed by RSET so the session stays usable.
    /// </summary>
    public async Task<SmtpReply> SendAsync(string sender, string recipient, Func<byte[], (int Length, byte[] Buffer)> writeData, CancellationToken ct)
    {
        var envelope = $"MAIL FROM:<{sender}>\r\nRCPT TO:<{recipient}>\r\nDATA\r\n";
        SmtpReply mail, rcpt, data;
        if (_pipelining)
        {
            await WriteAsync(envelope, ct).ConfigureAwait(false);
            mail = await _reader.ReadReplyAsync(ct).ConfigureAwait(false);
            if (mail.Code is 421 or 0) return Fail(mail);
            rcpt = await _reader.ReadReplyAsync(ct).ConfigureAwait(false);
            if (rcpt.Code is 421 or 0) return Fail(rcpt);
            data = await _reader.ReadReplyAsync(ct).ConfigureAwait(false);
        }
        else
        {
            await WriteAsync($"MAIL FROM:<{sender}>\r\n", ct).ConfigureAwait(false);
            mail = await _reader.ReadReplyAsync(ct).ConfigureAwait(false);
            if (!mail.IsPositive) return await Reset(mail, ct).ConfigureAwait(false);
            await WriteAsync($"RCPT TO:<{recipient}>\r\n", ct).ConfigureAwait(false);
            rcpt = await _reader.ReadReplyAsync(ct).ConfigureAwait(false);
            if (!rcpt.IsPositive) return await Reset(rcpt, ct).ConfigureAwait(false);
            await WriteAsync("DATA\r\n", ct).ConfigureAwait(false);
            data = await _reader.ReadReplyAsync(ct).ConfigureAwait(false);
        }
        if (data.Code is 421 or 0) return Fail(data);
        if (data.Code != 354)
        {
            // Pipelined: DATA is refused when MAIL or RCPT was; report the first refusal, it says why.
            var first = !mail.IsPositive ? mail : !rcpt.IsPositive ? rcpt : data;
            return await Reset(first, ct).ConfigureAwait(false);
        }
        var (len, buffer) = writeData(_buffer);
        _buffer = buffer;
        try
        {
            await _stream.WriteAsync(_buffer.AsMemory(0, len), ct).ConfigureAwait(false);
        }
        catch (IOException) { return Fail(SmtpReply.ConnectionLost); }
        var final = await _reader.ReadReplyAsync(ct).ConfigureAwait(false);
        if (final.Code is 421 or 0) return Fail(final);
        if (final.Code == 250) MessagesSent++;
        return final;
    }

    private async Task<SmtpReply> Reset(SmtpReply reason, CancellationToken ct)
    {
        await WriteAsync("RSET\r\n", ct).ConfigureAwait(false);
        var r = await _reader.ReadReplyAsync(ct).ConfigureAwait(false);
        if (r.Code != 250) Broken = true;
        return reason;
    }

    private SmtpReply Fail(SmtpReply reply)
    {
        Broken = true;
        return reply;
    }

    private async Task WriteAsync(string s, CancellationToken ct)
    {
        var n = Encoding.ASCII.GetBytes(s, _buffer);
        try
        {
            await _stream.WriteAsync(_buffer.AsMemory(0, n), ct).ConfigureAwait(false);
        }
        catch (IOException) { Broken = true; }
    }

    public async ValueTask DisposeAsync()
    {
        if (!Broken)
        {
            try
            {
                using var cts = new CancellationTokenSource(TimeSpan.FromSeconds(2));
                await WriteAsync("QUIT\r\n", cts.Token).ConfigureAwait(false);
                await _reader.ReadReplyAsync(cts.Token).ConfigureAwait(false);
            }
            catch (Exception) { /* closing anyway */ }
        }
        await _stream.DisposeAsync().ConfigureAwait(false);
    }
}
