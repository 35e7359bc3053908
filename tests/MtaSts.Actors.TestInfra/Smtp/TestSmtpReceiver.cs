using System.Collections.Concurrent;
using System.Net;
using System.Net.Security;
using System.Net.Sockets;
using System.Security.Authentication;
using System.Security.Cryptography.X509Certificates;
using System.Text;

namespace MtaSts.Actors.TestInfra.Smtp;

/// <summary>Points of an SMTP session where a test can script the reply.</summary>
public enum SmtpPhase { Banner, Ehlo, StartTls, Mail, Rcpt, Data, DataEnd, Rset }

public sealed record TestSmtpReceiverOptions
{
    public string Hostname { get; init; } = "mx.test.invalid";
    /// <summary>Server certificate; STARTTLS is offered only when set (and <see cref="OfferStartTls"/>).</summary>
    public X509Certificate2? Certificate { get; init; }
    public bool OfferStartTls { get; init; } = true;
    public bool OfferPipelining { get; init; } = true;
    public bool OfferDsn { get; init; } = true;
    public bool OfferEightBitMime { get; init; } = true;
    public bool OfferSmtpUtf8 { get; init; }
    /// <summary>RFC 1870 SIZE value to announce (null: no SIZE extension).</summary>
    public long? MaxSize { get; init; }
    /// <summary>Protocols the server accepts in STARTTLS (None = OS default).</summary>
    public SslProtocols Protocols { get; init; } = SslProtocols.None;
    /// <summary>Address to listen on (default 127.0.0.1, ephemeral port).</summary>
    public IPAddress ListenAddress { get; init; } = IPAddress.Loopback;
    /// <summary>Port to listen on (0 = ephemeral). DANE tests listen on port 25 of a private 127.x address, because
    /// MX delivery and the TLSA owner name (_25._tcp) use port 25.</summary>
    public int ListenPort { get; init; }
    /// <summary>Certificates sent after <see cref="Certificate"/> in the TLS handshake (intermediates, e.g. the trust
    /// anchor of a DANE-TA "2 x 1/2" record). Note: .NET's SslStream drops a self-signed root from the sent chain.</summary>
    public IReadOnlyList<X509Certificate2>? CertificateChain { get; init; }
}

public sealed record ReceivedRecipient(string Address, IReadOnlyList<string> Parameters);

/// <summary>A message the receiver accepted (250 to the end of DATA).</summary>
/// <param name="Data">The message as transmitted, dot-unstuffed, without the final ".".</param>
/// <param name="Sni">Server name the client sent in the TLS ClientHello (null without TLS or SNI).</param>
public sealed record ReceivedMessage(int SessionId, string Helo, string MailFrom, IReadOnlyList<string> MailParameters,
    IReadOnlyList<ReceivedRecipient> Recipients, byte[] Data, bool Tls, SslProtocols? TlsProtocol, string? Sni,
    IPEndPoint RemoteEndPoint, bool ClientCertificatePresented)
{
    public string Text => Encoding.UTF8.GetString(Data);
}

/// <summary>What happened on one connection (for assertions on reuse, RSET, TLS).</summary>
public sealed class ReceiverSession
{
    private readonly List<string> _commands = new();
    internal ReceiverSession(int id, IPEndPoint remote) { Id = id; RemoteEndPoint = remote; }
    public int Id { get; }
    public IPEndPoint RemoteEndPoint { get; }
    public string Helo { get; internal set; } = "";
    public bool Tls { get; internal set; }
    public string? Sni { get; internal set; }
    public int MessagesAccepted { get; internal set; }
    public bool Closed { get; internal set; }
    internal int Ended;
    /// <summary>Command lines as received (verb and arguments), in order.</summary>
    public IReadOnlyList<string> Commands { get { lock (_commands) return _commands.ToArray(); } }
    internal void Add(string c) { lock (_commands) _commands.Add(c); }
}

/// <summary>
/// An in-process loopback SMTP receiver for tests (RFC 5321 server side, enough for a client under test): ephemeral
/// port, optional STARTTLS with a given certificate, PIPELINING/DSN/8BITMIME/SIZE/SMTPUTF8 announcements, scripted
/// replies per phase and argument (accept, 4xx, 5xx, 421 at banner/MAIL/RCPT/DATA — a 421 reply closes the session),
/// hanging at a phase (timeouts), and counters: concurrent sessions, total sessions, messages per connection.
/// </summary>
public sealed class TestSmtpReceiver : IAsyncDisposable
{
    private readonly TcpListener _listener;
    private readonly CancellationTokenSource _stop = new();
    private readonly Task _acceptLoop;
    private readonly ConcurrentQueue<ReceivedMessage> _messages = new();
    private readonly ConcurrentDictionary<int, ReceiverSession> _sessions = new();
    private readonly ConcurrentBag<Task> _sessionTasks = new();
    private readonly object _gate = new();
    private TaskCompletionSource _messageArrived = new(TaskCreationOptions.RunContinuationsAsynchronously);
    private int _nextSession, _active, _maxActive, _maxPerConnection, _windowMaxActive;

    public TestSmtpReceiverOptions Options { get; }

    /// <summary>Scripted replies: return a full reply ("550 5.1.1 no such user", lines separated by '\n') or null for
    /// the default. <c>argument</c> is the address for Mail/Rcpt, the EHLO name for Ehlo, "" otherwise.</summary>
    public Func<SmtpPhase, string, ReceiverSession, string?>? Script { get; set; }

    /// <summary>Never answer at this phase (the session waits until the client gives up or the receiver stops).</summary>
    public SmtpPhase? HangAt { get; set; }

    /// <summary>Wait this long before the reply to the end of DATA (a transaction that takes time, to see concurrency).</summary>
    public TimeSpan DataEndDelay { get; set; }

    /// <summary>The most sessions open at once since the previous call (the first call: since the start); the next
    /// window starts with the sessions open now. Peak concurrency per time window, without sampling.</summary>
    public int TakePeakSessions()
    {
        lock (_gate)
        {
            var peak = _windowMaxActive;
            _windowMaxActive = Volatile.Read(ref _active);
            return peak;
        }
    }

    private TestSmtpReceiver(TestSmtpReceiverOptions options)
    {
        Options = options;
        _listener = new TcpListener(options.ListenAddress, options.ListenPort);
        _listener.Start(512);
        EndPoint = (IPEndPoint)_listener.LocalEndpoint;
        _acceptLoop = Task.Run(AcceptLoopAsync);
    }

    public static TestSmtpReceiver Start(TestSmtpReceiverOptions? options = null) => new(options ?? new TestSmtpReceiverOptions());

    public IPEndPoint EndPoint { get; }
    public int Port => EndPoint.Port;
    public IPAddress Address => EndPoint.Address;

    public IReadOnlyList<ReceivedMessage> Messages => _messages.ToArray();
    public IReadOnlyList<ReceiverSession> Sessions => _sessions.Values.OrderBy(s => s.Id).ToArray();
    public int ActiveSessions => Volatile.Read(ref _active);
    public int MaxConcurrentSessions => Volatile.Read(ref _maxActive);
    public int TotalSessions => Volatile.Read(ref _nextSession);
    public int MaxMessagesPerConnection => Volatile.Read(ref _maxPerConnection);

    /// <summary>Convenience: reply <paramref name="reply"/> at <paramref name="phase"/> for every session/argument.</summary>
    public TestSmtpReceiver ReplyAt(SmtpPhase phase, string reply)
    {
        var previous = Script;
        Script = (p, a, s) => p == phase ? reply : previous?.Invoke(p, a, s);
        return this;
    }

    /// <summary>Convenience: reply <paramref name="reply"/> to RCPT TO for this address (case-insensitive).</summary>
    public TestSmtpReceiver RejectRecipient(string address, string reply = "550 5.1.1 no such user")
    {
        var previous = Script;
        Script = (p, a, s) => p == SmtpPhase.Rcpt && string.Equals(a, address, StringComparison.OrdinalIgnoreCase)
            ? reply : previous?.Invoke(p, a, s);
        return this;
    }

    /// <summary>Waits until at least <paramref name="count"/> messages were accepted (or throws TimeoutException).</summary>
    public async Task<IReadOnlyList<ReceivedMessage>> WaitForMessagesAsync(int count, TimeSpan timeout)
    {
        using var cts = new CancellationTokenSource(timeout);
        while (true)
        {
            Task wait;
            lock (_gate)
            {
                if (_messages.Count >= count) return Messages;
                wait = _messageArrived.Task;
            }
            try { await wait.WaitAsync(cts.Token).ConfigureAwait(false); }
            catch (OperationCanceledException)
            {
                throw new TimeoutException($"expected {count} messages, got {_messages.Count} within {timeout}");
            }
        }
    }

    private async Task AcceptLoopAsync()
    {
        while (!_stop.IsCancellationRequested)
        {
            TcpClient tcp;
            try { tcp = await _listener.AcceptTcpClientAsync(_stop.Token).ConfigureAwait(false); }
            catch (Exception) when (_stop.IsCancellationRequested) { return; }
            catch (SocketException) { continue; }
            var id = Interlocked.Increment(ref _nextSession);
            var session = new ReceiverSession(id, (IPEndPoint)tcp.Client.RemoteEndPoint!);
            _sessions[id] = session;
            _sessionTasks.Add(Task.Run(() => RunSessionAsync(tcp, session)));
        }
    }

    private async Task RunSessionAsync(TcpClient tcp, ReceiverSession session)
    {
        var active = Interlocked.Increment(ref _active);
        lock (_gate)
        {
            if (active > _maxActive) _maxActive = active;
            if (active > _windowMaxActive) _windowMaxActive = active;
        }
        var ct = _stop.Token;
        try
        {
            using (tcp)
            {
                Stream stream = tcp.GetStream();
                var io = new LineIo(stream);
                await new Session(this, session, io, tcp).RunAsync(ct).ConfigureAwait(false);
            }
        }
        catch (Exception e) when (e is IOException or SocketException or OperationCanceledException or ObjectDisposedException
                                      or AuthenticationException)
        {
            // client went away, TLS failed, or the receiver is stopping
        }
        finally
        {
            session.Closed = true;
            EndActive(session);
        }
    }

    /// <summary>A session stops counting as active once, when it ends or asks to QUIT (before the 221: a client that
    /// got the 221 and opens its next connection must not see the old one counted).</summary>
    private void EndActive(ReceiverSession s)
    {
        if (Interlocked.Exchange(ref s.Ended, 1) == 0) Interlocked.Decrement(ref _active);
    }

    private void Accept(ReceivedMessage m, ReceiverSession s)
    {
        lock (_gate)
        {
            _messages.Enqueue(m);
            s.MessagesAccepted++;
            if (s.MessagesAccepted > _maxPerConnection) _maxPerConnection = s.MessagesAccepted;
            var tcs = _messageArrived;
            _messageArrived = new TaskCompletionSource(TaskCreationOptions.RunContinuationsAsynchronously);
            tcs.TrySetResult();
        }
    }

    public async ValueTask DisposeAsync()
    {
        _stop.Cancel();
        _listener.Stop();
        try { await _acceptLoop.ConfigureAwait(false); } catch (Exception) { /* stopping */ }
        try { await Task.WhenAll(_sessionTasks.ToArray()).WaitAsync(TimeSpan.FromSeconds(10)).ConfigureAwait(false); }
        catch (Exception) { /* sessions end on their own */ }
        _stop.Dispose();
    }

    /// <summary>One SMTP server session.</summary>
    private sealed class Session(TestSmtpReceiver owner, ReceiverSession info, LineIo io, TcpClient tcp)
    {
        private LineIo _io = io;
        private string? _mailFrom;
        private List<string> _mailParams = new();
        private readonly List<ReceivedRecipient> _rcpts = new();
        private SslStream? _ssl;
        private bool _clientCert;

        private TestSmtpReceiverOptions O => owner.Options;
        private bool TlsAvailable => O.Certificate is not null && O.OfferStartTls && _ssl is null;

        public async Task RunAsync(CancellationToken ct)
        {
            if (!await ReplyAsync(SmtpPhase.Banner, "", $"220 {O.Hostname} ESMTP test receiver", ct).ConfigureAwait(false)) return;
            while (true)
            {
                var line = await _io.ReadLineAsync(ct).ConfigureAwait(false);
                if (line is null) return;
                info.Add(line);
                var sp = line.IndexOf(' ');
                var verb = (sp < 0 ? line : line[..sp]).ToUpperInvariant();
                var arg = sp < 0 ? "" : line[(sp + 1)..].Trim();
                switch (verb)
                {
                    case "EHLO":
                    case "HELO":
                        info.Helo = arg;
                        ResetTransaction();
                        var ext = new List<string> { $"250-{O.Hostname} hello {arg}" };
                        if (verb == "EHLO")
                        {
                            if (O.OfferPipelining) ext.Add("PIPELINING");
                            if (O.MaxSize is { } size) ext.Add($"SIZE {size}");
                            if (O.OfferEightBitMime) ext.Add("8BITMIME");
                            if (O.OfferDsn) ext.Add("DSN");
                            if (O.OfferSmtpUtf8) ext.Add("SMTPUTF8");
                            if (TlsAvailable) ext.Add("STARTTLS");
                            ext.Add("ENHANCEDSTATUSCODES");
                        }
                        var text = string.Join("\n", ext.Select((e, i) => i == 0 ? e[4..] : e));
                        if (!await ReplyAsync(SmtpPhase.Ehlo, arg, "250 " + text, ct).ConfigureAwait(false)) return;
                        break;
                    case "STARTTLS":
                        if (!TlsAvailable) { await _io.WriteAsync("502 5.5.1 STARTTLS not available", ct).ConfigureAwait(false); break; }
                        if (!await ReplyAsync(SmtpPhase.StartTls, "", "220 2.0.0 ready to start TLS", ct, out var startReply).ConfigureAwait(false)) return;
                        if (!startReply.StartsWith("220", StringComparison.Ordinal)) break;
                        _ssl = new SslStream(_io.Stream, false);
                        var sslOptions = new SslServerAuthenticationOptions
                        {
                            EnabledSslProtocols = O.Protocols,
                            ClientCertificateRequired = true,
                            RemoteCertificateValidationCallback = (_, cert, _, _) => { _clientCert = cert is not null; return true; },
                        };
                        if (O.CertificateChain is { Count: > 0 } chain)
                            sslOptions.ServerCertificateContext = SslStreamCertificateContext.Create(O.Certificate!,
                                new X509Certificate2Collection(chain.ToArray()), offline: true);
                        else
                            sslOptions.ServerCertificateSelectionCallback = (_, host) => { info.Sni = host; return O.Certificate!; };
                        await _ssl.AuthenticateAsServerAsync(sslOptions, ct).ConfigureAwait(false);
                        if (O.CertificateChain is { Count: > 0 }) info.Sni = string.IsNullOrEmpty(_ssl.TargetHostName) ? null : _ssl.TargetHostName;
                        info.Tls = true;
                        _io = new LineIo(_ssl);
                        info.Helo = "";
                        ResetTransaction(); // RFC 3207 §4.2: forget everything learnt before TLS
                        break;
                    case "MAIL":
                    {
                        if (info.Helo.Length == 0) { await _io.WriteAsync("503 5.5.1 EHLO first", ct).ConfigureAwait(false); break; }
                        var (addr, pars) = ParsePath(arg, "FROM:");
                        if (addr is null) { await _io.WriteAsync("501 5.5.4 syntax: MAIL FROM:<address>", ct).ConfigureAwait(false); break; }
                        if (!await ReplyAsync(SmtpPhase.Mail, addr, "250 2.1.0 sender ok", ct, out var r).ConfigureAwait(false)) return;
                        if (r.StartsWith('2')) { _mailFrom = addr; _mailParams = pars; _rcpts.Clear(); }
                        break;
                    }
                    case "RCPT":
                    {
                        if (_mailFrom is null) { await _io.WriteAsync("503 5.5.1 MAIL first", ct).ConfigureAwait(false); break; }
                        var (addr, pars) = ParsePath(arg, "TO:");
                        if (addr is null) { await _io.WriteAsync("501 5.5.4 syntax: RCPT TO:<address>", ct).ConfigureAwait(false); break; }
                        if (!await ReplyAsync(SmtpPhase.Rcpt, addr, "250 2.1.5 recipient ok", ct, out var r).ConfigureAwait(false)) return;
                        if (r.StartsWith('2')) _rcpts.Add(new ReceivedRecipient(addr, pars));
                        break;
                    }
                    case "DATA":
                    {
                        if (_mailFrom is null || _rcpts.Count == 0) { await _io.WriteAsync("554 5.5.1 no valid recipients", ct).ConfigureAwait(false); break; }
                        if (!await ReplyAsync(SmtpPhase.Data, "", "354 end data with <CR><LF>.<CR><LF>", ct, out var r).ConfigureAwait(false)) return;
                        if (!r.StartsWith("354", StringComparison.Ordinal)) break;
                        var data = await _io.ReadDataAsync(ct).ConfigureAwait(false);
                        if (data is null) return;
                        // Recorded before the 250 goes out, as a real MTA commits before replying: a client that saw the
                        // 250 must find the message in Messages (tests asserted right after SendAsync and raced it).
                        if (owner.DataEndDelay > TimeSpan.Zero) await Task.Delay(owner.DataEndDelay, ct).ConfigureAwait(false);
                        var end = owner.Script?.Invoke(SmtpPhase.DataEnd, "", info) ?? $"250 2.0.0 queued as {Guid.NewGuid():N}";
                        if (end.StartsWith('2') && owner.HangAt != SmtpPhase.DataEnd)
                            owner.Accept(new ReceivedMessage(info.Id, info.Helo, _mailFrom, _mailParams, _rcpts.ToArray(), data,
                                _ssl is not null, _ssl?.SslProtocol, info.Sni, info.RemoteEndPoint, _clientCert), info);
                        if (!await SendAsync(SmtpPhase.DataEnd, end, ct).ConfigureAwait(false)) return;
                        ResetTransaction();
                        break;
                    }
                    case "RSET":
                        ResetTransaction();
                        if (!await ReplyAsync(SmtpPhase.Rset, "", "250 2.0.0 ok", ct).ConfigureAwait(false)) return;
                        break;
                    case "NOOP":
                        await _io.WriteAsync("250 2.0.0 ok", ct).ConfigureAwait(false);
                        break;
                    case "QUIT":
                        owner.EndActive(info);
                        await _io.WriteAsync("221 2.0.0 bye", ct).ConfigureAwait(false);
                        return;
                    default:
                        await _io.WriteAsync("502 5.5.2 command not recognized", ct).ConfigureAwait(false);
                        break;
                }
            }
        }

        private void ResetTransaction()
        {
            _mailFrom = null;
            _mailParams = new List<string>();
            _rcpts.Clear();
        }

        private Task<bool> ReplyAsync(SmtpPhase phase, string arg, string @default, CancellationToken ct) =>
            ReplyAsync(phase, arg, @default, ct, out _);

        /// <summary>Sends the scripted (or default) reply. False: the session must end (421, or a 5xx banner).</summary>
        private Task<bool> ReplyAsync(SmtpPhase phase, string arg, string @default, CancellationToken ct, out string reply)
        {
            reply = owner.Script?.Invoke(phase, arg, info) ?? @default;
            return SendAsync(phase, reply, ct);
        }

        private async Task<bool> SendAsync(SmtpPhase phase, string reply, CancellationToken ct)
        {
            if (owner.HangAt == phase)
            {
                await Task.Delay(Timeout.Infinite, ct).ConfigureAwait(false);
            }
            var lines = reply.Split('\n');
            var code = reply.Length >= 3 ? reply[..3] : "250";
            var sb = new StringBuilder();
            for (int i = 0; i < lines.Length; i++)
            {
                var text = i == 0 && lines[0].Length >= 4 ? lines[0][4..] : i == 0 ? "" : lines[i];
                sb.Append(code).Append(i == lines.Length - 1 ? ' ' : '-').Append(text.TrimEnd('\r')).Append("\r\n");
            }
            await _io.WriteRawAsync(sb.ToString(), ct).ConfigureAwait(false);
            if (code == "421" || (phase == SmtpPhase.Banner && code[0] != '2'))
            {
                tcp.Client.Shutdown(SocketShutdown.Both); // RFC 5321 §3.8: 421 closes the channel
                return false;
            }
            return true;
        }

        private static (string? Address, List<string> Params) ParsePath(string arg, string prefix)
        {
            if (!arg.StartsWith(prefix, StringComparison.OrdinalIgnoreCase)) return (null, new());
            var rest = arg[prefix.Length..].TrimStart();
            if (!rest.StartsWith('<')) return (null, new());
            var close = rest.IndexOf('>');
            if (close < 0) return (null, new());
            var addr = rest[1..close];
            var pars = rest[(close + 1)..].Split(' ', StringSplitOptions.RemoveEmptyEntries).ToList();
            return (addr, pars);
        }
    }

    /// <summary>Buffered CRLF line reader/writer over a (possibly TLS) stream; DATA read with dot-unstuffing.</summary>
    private sealed class LineIo(Stream stream)
    {
        private readonly byte[] _buf = new byte[16 * 1024];
        private int _start, _end;
        public Stream Stream { get; } = stream;

        public async Task<string?> ReadLineAsync(CancellationToken ct)
        {
            var bytes = await ReadLineBytesAsync(ct).ConfigureAwait(false);
            return bytes is null ? null : Encoding.UTF8.GetString(bytes).TrimEnd('\r', '\n');
        }

        private async Task<byte[]?> ReadLineBytesAsync(CancellationToken ct)
        {
            using var line = new MemoryStream();
            while (true)
            {
                if (_start == _end)
                {
                    _start = 0;
                    _end = await Stream.ReadAsync(_buf, ct).ConfigureAwait(false);
                    if (_end == 0) return line.Length > 0 ? line.ToArray() : null;
                }
                var nl = Array.IndexOf(_buf, (byte)'\n', _start, _end - _start);
                if (nl < 0) { line.Write(_buf, _start, _end - _start); _start = _end; continue; }
                line.Write(_buf, _start, nl + 1 - _start);
                _start = nl + 1;
                return line.ToArray();
            }
        }

        /// <summary>RFC 5321 §4.5.2: lines until "." alone; a leading "." on other lines is removed.</summary>
        public async Task<byte[]?> ReadDataAsync(CancellationToken ct)
        {
            using var data = new MemoryStream();
            while (true)
            {
                var line = await ReadLineBytesAsync(ct).ConfigureAwait(false);
                if (line is null) return null;
                if (line is [(byte)'.', (byte)'\r', (byte)'\n'] or [(byte)'.', (byte)'\n']) return data.ToArray();
                var offset = line.Length > 0 && line[0] == (byte)'.' ? 1 : 0;
                data.Write(line, offset, line.Length - offset);
            }
        }

        public Task WriteAsync(string line, CancellationToken ct) => WriteRawAsync(line + "\r\n", ct);

        public async Task WriteRawAsync(string text, CancellationToken ct)
        {
            var bytes = Encoding.UTF8.GetBytes(text);
            await Stream.WriteAsync(bytes, ct).ConfigureAwait(false);
            await Stream.FlushAsync(ct).ConfigureAwait(false);
        }
    }
}
