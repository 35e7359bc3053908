using System.Collections.Concurrent;
using System.Net;
using System.Net.Security;
using System.Net.Sockets;
using System.Security.Authentication;
using System.Security.Cryptography.X509Certificates;
using System.Text;
using MtaSts.Actors.LoadTests.Core;
using MtaSts.Actors.LoadTests.Smtp;
using MtaSts.Actors.TestInfra.Net;

namespace MtaSts.Actors.LoadTests.Receivers;

/// <summary>
/// In-process SMTP receiver. Unlike smtp-sink it knows each message: it reads X-Load-Id, so the ledger gets
/// per-message arrival times (end-to-end latency), losses and duplicates. It also records what destination
/// controls must guarantee: the peak number of concurrent sessions per destination domain and messages per
/// connection. Replies are batched until the input buffer holds no further pipelined command.
/// </summary>
public sealed class CountingReceiver(IPEndPoint endpoint, DeliveryLedger ledger, FaultPlan faults) : IReceiver
{
    private TcpListener? _listener;
    private CancellationTokenSource? _cts;
    private Task? _acceptLoop;
    private readonly ConcurrentDictionary<Task, byte> _sessions = new();
    private readonly ConcurrentDictionary<string, DomainCounter> _domains = new(StringComparer.OrdinalIgnoreCase);
    private long _sessionCount, _active, _maxActive, _messages, _rejected, _maxPerConn, _closedSessions, _closedMessages, _tlsSessions, _tlsMessages,
        _tlsResumed, _tlsFull, _tlsOffered, _tlsUnparsed, _tls13;
    private int _seed;

    public string Name => "counting receiver (in-process)";
    public IPEndPoint Endpoint { get; } = Loopback.Require(endpoint);
    public bool Running => _listener is not null;
    public long MessagesReceived => Interlocked.Read(ref _messages);

    /// <summary>Called for every arrival of one of our messages (not DSNs): load id, the client's EHLO/HELO name (which
    /// relay delivered it — the cluster test tells nodes apart by it), the destination domain of the first recipient.
    /// Set before <see cref="StartAsync"/>; runs on the session's task, so it must be cheap and thread-safe.</summary>
    public Action<long, string, string>? ArrivalObserver { get; init; }

    /// <summary>The `--tls` variant: STARTTLS is offered (RFC 3207) with this certificate (the MX host name, from the
    /// run's test CA), TLS 1.2/1.3 as a real MX would; null = plaintext only.</summary>
    public X509Certificate2? TlsCertificate
    {
        get => _tlsCertificate;
        init
        {
            _tlsCertificate = value;
            // One certificate context for every session: .NET keeps the server's TLS context (and so its session cache
            // and ticket keys) per context, so a client can resume a session made on an earlier connection.
            _tlsContext = value is null ? null : SslStreamCertificateContext.Create(value, additionalCertificates: null, offline: true);
        }
    }

    private readonly X509Certificate2? _tlsCertificate;
    private readonly SslStreamCertificateContext? _tlsContext;

    /// <summary>Highest number of sessions that carried mail for <paramref name="domain"/> at the same time (0 if none).</summary>
    public long PeakConcurrentSessions(string domain) =>
        _domains.TryGetValue(domain, out var d) ? Interlocked.Read(ref d.MaxActive) : 0;

    public Task StartAsync(CancellationToken ct)
    {
        _cts = CancellationTokenSource.CreateLinkedTokenSource(ct);
        _listener = new TcpListener(Endpoint);
        // No ReuseAddress: on Linux .NET maps it to SO_REUSEPORT too, and a second receiver (or another run) could
        // then share the port silently. Bind alone sets SO_REUSEADDR, enough for a quick restart.
        _listener.Server.ExclusiveAddressUse = true;
        _listener.Start(4096);
        _acceptLoop = AcceptLoopAsync(_listener, _cts.Token);
        return Task.CompletedTask;
    }

    private async Task AcceptLoopAsync(TcpListener listener, CancellationToken ct)
    {
        while (!ct.IsCancellationRequested)
        {
            Socket socket;
            try { socket = await listener.AcceptSocketAsync(ct).ConfigureAwait(false); }
            catch (Exception) { break; }
            socket.NoDelay = true;
            var task = Task.Run(() => SessionAsync(socket, ct), CancellationToken.None);
            _sessions.TryAdd(task, 0);
            _ = task.ContinueWith(t => _sessions.TryRemove(t, out _), TaskScheduler.Default);
        }
    }

    private async Task SessionAsync(Socket socket, CancellationToken ct)
    {
        Interlocked.Increment(ref _sessionCount);
        LoadRunner.InterlockedMax(ref _maxActive, Interlocked.Increment(ref _active));
        var rnd = new Random(Interlocked.Increment(ref _seed));
        var domainsHeld = new List<DomainCounter>(1);   // every domain this session carried: concurrency is per session
        var txDomains = new List<DomainCounter>(1);     // domains of the current transaction: message counts
        long perConn = 0;
        var helo = "";
        var tls = false;
        Stream stream = new NetworkStream(socket, ownsSocket: true);
        var reader = new SmtpLineReader(stream);
        var output = new MemoryStream(256);
        async ValueTask Reply(string line, bool flushNow = false)
        {
            output.Write(Encoding.ASCII.GetBytes(line));
            output.Write("\r\n"u8);
            // Batch replies to pipelined commands: flush only when the peer is waiting for us.
            if (flushNow || !reader.HasBufferedLine)
            {
                await stream.WriteAsync(output.GetBuffer().AsMemory(0, (int)output.Length), ct).ConfigureAwait(false);
                output.SetLength(0);
            }
        }
        try
        {
            if (faults.Banner421 > 0 && rnd.NextDouble() < faults.Banner421)
            {
                await Reply("421 4.3.2 sink.loadtest busy, try later", true).ConfigureAwait(false);
                Interlocked.Increment(ref _rejected);
                return;
            }
            await Reply("220 sink.loadtest ESMTP load-test receiver", true).ConfigureAwait(false);
            var rcpts = 0;
            var inTransaction = false;
            var nullSender = false;
            while (!ct.IsCancellationRequested)
            {
                var (ok, start, len) = await reader.ReadLineAsync(ct).ConfigureAwait(false);
                if (!ok) break;
                var line = reader.Line(start, len);
                var verb = line.Length >= 4 ? Encoding.ASCII.GetString(line[..4]).ToUpperInvariant() : "";
                switch (verb)
                {
                    case "EHLO":
                        helo = HeloArgument(line);
                        await Reply(TlsCertificate is not null && !tls
                            ? "250-sink.loadtest\r\n250-PIPELINING\r\n250-SIZE 104857600\r\n250-8BITMIME\r\n250-STARTTLS\r\n250 ENHANCEDSTATUSCODES"
                            : "250-sink.loadtest\r\n250-PIPELINING\r\n250-SIZE 104857600\r\n250-8BITMIME\r\n250 ENHANCEDSTATUSCODES").ConfigureAwait(false);
                        break;
                    case "STAR" when TlsCertificate is not null && !tls:
                        await Reply("220 2.0.0 ready to start TLS", true).ConfigureAwait(false);
                        // RFC 3207 §4.2: nothing the client sent before the handshake counts; the session starts over.
                        // The probe reads the two hellos in clear: full handshake or resumed session (SslStream cannot say).
                        var probe = new TlsHelloProbe(stream);
                        var ssl = new SslStream(probe, leaveInnerStreamOpen: false);
                        await ssl.AuthenticateAsServerAsync(new SslServerAuthenticationOptions
                        {
                            ServerCertificateContext = _tlsContext,
                            EnabledSslProtocols = SslProtocols.Tls12 | SslProtocols.Tls13,
                        }, ct).ConfigureAwait(false);
                        CountHandshake(probe.Facts);
                        stream = ssl;
                        reader = new SmtpLineReader(stream);
                        tls = true;
                        helo = "";
                        inTransaction = false;
                        Interlocked.Increment(ref _tlsSessions);
                        break;
                    case "HELO":
                        helo = HeloArgument(line);
                        await Reply("250 sink.loadtest").ConfigureAwait(false);
                        break;
                    case "MAIL":
                        if (faults.Mail451 > 0 && rnd.NextDouble() < faults.Mail451) { Interlocked.Increment(ref _rejected); await Reply("451 4.3.0 sink.loadtest MAIL deferred").ConfigureAwait(false); break; }
                        inTransaction = true; rcpts = 0; txDomains.Clear();
                        nullSender = IsNullSender(line);
                        await Reply("250 2.1.0 ok").ConfigureAwait(false);
                        break;
                    case "RCPT":
                        if (!inTransaction) { await Reply("503 5.5.1 MAIL first").ConfigureAwait(false); break; }
                        if (faults.Rcpt451 > 0 && rnd.NextDouble() < faults.Rcpt451) { Interlocked.Increment(ref _rejected); await Reply("451 4.7.1 sink.loadtest RCPT deferred").ConfigureAwait(false); break; }
                        if (faults.Rcpt550 > 0 && rnd.NextDouble() < faults.Rcpt550) { Interlocked.Increment(ref _rejected); await Reply("550 5.1.1 sink.loadtest no such user").ConfigureAwait(false); break; }
                        var counter = TrackDomain(ExtractDomain(line), domainsHeld);
                        if (!txDomains.Contains(counter)) txDomains.Add(counter);
                        rcpts++;
                        await Reply("250 2.1.5 ok").ConfigureAwait(false);
                        break;
                    case "DATA":
                        if (!inTransaction || rcpts == 0) { await Reply("554 5.5.1 no valid recipients").ConfigureAwait(false); inTransaction = false; break; }
                        await Reply("354 go ahead", true).ConfigureAwait(false);
                        var (complete, loadId, dsnFailed) = await ReadDataAsync(reader, nullSender, ct).ConfigureAwait(false);
                        if (!complete) return;
                        inTransaction = false;
                        if (faults.DataDelay > TimeSpan.Zero && rnd.NextDouble() < faults.DataDelayShare)
                            await Task.Delay(faults.DataDelay, ct).ConfigureAwait(false);
                        if (faults.Data451 > 0 && rnd.NextDouble() < faults.Data451) { Interlocked.Increment(ref _rejected); await Reply("451 4.3.0 sink.loadtest message deferred").ConfigureAwait(false); break; }
                        // Arrival is the moment we commit to 250, which is what the sender's end-to-end view ends on.
                        var now = Clock.NowUs();
                        // A null reverse-path message is a DSN: it names the bounced message in its returned headers.
                        if (nullSender) ledger.DsnArrived(loadId, dsnFailed);
                        else if (loadId is { } id)
                        {
                            ledger.Arrived(id, now);
                            ArrivalObserver?.Invoke(id, helo, txDomains.Count > 0 ? txDomains[0].Domain : "");
                        }
                        else Interlocked.Increment(ref ledger.UnknownIds);
                        foreach (var d in txDomains) Interlocked.Increment(ref d.Messages);
                        Interlocked.Increment(ref _messages);
                        if (tls) Interlocked.Increment(ref _tlsMessages);
                        perConn++;
                        await Reply("250 2.0.0 ok queued as sink").ConfigureAwait(false);
                        break;
                    case "RSET":
                        inTransaction = false;
                        await Reply("250 2.0.0 ok").ConfigureAwait(false);
                        break;
                    case "NOOP":
                        await Reply("250 2.0.0 ok").ConfigureAwait(false);
                        break;
                    case "QUIT":
                        await Reply("221 2.0.0 bye", true).ConfigureAwait(false);
                        return;
                    default:
                        await Reply("502 5.5.2 command not implemented").ConfigureAwait(false);
                        break;
                }
            }
        }
        catch (Exception) when (ct.IsCancellationRequested) { }
        catch (IOException) { }
        catch (AuthenticationException) { } // a client that gave up on our certificate: its relay reports it
        catch (SocketException) { }
        finally
        {
            await stream.DisposeAsync().ConfigureAwait(false);
            foreach (var d in domainsHeld) Interlocked.Decrement(ref d.Active);
            Interlocked.Decrement(ref _active);
            LoadRunner.InterlockedMax(ref _maxPerConn, perConn);
            Interlocked.Increment(ref _closedSessions);
            Interlocked.Add(ref _closedMessages, perConn);
        }
    }

    /// <summary>
    /// Reads DATA up to the lone dot; picks X-Load-Id out of the header section. For a DSN (<paramref name="dsn"/>:
    /// null reverse-path) the whole content is searched instead — the id is in the returned message or headers
    /// part — and <c>Failed</c> says whether any "Action: failed" field (or no Action field at all) was seen.
    /// Returns Complete = false on EOF.
    /// </summary>
    private async Task<(bool Complete, long? LoadId, bool Failed)> ReadDataAsync(SmtpLineReader reader, bool dsn, CancellationToken ct)
    {
        long? id = null;
        var inHeaders = true;
        bool sawAction = false, sawFailed = false;
        var prefix = Encoding.ASCII.GetBytes(MessageFactory.LoadIdHeader + ":");
        while (true)
        {
            var (ok, start, len) = await reader.ReadLineAsync(ct).ConfigureAwait(false);
            if (!ok) return (false, null, false);
            var line = reader.Line(start, len);
            if (len == 1 && line[0] == '.') return (true, id, !sawAction || sawFailed);
            if (!inHeaders && !dsn) continue;
            if (len == 0) { inHeaders = false; continue; }
            if (id is null && line.Length > prefix.Length && Ascii.EqualsIgnoreCase(line[..prefix.Length], prefix))
            {
                var value = Encoding.ASCII.GetString(line[prefix.Length..]);
                if (MessageFactory.TryParseLoadId(value, ledger.RunTag, out var parsed)) id = parsed;
            }
            else if (dsn && line.Length > ActionField.Length && Ascii.EqualsIgnoreCase(line[..ActionField.Length], ActionField))
            {
                sawAction = true;
                if (Encoding.ASCII.GetString(line[ActionField.Length..]).Trim().Equals("failed", StringComparison.OrdinalIgnoreCase)) sawFailed = true;
            }
        }
    }

    private static readonly byte[] ActionField = "Action:"u8.ToArray();

    /// <summary>MAIL FROM:&lt;&gt; (possibly with parameters): the null reverse-path of a DSN.</summary>
    private static bool IsNullSender(ReadOnlySpan<byte> mailLine)
    {
        var colon = mailLine.IndexOf((byte)':');
        return colon >= 0 && mailLine[(colon + 1)..].TrimStart((byte)' ').StartsWith("<>"u8);
    }

    private void CountHandshake(TlsHelloFacts? f)
    {
        if (f is null) { Interlocked.Increment(ref _tlsUnparsed); return; }
        if (f.Resumed) Interlocked.Increment(ref _tlsResumed); else Interlocked.Increment(ref _tlsFull);
        if (f.Offered) Interlocked.Increment(ref _tlsOffered);
        if (f.Version == "TLSv1.3") Interlocked.Increment(ref _tls13);
    }

    private static string HeloArgument(ReadOnlySpan<byte> line) =>
        line.Length > 5 ? Encoding.ASCII.GetString(line[5..]).Trim().ToLowerInvariant() : "";

    private static string ExtractDomain(ReadOnlySpan<byte> rcptLine)
    {
        var at = rcptLine.LastIndexOf((byte)'@');
        if (at < 0) return "(none)";
        var rest = rcptLine[(at + 1)..];
        var end = rest.IndexOf((byte)'>');
        if (end >= 0) rest = rest[..end];
        return Encoding.ASCII.GetString(rest).ToLowerInvariant();
    }

    private DomainCounter TrackDomain(string domain, List<DomainCounter> held)
    {
        var counter = _domains.GetOrAdd(domain, d => new DomainCounter(d));
        if (held.Contains(counter)) return counter;
        held.Add(counter);
        LoadRunner.InterlockedMax(ref counter.MaxActive, Interlocked.Increment(ref counter.Active));
        return counter;
    }

    public async Task StopAsync()
    {
        if (_listener is null) return;
        _cts?.Cancel();
        _listener.Stop();
        _listener = null;
        if (_acceptLoop is not null) await _acceptLoop.ConfigureAwait(false);
        await Task.WhenAny(Task.WhenAll(_sessions.Keys), Task.Delay(2000)).ConfigureAwait(false);
    }

    public ReceiverSummary Summary()
    {
        var closed = Interlocked.Read(ref _closedSessions);
        var top = _domains.Values.OrderByDescending(d => d.Messages).Take(10)
            .Select(d => new DomainSummary(d.Domain, d.Messages, d.MaxActive)).ToArray();
        var maxPerDomain = _domains.Values.Select(d => d.MaxActive).DefaultIfEmpty(0).Max();
        return new ReceiverSummary(Name, Interlocked.Read(ref _sessionCount), MessagesReceived, Interlocked.Read(ref _rejected),
            Interlocked.Read(ref _maxActive), closed == 0 ? 0 : (double)Interlocked.Read(ref _closedMessages) / closed,
            Interlocked.Read(ref _maxPerConn), _domains.Count, top,
            $"faults: {faults.Describe()}; max concurrent sessions for any one domain: {maxPerDomain}",
            Interlocked.Read(ref _tlsSessions), Interlocked.Read(ref _tlsMessages),
            new TlsHandshakeCounts(Interlocked.Read(ref _tlsFull), Interlocked.Read(ref _tlsResumed), Interlocked.Read(ref _tlsOffered),
                Interlocked.Read(ref _tls13), Interlocked.Read(ref _tlsUnparsed)));
    }

    public async ValueTask DisposeAsync() => await StopAsync().ConfigureAwait(false);

    private sealed class DomainCounter(string domain)
    {
        public readonly string Domain = domain;
        public long Active;
        public long MaxActive;
        public long Messages;
    }
}
