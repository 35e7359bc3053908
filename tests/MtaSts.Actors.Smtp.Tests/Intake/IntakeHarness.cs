using System.Collections.Concurrent;
using System.Net;
using System.Net.Sockets;
using System.Text;
using System.Threading.Channels;
using MtaSts.Actors.Logging;
using MtaSts.Actors.Smtp.Intake;
using MtaSts.Actors.Spool;

namespace MtaSts.Actors.Smtp.Tests.Intake;

/// <summary>A listener on 127.0.0.1:ephemeral with a real SegmentSpool in a temp directory, a sink that records
/// hand-offs, and a log that records entries (and, when given writers, writes its text and JSON lines there).</summary>
public sealed class IntakeHarness : IAsyncDisposable
{
    public static readonly TimeSpan Generous = TimeSpan.FromSeconds(30);

    private readonly Channel<SpooledMessage> _handedOff = Channel.CreateUnbounded<SpooledMessage>();
    public string Dir { get; } = Path.Combine(Path.GetTempPath(), "intake-tests-" + Guid.NewGuid().ToString("N"));
    public SegmentSpool Spool { get; }
    public ISpool ListenerSpool { get; }
    public MailLog Log { get; }
    public ConcurrentQueue<MailLogEntry> Entries { get; } = new();
    public SmtpListener Listener { get; }
    public SmtpListenerOptions Options { get; }
    public IdSequence Mids { get; } = new(100);

    public IntakeHarness(Func<SmtpListenerOptions, SmtpListenerOptions>? configure = null, Func<ISpool, ISpool>? wrapSpool = null,
        TextWriter? logText = null, TextWriter? logJson = null)
    {
        Log = new MailLog(logText, logJson);
        Spool = new SegmentSpool(new SegmentSpoolOptions(Dir));
        ListenerSpool = wrapSpool?.Invoke(Spool) ?? Spool;
        Log.Written += Entries.Enqueue;
        var options = new SmtpListenerOptions
        {
            Endpoints = [new IPEndPoint(IPAddress.Loopback, 0)],
            HostName = "mx.test",
            CommandTimeout = TimeSpan.FromMinutes(1),
            DataTimeout = TimeSpan.FromMinutes(1),
            ShutdownGrace = TimeSpan.FromSeconds(20),
        };
        Options = configure?.Invoke(options) ?? options;
        Listener = new SmtpListener(Options, ListenerSpool,
            (m, ct) => _handedOff.Writer.WriteAsync(m, ct), Mids, new IdSequence(), Log);
    }

    public int Port => Listener.LocalEndpoints[0].Port;

    public async Task<IntakeHarness> StartAsync()
    {
        Spool.Recover();
        await Listener.StartAsync();
        return this;
    }

    public async Task<SpooledMessage> NextHandedOffAsync() => await _handedOff.Reader.ReadAsync().AsTask().WaitAsync(Generous);

    public bool TryHandedOff(out SpooledMessage? m) => _handedOff.Reader.TryRead(out m);

    /// <param name="from">Source address (e.g. 127.0.0.2: a loopback address outside a 127.0.0.1/32 relay network).</param>
    public async Task<RawSmtpClient> ConnectAsync(bool readGreeting = true, IPAddress? from = null)
    {
        var c = await RawSmtpClient.ConnectAsync(Port, from);
        if (readGreeting)
        {
            var greeting = await c.ReadReplyAsync();
            Assert.Equal(220, greeting.Code);
        }
        return c;
    }

    /// <summary>A relay client at the point of sending message data: EHLO, MAIL (with SIZE when given), RCPT, DATA → 354.</summary>
    public async Task<RawSmtpClient> OpenDataAsync(string? size = null)
    {
        var c = await ConnectAsync();
        Assert.Equal(250, (await c.CommandAsync("EHLO client.test")).Code);
        Assert.Equal(250, (await c.CommandAsync("MAIL FROM:<a@x.test>" + (size is null ? "" : " SIZE=" + size))).Code);
        Assert.Equal(250, (await c.CommandAsync("RCPT TO:<b@y.test>")).Code);
        Assert.Equal(354, (await c.CommandAsync("DATA")).Code);
        return c;
    }

    public async Task<string> BodyTextAsync(long mid) => Encoding.UTF8.GetString((await Spool.ReadBodyAsync(mid)).Span);

    public IEnumerable<string> LogTexts => Entries.Select(e => e.Text);

    /// <summary>Log lines are written by the session after replies are flushed; wait for one instead of racing it.</summary>
    public async Task<MailLogEntry> WaitForLogAsync(Func<MailLogEntry, bool> predicate)
    {
        var deadline = DateTime.UtcNow + Generous;
        while (DateTime.UtcNow < deadline)
        {
            var hit = Entries.FirstOrDefault(predicate);
            if (hit is not null) return hit;
            await Task.Delay(20);
        }
        throw new Xunit.Sdk.XunitException("log entry not written; log was:\n" + string.Join("\n", LogTexts));
    }

    public async ValueTask DisposeAsync()
    {
        await Listener.DisposeAsync();
        await Spool.DisposeAsync();
        try { Directory.Delete(Dir, recursive: true); } catch (IOException) { }
    }
}

public sealed record SmtpReply(int Code, IReadOnlyList<string> Lines)
{
    /// <summary>First line without the code, e.g. "2.1.0 Sender &lt;a@b&gt; OK".</summary>
    public string Text => Lines[0].Length > 4 ? Lines[0][4..] : "";
    public override string ToString() => string.Join(" | ", Lines);
}

/// <summary>A byte-exact SMTP client for protocol tests: sends exactly what it is given and reads replies.</summary>
public sealed class RawSmtpClient : IAsyncDisposable
{
    private readonly TcpClient _tcp;
    private Stream _stream;
    private readonly byte[] _buf = new byte[65536];
    private int _start, _end;

    private RawSmtpClient(TcpClient tcp)
    {
        _tcp = tcp;
        _stream = tcp.GetStream();
    }

    public static async Task<RawSmtpClient> ConnectAsync(int port, IPAddress? from = null)
    {
        var tcp = new TcpClient(AddressFamily.InterNetwork);
        if (from is not null) tcp.Client.Bind(new IPEndPoint(from, 0));
        using var cts = new CancellationTokenSource(IntakeHarness.Generous);
        await tcp.ConnectAsync(IPAddress.Loopback, port, cts.Token);
        return new RawSmtpClient(tcp);
    }

    public Stream Stream => _stream;

    /// <summary>Replace the transport (after STARTTLS); buffered plaintext must be empty by then.</summary>
    public void Upgrade(Stream s)
    {
        Assert.Equal(_start, _end);
        _stream = s;
    }

    public async Task SendAsync(string raw)
    {
        using var cts = new CancellationTokenSource(IntakeHarness.Generous);
        await _stream.WriteAsync(Encoding.UTF8.GetBytes(raw), cts.Token);
        await _stream.FlushAsync(cts.Token);
    }

    public async Task<SmtpReply> CommandAsync(string line)
    {
        await SendAsync(line + "\r\n");
        return await ReadReplyAsync();
    }

    public async Task<SmtpReply> ReadReplyAsync(TimeSpan? timeout = null)
    {
        var lines = new List<string>();
        using var cts = new CancellationTokenSource(timeout ?? IntakeHarness.Generous);
        while (true)
        {
            var line = await ReadLineAsync(cts.Token) ?? throw new IOException("connection closed; got " + string.Join(" | ", lines));
            lines.Add(line);
            if (line.Length < 4 || line[3] != '-') break;
        }
        return new SmtpReply(int.Parse(lines[0][..3], System.Globalization.CultureInfo.InvariantCulture), lines);
    }

    /// <summary>True when the server closes without sending anything more.</summary>
    public async Task<bool> IsClosedAsync()
    {
        using var cts = new CancellationTokenSource(IntakeHarness.Generous);
        try { return await ReadLineAsync(cts.Token) is null; }
        catch (IOException) { return true; }
    }

    private async Task<string?> ReadLineAsync(CancellationToken ct)
    {
        while (true)
        {
            int lf = Array.IndexOf(_buf, (byte)'\n', _start, _end - _start);
            if (lf >= 0)
            {
                var s = Encoding.UTF8.GetString(_buf, _start, lf - _start).TrimEnd('\r');
                _start = lf + 1;
                return s;
            }
            if (_start > 0) { Buffer.BlockCopy(_buf, _start, _buf, 0, _end - _start); _end -= _start; _start = 0; }
            int n = await _stream.ReadAsync(_buf.AsMemory(_end), ct);
            if (n == 0) return null;
            _end += n;
        }
    }

    public async ValueTask DisposeAsync()
    {
        await _stream.DisposeAsync();
        _tcp.Dispose();
    }
}
