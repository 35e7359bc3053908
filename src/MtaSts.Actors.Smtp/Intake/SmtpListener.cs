using System.Collections.Concurrent;
using System.Net;
using System.Net.Sockets;
using MtaSts.Actors.Logging;
using MtaSts.Actors.Smtp.Intake.Limits;
using MtaSts.Actors.Spool;

namespace MtaSts.Actors.Smtp.Intake;

/// <summary>
/// The inbound ESMTP listener: accepts connections on <see cref="SmtpListenerOptions.Endpoints"/>, runs one
/// <see cref="SmtpSession"/> per connection, stores every accepted message in the <see cref="ISpool"/> (fsync) before
/// replying 250, then hands it to the <see cref="IntakeSink"/>.
/// </summary>
/// <example>
/// <code>
/// var spool = new SegmentSpool(new SegmentSpoolOptions("/var/spool/mtasts"), log);
/// var mids = new IdSequence(); mids.EnsureAbove(spool.HighestMid);
/// foreach (var m in spool.Recover()) engine.Resume(m);              // before accepting new mail
/// await using var listener = new SmtpListener(options, spool, (m, ct) => engine.Enqueue(m, ct), mids, new IdSequence(), log);
/// await listener.StartAsync();
/// …
/// await listener.StopAsync();                                      // then dispose the spool
/// </code>
/// </example>
public sealed class SmtpListener : IAsyncDisposable
{
    private readonly SmtpListenerOptions _options;
    private readonly ISpool _spool;
    private readonly IntakeSink _sink;
    private readonly IdSequence _mids;
    private readonly IdSequence _icids;
    private readonly MailLog _log;
    private readonly IntakeShared _shared;
    private readonly List<Socket> _listeners = new();
    private readonly List<Task> _acceptLoops = new();
    private readonly ConcurrentDictionary<long, Task> _sessions = new();
    private readonly CancellationTokenSource _acceptStop = new();
    private readonly CancellationTokenSource _softStop = new();
    private readonly CancellationTokenSource _hardStop = new();
    private readonly object _gate = new();
    private int _active;
    private bool _started;
    private Task? _stopping;

    /// <param name="mids">MID source; seed it above <see cref="ISpool.HighestMid"/> (IdSequence.EnsureAbove).</param>
    /// <param name="icids">ICID source (the vendor numbers inbound connections separately from messages).</param>
    public SmtpListener(SmtpListenerOptions options, ISpool spool, IntakeSink sink, IdSequence mids, IdSequence icids, MailLog? log = null)
    {
        ArgumentNullException.ThrowIfNull(options);
        options.Validate();
        _options = options;
        _spool = spool ?? throw new ArgumentNullException(nameof(spool));
        _sink = sink ?? throw new ArgumentNullException(nameof(sink));
        _mids = mids ?? throw new ArgumentNullException(nameof(mids));
        _icids = icids ?? throw new ArgumentNullException(nameof(icids));
        _log = log ?? MailLog.Null;
        _shared = new IntakeShared(new DataBudget(options.MaxDataInFlight), new ClientLimiter(options.Time),
            new AuthThrottle(options.AuthThrottle, options.Time));
    }

    /// <summary>Message bytes received by all sessions and not yet in the spool.</summary>
    public long DataInFlight => _shared.Budget.InFlight;

    /// <summary>The bound addresses (actual ports when port 0 was configured). Valid after <see cref="StartAsync"/>.</summary>
    public IReadOnlyList<IPEndPoint> LocalEndpoints { get; private set; } = [];

    /// <summary>Sessions currently connected (including ones being refused).</summary>
    public int ActiveSessions => Volatile.Read(ref _active);

    /// <summary>Binds every endpoint and starts accepting. Throws <see cref="ListenerBindException"/> (and binds
    /// nothing) if any endpoint fails, e.g. because another process already listens on the port.</summary>
    public Task StartAsync(CancellationToken ct = default)
    {
        ct.ThrowIfCancellationRequested();
        lock (_gate)
        {
            if (_started) throw new InvalidOperationException("listener already started");
            _started = true;
            var bound = new List<IPEndPoint>();
            try
            {
                foreach (var ep in _options.Endpoints)
                {
                    var s = new Socket(ep.AddressFamily, SocketType.Stream, ProtocolType.Tcp);
                    _listeners.Add(s);
                    if (ep.AddressFamily == AddressFamily.InterNetworkV6) s.DualMode = ep.Address.Equals(IPAddress.IPv6Any);
                    // Exclusive: a second gateway on the same port must fail, not share it. ReuseAddress must not be
                    // set: on Linux .NET turns it into SO_REUSEADDR + SO_REUSEPORT, and SO_REUSEPORT lets a second
                    // process bind the port and take half of the connections. Without it .NET still sets SO_REUSEADDR
                    // alone in Bind (a restart is not blocked by TIME_WAIT connections), which never admits two
                    // listeners on Linux. ExclusiveAddressUse clears both flags on Unix and stops port theft on Windows.
                    s.ExclusiveAddressUse = true;
                    try
                    {
                        s.Bind(ep);
                        s.Listen(512);
                    }
                    catch (SocketException ex)
                    {
                        throw new ListenerBindException(ep, ex);
                    }
                    bound.Add((IPEndPoint)s.LocalEndPoint!);
                }
            }
            catch
            {
                foreach (var s in _listeners) s.Dispose();
                _listeners.Clear();
                throw;
            }
            LocalEndpoints = bound;
            foreach (var s in _listeners) _acceptLoops.Add(AcceptLoopAsync(s));
        }
        foreach (var ep in LocalEndpoints)
            _log.Info("smtp_listen", $"SMTP listener on {ep}", ("endpoint", ep.ToString()));
        return Task.CompletedTask;
    }

    private async Task AcceptLoopAsync(Socket listener)
    {
        var stop = _acceptStop.Token;
        while (!stop.IsCancellationRequested)
        {
            Socket client;
            try
            {
                client = await listener.AcceptAsync(stop).ConfigureAwait(false);
            }
            catch (Exception ex) when (ex is OperationCanceledException or ObjectDisposedException && stop.IsCancellationRequested)
            {
                return;
            }
            catch (SocketException ex)
            {
                if (stop.IsCancellationRequested) return;
                // EMFILE, ECONNABORTED …: keep serving; back off briefly so a persistent error does not spin.
                _log.Warning("smtp_accept_failed", $"SMTP accept failed: {ex.Message}", ("error", ex.SocketErrorCode.ToString()));
                try { await Task.Delay(TimeSpan.FromMilliseconds(100), stop).ConfigureAwait(false); }
                catch (OperationCanceledException) { return; }
                continue;
            }
            client.NoDelay = true;
            long icid = _icids.Next();
            var admission = Admit(client);
            _sessions[icid] = RunSessionAsync(client, icid, admission);
        }
    }

    /// <summary>The global session cap, then the client's own (Postfix anvil): a flood from one address takes at most
    /// its per-client share and never locks out the other clients.</summary>
    private SessionAdmission Admit(Socket client)
    {
        // The node itself first (not a cluster member, actor system gone): no mail at all, whoever the client is.
        bool overCap = Interlocked.Increment(ref _active) > _options.MaxConcurrentSessions;
        if (_options.Admission?.Invoke() is { } notAvailable)
            return SessionAdmission.Refused(SmtpSession.NotAvailableReply(_options.HostName, notAvailable), notAvailable, log: false, gate: true);
        if (overCap)
            return SessionAdmission.Refused($"421 4.3.2 {_options.HostName} Too many concurrent sessions, try again later",
                $"too many concurrent sessions ({_options.MaxConcurrentSessions})", log: true);
        var remote = SmtpSession.ClientAddress(client);
        var limits = _options.RelayNetworks.Any(n => n.Contains(remote)) ? _options.RelayClientLimits : _options.ClientLimits;
        var admission = _shared.Limiter.TryOpenSession(remote, limits);
        if (admission.Admitted) return SessionAdmission.Admitted(admission.Lease, limits);
        // Postfix: "421 4.7.0 host Error: too many connections from addr"; one log line per client per minute.
        return SessionAdmission.Refused($"421 4.7.0 {_options.HostName} Error: {admission.Refusal.Describe()}",
            admission.Refusal.Describe(), admission.Refusal.FirstInWindow);
    }

    private async Task RunSessionAsync(Socket client, long icid, SessionAdmission admission)
    {
        await Task.Yield(); // never run a session on the accept loop
        try
        {
            var session = new SmtpSession(_options, _spool, _sink, _mids, _shared, _log, client, icid, _softStop.Token, _hardStop.Token);
            await session.RunAsync(admission).ConfigureAwait(false);
        }
        catch (Exception ex)
        {
            _log.Critical("icid_failed", $"ICID {icid} session failed: {ex.GetType().Name}: {ex.Message}", ("icid", icid));
            client.Dispose();
        }
        finally
        {
            admission.Lease?.Dispose();
            Interlocked.Decrement(ref _active);
            _sessions.TryRemove(icid, out _);
        }
    }

    /// <summary>
    /// Graceful stop: stops accepting; idle sessions get 421 4.3.2 at once; sessions inside a mail transaction may
    /// finish it (including the spool write and 250) within <see cref="SmtpListenerOptions.ShutdownGrace"/> and then
    /// get 421; when the grace runs out, or <paramref name="ct"/> is cancelled, the rest are cut with 421.
    /// </summary>
    public Task StopAsync(CancellationToken ct = default)
    {
        lock (_gate) _stopping ??= StopCoreAsync(ct);
        return _stopping;
    }

    private async Task StopCoreAsync(CancellationToken ct)
    {
        await _acceptStop.CancelAsync().ConfigureAwait(false);
        foreach (var s in _listeners) s.Dispose();
        await Task.WhenAll(_acceptLoops).ConfigureAwait(false);
        await _softStop.CancelAsync().ConfigureAwait(false);
        var all = Task.WhenAll(_sessions.Values);
        try
        {
            await all.WaitAsync(_options.ShutdownGrace, ct).ConfigureAwait(false);
        }
        catch (Exception ex) when (ex is TimeoutException or OperationCanceledException)
        {
            _log.Warning("smtp_stop_forced", $"SMTP listener: {_sessions.Count} sessions still busy after the shutdown grace; closing them");
        }
        await _hardStop.CancelAsync().ConfigureAwait(false);
        await Task.WhenAll(_sessions.Values).ConfigureAwait(false);
        _log.Info("smtp_stopped", "SMTP listener stopped");
    }

    public async ValueTask DisposeAsync()
    {
        if (_started) await StopAsync().ConfigureAwait(false);
        _acceptStop.Dispose();
        _softStop.Dispose();
        _hardStop.Dispose();
    }
}
