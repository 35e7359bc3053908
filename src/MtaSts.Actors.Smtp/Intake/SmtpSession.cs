using System.Buffers;
using System.Globalization;
using System.Net;
using System.Net.Security;
using System.Net.Sockets;
using System.Runtime.InteropServices;
using System.Security.Authentication;
using System.Security.Cryptography;
using System.Security.Cryptography.X509Certificates;
using System.Text;
using MtaSts.Actors.Logging;
using MtaSts.Actors.Smtp.Batv;
using MtaSts.Actors.Smtp.Intake.Limits;
using MtaSts.Actors.Spool;

namespace MtaSts.Actors.Smtp.Intake;

/// <summary>
/// One inbound ESMTP connection (RFC 5321 server side with SIZE, PIPELINING, 8BITMIME, ENHANCEDSTATUSCODES, DSN,
/// STARTTLS, SMTPUTF8 and AUTH PLAIN/LOGIN). Commands are handled strictly in order; replies are buffered and flushed
/// only when no further complete command is buffered, at 354, and before any wait for a client answer (RFC 2920 §3).
/// </summary>
/// <remarks>
/// Line endings (RFC 5321 §2.3.8) and SMTP smuggling: the end of DATA is ONLY &lt;CRLF&gt;.&lt;CRLF&gt; (§4.1.1.4), and
/// the stored body contains CRLF line endings only and no NUL, so no receiver downstream can find another end of
/// data in it. Bare LF / bare CR / NUL are refused or normalised per <see cref="BareLineEndingPolicy"/>; a "." line
/// next to a bare LF (how a bare-LF client ends DATA) gets a 550 at once instead of a hang until the data timeout.
/// Enhanced status codes (RFC 2034 §3) are on every reply except the greeting and the HELO/EHLO replies, where that
/// RFC excludes them.
/// </remarks>
internal sealed class SmtpSession
{
    /// <summary>Extra octets allowed on MAIL/RCPT lines for parameters: SIZE +26 (RFC 1870 §3), ENVID 100 and
    /// ORCPT 500 (RFC 3461 §4), AUTH= 500 (RFC 4954 §5), SMTPUTF8 +10 (RFC 6531 §3.4).</summary>
    internal const int ParameterAllowance = 1024;
    private const int AuthLineLimit = 12288; // RFC 4954 §4
    private static readonly UTF8Encoding StrictUtf8 = new(false, true);
    private static readonly byte[] CrLf = "\r\n"u8.ToArray();

    private readonly SmtpListenerOptions _o;
    private readonly ISpool _spool;
    private readonly IntakeSink _sink;
    private readonly IdSequence _mids;
    private readonly DataBudget _budget;
    private readonly IntakeShared _shared;
    private ClientLimits _limits = ClientLimits.Default;
    private readonly long _startedAt = Environment.TickCount64;
    private int _nonTransactionCommands;
    private int _errorsDelayed; // errors already tarpitted
    private TimeSpan _replyDelay; // tarpit / AUTH failure delay, applied before the next flush
    private readonly MailLog _log;
    private readonly Socket _socket;
    private readonly long _icid;
    private readonly CancellationToken _softStop;
    private readonly CancellationToken _hardStop;
    private readonly IPAddress _remote;
    private readonly IPEndPoint _local;
    private readonly bool _inRelayNetwork;

    private Stream _stream;
    private SmtpLineReader _reader;
    private readonly MemoryStream _out = new();

    private string? _helo;
    private bool _esmtp;
    private bool _tls;
    private string? _authUser;
    private Transaction? _tx;
    private int _errors;

    private sealed class Transaction(long mid, string from)
    {
        public long Mid { get; } = mid;
        public string From { get; } = from;
        public long? DeclaredSize { get; set; }
        public bool EightBitMime { get; set; }
        public bool SmtpUtf8 { get; set; }
        public DsnRet Ret { get; set; }
        public string? EnvId { get; set; }
        public List<Recipient> Recipients { get; } = new();
    }

    private enum ReadOutcome { Line, Timeout, Shutdown }

    public SmtpSession(SmtpListenerOptions options, ISpool spool, IntakeSink sink, IdSequence mids, IntakeShared shared, MailLog log,
        Socket socket, long icid, CancellationToken softStop, CancellationToken hardStop)
    {
        _shared = shared;
        _budget = shared.Budget;
        _o = options;
        _spool = spool;
        _sink = sink;
        _mids = mids;
        _log = log;
        _socket = socket;
        _icid = icid;
        _softStop = softStop;
        _hardStop = hardStop;
        _remote = ClientAddress(socket);
        var local = (IPEndPoint)socket.LocalEndPoint!;
        _local = new IPEndPoint(local.Address.IsIPv4MappedToIPv6 ? local.Address.MapToIPv4() : local.Address, local.Port);
        _inRelayNetwork = options.RelayNetworks.Any(n => n.Contains(_remote));
        _stream = new NetworkStream(socket, ownsSocket: true);
        _reader = new SmtpLineReader(_stream);
    }

    /// <summary>The client's address, IPv4-mapped IPv6 as IPv4.</summary>
    internal static IPAddress ClientAddress(Socket socket)
    {
        var remote = ((IPEndPoint)socket.RemoteEndPoint!).Address;
        return remote.IsIPv4MappedToIPv6 ? remote.MapToIPv4() : remote;
    }

    private bool MayRelay => _inRelayNetwork || _authUser is not null;
    private string Host => _o.HostName;

    public async Task RunAsync(SessionAdmission admission)
    {
        // A refused flood is logged once per client per minute, not once per connection; a gate refusal is logged
        // by its own line (LogNotAvailable), rate-limited per reason.
        bool quiet = admission.Refusal is not null && (!admission.LogRefusal || admission.Gate);
        var level = quiet ? MailLogLevel.Debug : MailLogLevel.Info;
        _log.Write(level, "icid_new", $"New SMTP ICID {_icid} interface {_local.Address} address {_remote} port {_local.Port}",
            ("icid", _icid), ("interface", _local.Address.ToString()), ("address", _remote.ToString()), ("port", _local.Port));
        try
        {
            if (admission.Refusal is not null && admission.Gate)
            {
                LogNotAvailable("at connect", admission.Reason!, mid: null);
                await GoodbyeAsync(admission.Refusal).ConfigureAwait(false);
                return;
            }
            if (admission.Refusal is not null)
            {
                _log.Write(quiet ? MailLogLevel.Debug : MailLogLevel.Warning, "icid_refused",
                    $"ICID {_icid} refused: {admission.Reason}" + (quiet ? "" : " (further refusals of this client are logged at debug level for a minute)"),
                    ("icid", _icid), ("address", _remote.ToString()), ("reason", admission.Reason));
                await GoodbyeAsync(admission.Refusal).ConfigureAwait(false);
                return;
            }
            _limits = admission.Limits ?? _limits;
            Reply($"220 {Host} {_o.Banner}");
            await CommandLoopAsync().ConfigureAwait(false);
        }
        catch (Exception ex) when (ex is IOException or SocketException or ObjectDisposedException or OperationCanceledException)
        {
            _log.Debug("icid_lost", $"ICID {_icid} connection lost: {ex.Message}", ("icid", _icid));
        }
        finally
        {
            try { _socket.Shutdown(SocketShutdown.Both); } catch (Exception ex) when (ex is SocketException or ObjectDisposedException) { }
            await _stream.DisposeAsync().ConfigureAwait(false);
            _socket.Dispose();
            _log.Write(level, "icid_close", $"ICID {_icid} close", ("icid", _icid));
        }
    }

    private async Task CommandLoopAsync()
    {
        while (true)
        {
            // RFC 2920 §3.1: replies may wait while more pipelined commands are already here; never block on a read
            // with replies pending.
            if (_replyDelay > TimeSpan.Zero)
            {
                // Tarpit (Postfix smtpd_error_sleep_time) and AUTH failure delay: the reply waits, the client waits.
                var delay = _replyDelay;
                _replyDelay = TimeSpan.Zero;
                try { await Task.Delay(delay, _o.Time, _softStop).ConfigureAwait(false); }
                catch (OperationCanceledException) { }
            }
            if (!_reader.HasBufferedLine) await FlushAsync().ConfigureAwait(false);
            if (_softStop.IsCancellationRequested && _tx is null)
            {
                await GoodbyeAsync($"421 4.3.2 {Host} Service shutting down, closing transmission channel").ConfigureAwait(false);
                return;
            }
            // An idle session is interrupted by a graceful stop; one inside a transaction only by the hard stop.
            var stop = _tx is null ? _softStop : _hardStop;
            int limit = Math.Max(_o.MaxCommandLineLength + ParameterAllowance, _o.AuthConfigured ? AuthLineLimit : 0);
            // The session lifetime cap ends an idle session too: the read waits at most until the cap.
            var lifeLeft = _limits.MaxSessionDuration - TimeSpan.FromMilliseconds(Environment.TickCount64 - _startedAt);
            if (_tx is null && lifeLeft <= TimeSpan.Zero)
            {
                LifetimeExceeded();
                await GoodbyeAsync($"421 4.7.0 {Host} Error: session time limit exceeded, closing transmission channel").ConfigureAwait(false);
                return;
            }
            using var deadline = new CancellationTokenSource(_tx is null && lifeLeft < _o.CommandTimeout ? lifeLeft : _o.CommandTimeout);
            var (line, outcome) = await ReadLineAsync(limit, deadline.Token, stop).ConfigureAwait(false);
            if (outcome == ReadOutcome.Timeout && _tx is null && lifeLeft < _o.CommandTimeout)
            {
                LifetimeExceeded();
                await GoodbyeAsync($"421 4.7.0 {Host} Error: session time limit exceeded, closing transmission channel").ConfigureAwait(false);
                return;
            }
            if (outcome == ReadOutcome.Timeout)
            {
                _log.Info("icid_timeout", $"ICID {_icid} timeout waiting for a command", ("icid", _icid));
                await GoodbyeAsync($"421 4.4.2 {Host} Error: timeout exceeded").ConfigureAwait(false);
                return;
            }
            if (outcome == ReadOutcome.Shutdown)
            {
                await GoodbyeAsync($"421 4.3.2 {Host} Service shutting down, closing transmission channel").ConfigureAwait(false);
                return;
            }
            if (line.Status == SmtpLineStatus.Eof) return;
            if (line.BareLf && _o.BareLineEndings == BareLineEndingPolicy.Reject)
            {
                // Postfix smtpd_forbid_bare_newline: a client that ends commands in bare LF would send DATA the same way.
                _log.Info("icid_bare_lf", $"ICID {_icid} bare LF in a command from {_remote}; closing (bare-line-endings = reject)",
                    ("icid", _icid), ("address", _remote.ToString()));
                await GoodbyeAsync($"521 5.5.2 {Host} Error: bare <LF> received, commands must end with <CR><LF>").ConfigureAwait(false);
                return;
            }
            if (line.Status == SmtpLineStatus.TooLong)
            {
                Error("500 5.5.2 Line too long");
            }
            else if (!await HandleCommandAsync(line).ConfigureAwait(false))
            {
                return;
            }
            if (_errors > _errorsDelayed && _replyDelay == TimeSpan.Zero) _replyDelay = _limits.ErrorReplyDelay(_errors);
            _errorsDelayed = _errors;
            if (_errors > _o.MaxErrors)
            {
                _log.Info("icid_too_many_errors", $"ICID {_icid} too many errors ({_errors})", ("icid", _icid));
                await GoodbyeAsync($"421 4.7.0 {Host} Too many errors, closing transmission channel").ConfigureAwait(false);
                return;
            }
        }
    }

    private void LifetimeExceeded() =>
        _log.Info("icid_lifetime", $"ICID {_icid} session time limit {_limits.MaxSessionDuration} exceeded; closing",
            ("icid", _icid), ("address", _remote.ToString()));

    /// <returns>false when the session must end.</returns>
    private async Task<bool> HandleCommandAsync(SmtpLine line)
    {
        string text;
        try { text = StrictUtf8.GetString(line.Content.Span); }
        catch (DecoderFallbackException) { Error("500 5.5.2 Invalid UTF-8 in command"); return true; }
        if (text.Any(c => c < 32 && c != '\t' || c == 127)) { Error("500 5.5.2 Control characters in command"); return true; }

        int sp = text.IndexOf(' ');
        string verb = (sp < 0 ? text : text[..sp]).ToUpperInvariant();
        string arg = sp < 0 ? "" : text[(sp + 1)..].Trim(' ', '\t');
        int octets = line.Content.Length + 2;
        int allowed = verb switch
        {
            "MAIL" or "RCPT" => _o.MaxCommandLineLength + ParameterAllowance,
            "AUTH" => AuthLineLimit,
            _ => _o.MaxCommandLineLength,
        };
        if (octets > allowed) { Error("500 5.5.2 Line too long"); return true; }

        if (verb is "NOOP" or "RSET" or "VRFY" or "HELP" && _limits.MaxNonTransactionCommands > 0
            && ++_nonTransactionCommands > _limits.MaxNonTransactionCommands)
        {
            // Postfix smtpd_junk_command_limit: past the limit each such command counts as an error (tarpit, then
            // the error limit closes the session); the count restarts after each accepted message.
            _errors++;
            if (_nonTransactionCommands == _limits.MaxNonTransactionCommands + 1)
                _log.Info("icid_junk_limit", $"ICID {_icid} more than {_limits.MaxNonTransactionCommands} NOOP/RSET/VRFY/HELP commands from {_remote}",
                    ("icid", _icid), ("address", _remote.ToString()));
        }
        switch (verb)
        {
            case "EHLO": Hello(arg, esmtp: true); return true;
            case "HELO": Hello(arg, esmtp: false); return true;
            case "MAIL":
                if (NotAvailable() is { } why)
                {
                    LogNotAvailable("at MAIL", why, mid: null);
                    await GoodbyeAsync(NotAvailableReply(Host, why)).ConfigureAwait(false);
                    return false;
                }
                Mail(arg);
                return true;
            case "RCPT": Rcpt(arg); return true;
            case "DATA": return await DataAsync(arg).ConfigureAwait(false);
            case "RSET":
                if (arg.Length > 0) { Error("501 5.5.4 Syntax: RSET (no parameters)"); return true; }
                _tx = null;
                Reply("250 2.0.0 Ok");
                return true;
            case "NOOP": Reply("250 2.0.0 Ok"); return true;
            case "QUIT":
                Reply($"221 2.0.0 {Host} Service closing transmission channel");
                await FlushAsync().ConfigureAwait(false);
                return false;
            case "VRFY":
                if (arg.Length == 0) { Error("501 5.5.4 Syntax: VRFY <address>"); return true; }
                // RFC 5321 §3.5.3: 252 when we will not verify but will accept mail for it.
                Reply("252 2.5.0 Cannot VRFY user, but will accept message and attempt delivery");
                return true;
            case "HELP":
                Reply("214 2.0.0 Commands: EHLO HELO MAIL RCPT DATA RSET NOOP QUIT VRFY HELP" +
                      (_o.Certificate is not null ? " STARTTLS" : "") + (_o.AuthConfigured ? " AUTH" : ""));
                return true;
            case "STARTTLS": return await StartTlsAsync(arg).ConfigureAwait(false);
            case "AUTH": return await AuthAsync(arg).ConfigureAwait(false);
            case "EXPN":
            case "BDAT":
            case "TURN":
            case "ETRN":
            case "ATRN":
            case "SEND":
            case "SOML":
            case "SAML":
                Error("502 5.5.1 Command not implemented");
                return true;
            case "":
                Error("500 5.5.2 Syntax error, command unrecognized");
                return true;
            default:
                Error("500 5.5.1 Syntax error, command unrecognized");
                return true;
        }
    }

    // ------------------------------------------------------------------ EHLO / HELO

    private void Hello(string arg, bool esmtp)
    {
        if (arg.Length == 0 || arg.Contains(' '))
        {
            Error(esmtp ? "501 5.5.4 Syntax: EHLO hostname" : "501 5.5.4 Syntax: HELO hostname");
            return;
        }
        _helo = arg;
        _esmtp = esmtp;
        _tx = null; // RFC 5321 §4.1.4: EHLO/HELO also reset the transaction
        if (!esmtp)
        {
            Reply($"250 {Host}");
            return;
        }
        var lines = new List<string>
        {
            $"{Host} Hello {arg} [{_remote}]",
            $"SIZE {_o.MaxMessageSize.ToString(CultureInfo.InvariantCulture)}",
            "PIPELINING",
            "8BITMIME",
            "ENHANCEDSTATUSCODES",
            "DSN",
            "SMTPUTF8",
        };
        if (_o.Certificate is not null && !_tls) lines.Add("STARTTLS");
        if (_o.AuthConfigured && _tls && _authUser is null) lines.Add("AUTH PLAIN LOGIN"); // RFC 4954 §4 + RFC 3207 §6
        lines.Add("HELP");
        for (int i = 0; i < lines.Count; i++)
            Reply((i == lines.Count - 1 ? "250 " : "250-") + lines[i]);
    }

    // ------------------------------------------------------------------ MAIL

    private void Mail(string arg)
    {
        if (_helo is null) { Error("503 5.5.1 Send HELO/EHLO first"); return; }
        if (_tx is not null) { Error("503 5.5.1 Nested MAIL command"); return; }
        PathArgument p;
        try { p = SmtpSyntax.ParsePathArgument(arg, "FROM:", "501 5.5.4 Syntax: MAIL FROM:<address>", "501 5.1.7 Bad sender address syntax"); }
        catch (SmtpSyntaxException e) { Error(e.Reply); return; }
        // A bounce (null reverse-path) may come from anyone when bounce verification is on: its recipients are checked
        // at RCPT (a valid tag for one of our domains, or the usual relay rule).
        var verifiedBounce = p.IsNull && _o.BounceVerification?.Invoke() is not null;
        if (!MayRelay && _o.AuthConfigured && _o.RequireAuthForNonRelay && !verifiedBounce)
        {
            Error("530 5.7.0 Authentication required");
            return;
        }
        if (!_esmtp && p.Parameters.Count > 0) { Error("555 5.5.4 MAIL parameters not recognized (use EHLO)"); return; }

        long? size = null;
        bool eightBit = false, utf8 = false;
        var ret = DsnRet.Unspecified;
        string? envId = null;
        try
        {
            foreach (var (key, value) in p.Parameters)
            {
                switch (key)
                {
                    case "SIZE": // RFC 1870 §3
                        if (value is null || value.Length > 20 || !value.All(char.IsAsciiDigit) ||
                            !long.TryParse(value, NumberStyles.None, CultureInfo.InvariantCulture, out var n))
                            throw new SmtpSyntaxException("501 5.5.4 Invalid SIZE value");
                        if (n > _o.MaxMessageSize) throw new SmtpSyntaxException("552 5.3.4 Message size exceeds fixed maximum message size");
                        // RFC 1870 §6.1: 452 when the size would fit the limit but not the storage available now.
                        if (!_budget.CouldFit(n)) throw new SmtpSyntaxException("452 4.3.1 Insufficient system storage, try again later");
                        size = n;
                        break;
                    case "BODY": // RFC 6152 §2
                        if (string.Equals(value, "7BIT", StringComparison.OrdinalIgnoreCase)) eightBit = false;
                        else if (string.Equals(value, "8BITMIME", StringComparison.OrdinalIgnoreCase)) eightBit = true;
                        else throw new SmtpSyntaxException("501 5.5.4 Invalid BODY value (7BIT or 8BITMIME)");
                        break;
                    case "RET": // RFC 3461 §4.3
                        if (string.Equals(value, "FULL", StringComparison.OrdinalIgnoreCase)) ret = DsnRet.Full;
                        else if (string.Equals(value, "HDRS", StringComparison.OrdinalIgnoreCase)) ret = DsnRet.Headers;
                        else throw new SmtpSyntaxException("501 5.5.4 Invalid RET value (FULL or HDRS)");
                        break;
                    case "ENVID": // RFC 3461 §4.4: xtext, at most 100 characters
                        if (value is null || value.Length > 100) throw new SmtpSyntaxException("501 5.5.4 Invalid ENVID value");
                        envId = SmtpSyntax.DecodeXtext(value, allowUtf8: false);
                        break;
                    case "SMTPUTF8": // RFC 6531 §3.4
                        if (value is not null) throw new SmtpSyntaxException("501 5.5.4 SMTPUTF8 takes no value");
                        utf8 = true;
                        break;
                    case "AUTH": // RFC 4954 §5: accepted and not relied on
                        if (value is null) throw new SmtpSyntaxException("501 5.5.4 Invalid AUTH value");
                        break;
                    default:
                        throw new SmtpSyntaxException($"555 5.5.4 Unsupported parameter {key}");
                }
            }
        }
        catch (SmtpSyntaxException e) { Error(e.Reply); return; }
        if (p.NonAscii && !utf8) { Error("553 5.6.7 Non-ASCII address requires SMTPUTF8"); return; }
        if (!_shared.Limiter.TryStartMessage(_remote, _limits, out var refusal))
        {
            // Postfix anvil smtpd_client_message_rate_limit: "450 4.7.1 Error: too much mail from …"; logged once a minute.
            if (refusal.FirstInWindow)
                _log.Warning("icid_message_rate", $"ICID {_icid} {refusal.Describe()}; further MAIL refused for the rest of the minute",
                    ("icid", _icid), ("address", _remote.ToString()), ("limit", refusal.Limit));
            Error($"450 4.7.1 Error: too much mail from {refusal.Client}, try again later");
            return;
        }

        var tx = new Transaction(_mids.Next(), p.Address)
        {
            DeclaredSize = size, EightBitMime = eightBit, SmtpUtf8 = utf8, Ret = ret, EnvId = envId,
        };
        _tx = tx;
        _log.Info("mid_start", $"Start MID {tx.Mid} ICID {_icid}", ("mid", tx.Mid), ("icid", _icid));
        _log.Info("mid_from", $"MID {tx.Mid} ICID {_icid} From: <{tx.From}>", ("mid", tx.Mid), ("icid", _icid), ("from", tx.From));
        Reply($"250 2.1.0 Sender <{tx.From}> OK");
    }

    // ------------------------------------------------------------------ RCPT

    private void Rcpt(string arg)
    {
        if (_tx is null) { Error("503 5.5.1 Need MAIL command"); return; }
        PathArgument p;
        try { p = SmtpSyntax.ParsePathArgument(arg, "TO:", "501 5.5.4 Syntax: RCPT TO:<address>", "501 5.1.3 Bad recipient address syntax"); }
        catch (SmtpSyntaxException e) { Error(e.Reply); return; }
        if (p.IsNull) { Error("501 5.1.3 Bad recipient address syntax"); return; }
        if (!_esmtp && p.Parameters.Count > 0) { Error("555 5.5.4 RCPT parameters not recognized (use EHLO)"); return; }

        var notify = DsnNotify.Default;
        string? orcpt = null;
        try
        {
            foreach (var (key, value) in p.Parameters)
            {
                switch (key)
                {
                    case "NOTIFY": // RFC 3461 §4.1: NEVER, or any of SUCCESS, FAILURE, DELAY
                        notify = ParseNotify(value);
                        break;
                    case "ORCPT": // RFC 3461 §4.2: addr-type ";" xtext, at most 500 characters
                    {
                        int semi = value?.IndexOf(';') ?? -1;
                        if (value is null || value.Length > 500 || semi <= 0)
                            throw new SmtpSyntaxException("501 5.5.4 Invalid ORCPT value");
                        var type = value[..semi];
                        if (!type.All(c => char.IsAsciiLetterOrDigit(c) || c == '-'))
                            throw new SmtpSyntaxException("501 5.5.4 Invalid ORCPT address type");
                        bool utf8Type = type.Equals("utf-8", StringComparison.OrdinalIgnoreCase); // RFC 6533 §3
                        orcpt = type + ";" + SmtpSyntax.DecodeXtext(value[(semi + 1)..], allowUtf8: utf8Type || _tx.SmtpUtf8);
                        break;
                    }
                    default:
                        throw new SmtpSyntaxException($"555 5.5.4 Unsupported parameter {key}");
                }
            }
        }
        catch (SmtpSyntaxException e) { Error(e.Reply); return; }
        if (p.NonAscii && !_tx.SmtpUtf8) { Error("553 5.6.7 Non-ASCII address requires SMTPUTF8"); return; }

        var address = p.Address;
        var bounceToUs = false;
        if (_tx.From.Length == 0 && _o.BounceVerification?.Invoke() is { } tagger && address.LastIndexOf('@') is var at and > 0
            && tagger.IsOurDomain(address[(at + 1)..]))
        {
            // Bounce verification: a bounce to one of our tagged sender domains must carry a valid prvs tag (forged
            // bounces name addresses that sent nothing); the tag is removed before the bounce is relayed.
            var check = tagger.Verify(address, _o.Time.GetUtcNow());
            if (!check.IsValid)
            {
                _log.Info("icid_bounce_refused", $"ICID {_icid} MID {_tx.Mid} Bounce verification failed address {_remote} To: <{address}>: {check.Reason}",
                    ("icid", _icid), ("mid", _tx.Mid), ("address", _remote.ToString()), ("to", address), ("reason", check.Reason));
                Error($"550 5.7.1 Bounce verification failed: {check.Reason}");
                return;
            }
            _log.Info("mid_bounce_verified", $"MID {_tx.Mid} ICID {_icid} Bounce verification passed To: <{address}> key {check.KeyId}: relayed to <{check.Address}>",
                ("mid", _tx.Mid), ("icid", _icid), ("to", address), ("key", check.KeyId), ("relay_to", check.Address));
            address = check.Address;
            bounceToUs = true;
        }

        if (!MayRelay && !bounceToUs)
        {
            // Every recipient of an outbound gateway is remote: an unauthorised client may not relay at all.
            _log.Info("icid_relay_denied", $"ICID {_icid} Relaying denied address {_remote} To: <{p.Address}>",
                ("icid", _icid), ("mid", _tx.Mid), ("address", _remote.ToString()), ("to", p.Address));
            Error(_o.AuthConfigured ? "530 5.7.0 Authentication required" : "554 5.7.1 Relaying denied");
            return;
        }
        if (_tx.Recipients.Count >= _o.MaxRecipients)
        {
            // RFC 5321 §4.5.3.1.10: 452 so that the client sends the rest in another transaction.
            Reply("452 4.5.3 Too many recipients");
            return;
        }
        int rid = _tx.Recipients.Count;
        _tx.Recipients.Add(new Recipient(rid, address, notify, orcpt));
        _log.Info("mid_rcpt", $"MID {_tx.Mid} ICID {_icid} RID {rid} To: <{address}>",
            ("mid", _tx.Mid), ("icid", _icid), ("rid", rid), ("to", address));
        Reply($"250 2.1.5 Recipient <{p.Address}> OK");
    }

    private static DsnNotify ParseNotify(string? value)
    {
        if (value is null) throw new SmtpSyntaxException("501 5.5.4 Invalid NOTIFY value");
        var flags = DsnNotify.Default;
        foreach (var part in value.Split(','))
        {
            flags |= part.ToUpperInvariant() switch
            {
                "NEVER" => DsnNotify.Never,
                "SUCCESS" => DsnNotify.Success,
                "FAILURE" => DsnNotify.Failure,
                "DELAY" => DsnNotify.Delay,
                _ => throw new SmtpSyntaxException("501 5.5.4 Invalid NOTIFY value"),
            };
        }
        if (flags.HasFlag(DsnNotify.Never) && flags != DsnNotify.Never)
            throw new SmtpSyntaxException("501 5.5.4 NOTIFY=NEVER cannot be combined with other values");
        return flags;
    }

    // ------------------------------------------------------------------ DATA

    private async Task<bool> DataAsync(string arg)
    {
        if (_tx is null) { Error("503 5.5.1 Need MAIL command"); return true; }
        if (_tx.Recipients.Count == 0) { Error("554 5.5.1 No valid recipients"); return true; } // RFC 5321 §3.3
        if (arg.Length > 0) { Error("501 5.5.4 Syntax: DATA (no parameters)"); return true; }
        var tx = _tx;
        Reply("354 End data with <CR><LF>.<CR><LF>");
        await FlushAsync().ConfigureAwait(false);

        var receivedAt = DateTimeOffset.UtcNow;
        // The body goes to memory up to BodyMemoryLimit, then to a spill file as it arrives: a session's memory is
        // bounded whatever the message size. The reservation caps all sessions' unspooled bytes together.
        MessageBody complete;
        using (var reservation = _budget.Open())
        {
            using (var body = new MessageBodyWriter(_spool.SpillDirectory, _o.BodyMemoryLimit, tx.DeclaredSize ?? 0))
            {
                var outcome = await ReceiveDataAsync(tx, body, reservation, receivedAt).ConfigureAwait(false);
                if (outcome is not null) return outcome.Value;
                complete = await body.CompleteAsync(_hardStop).ConfigureAwait(false);
            }
            // The reservation is held until the spool has the message (or refused it).
            return await StoreAsync(tx, complete, receivedAt).ConfigureAwait(false);
        }
    }

    private const int WidenAfter = 16 * 1024, WideReadBuffer = 64 * 1024;

    /// <summary>Reads DATA up to &lt;CRLF&gt;.&lt;CRLF&gt; into <paramref name="body"/>.</summary>
    /// <returns>null when the message is complete and acceptable; otherwise the reply was queued (or the session
    /// must end) and the value says whether the session goes on.</returns>
    private async Task<bool?> ReceiveDataAsync(Transaction tx, MessageBodyWriter body, DataBudget.Reservation reservation, DateTimeOffset receivedAt)
    {
        if (_o.AddReceivedHeader)
        {
            var header = Encoding.UTF8.GetBytes(ReceivedHeader(tx, receivedAt));
            reservation.TryGrow(header.Length);
            await body.WriteAsync(header, _hardStop).ConfigureAwait(false);
        }
        long received = 0;
        bool tooBig = false, tooLong = false, noStorage = false, lookalikeEnd = false;
        var flaws = DataFlaw.None;
        bool reject = _o.BareLineEndings == BareLineEndingPolicy.Reject;
        bool previousBareLf = false; // the DATA command itself: in Reject mode a bare-LF command never gets here
        // Clean lines already buffered are taken without I/O and lie back to back in the reader's buffer: they are
        // written as one run (a write per buffer fill instead of per line). The run is written before any read that
        // could move the buffer and before any other write.
        ReadOnlyMemory<byte> run = default;
        // Until the message is refused (too big, a line too long, no storage, a flaw in reject mode) its lines are kept.
        bool Keeping() => !(tooBig || tooLong || noStorage || reject && flaws != DataFlaw.None);
        using (var deadline = new CancellationTokenSource(_o.DataTimeout))
        using (var readCancel = CancellationTokenSource.CreateLinkedTokenSource(deadline.Token, _hardStop))
        {
            while (true)
            {
                // Plain lines already buffered (CRLF, no CR/NUL inside, no leading "."), taken as one run: each would
                // pass every check below unchanged, and none can end the data. After a bare-LF line the next one goes
                // through the checks (a "." there is a lookalike end).
                if (!previousBareLf)
                {
                    var plain = _reader.TakePlainLines(_o.MaxTextLineLength);
                    if (!plain.IsEmpty)
                    {
                        received += plain.Length;
                        if (received > _o.MaxMessageSize) tooBig = true;
                        if (Keeping())
                        {
                            if (!reservation.TryGrow(plain.Length)) noStorage = true;
                            else if (Join(ref run, plain) is { IsEmpty: false } before) await body.WriteAsync(before, _hardStop).ConfigureAwait(false);
                        }
                    }
                }
                ReadOutcome outcome;
                if (!_reader.TryReadBufferedLine(_o.MaxTextLineLength, out var line))
                {
                    if (!run.IsEmpty) { await body.WriteAsync(run, _hardStop).ConfigureAwait(false); run = default; }
                    // A large body: read it in 64 KB receives instead of 8 KB ones (no line is held here).
                    if (received >= WidenAfter) _reader.Widen(WideReadBuffer);
                    (line, var readOutcome) = await ReadDataLineAsync(readCancel.Token, deadline.Token).ConfigureAwait(false);
                    outcome = readOutcome;
                }
                else outcome = ReadOutcome.Line;
                if (outcome == ReadOutcome.Timeout)
                {
                    _log.Info("icid_timeout", $"ICID {_icid} timeout receiving DATA for MID {tx.Mid}", ("icid", _icid), ("mid", tx.Mid));
                    await GoodbyeAsync($"421 4.4.2 {Host} Error: timeout exceeded").ConfigureAwait(false);
                    return false;
                }
                if (outcome == ReadOutcome.Shutdown)
                {
                    await GoodbyeAsync($"421 4.3.2 {Host} Service shutting down, closing transmission channel").ConfigureAwait(false);
                    return false;
                }
                if (line.Status == SmtpLineStatus.Eof)
                {
                    _log.Info("icid_lost_data", $"ICID {_icid} connection lost during DATA for MID {tx.Mid}", ("icid", _icid), ("mid", tx.Mid));
                    return false;
                }
                if (line.Status == SmtpLineStatus.TooLong)
                {
                    tooLong = true;
                    previousBareLf = line.BareLf;
                    continue;
                }
                var content = line.Content;
                // RFC 5321 §4.1.1.4: only <CRLF>.<CRLF> ends the data. A "." line next to a bare LF is how a bare-LF
                // client ends DATA (and what a smuggling attempt hopes the next hop takes for the end): the message is
                // refused and the session resynchronises there.
                if (!previousBareLf && !line.BareLf && content.Length == 1 && content.Span[0] == (byte)'.') break;
                if (DataHygiene.IsLookalikeEnd(content.Span, line.BareLf, previousBareLf)) { lookalikeEnd = true; break; }
                previousBareLf = line.BareLf;
                var flaw = DataHygiene.Inspect(content.Span, line.BareLf);
                flaws |= flaw;
                int stuffed = content.Length > 0 && content.Span[0] == (byte)'.' ? 1 : 0; // §4.5.2 transparency
                received += content.Length - stuffed + 2;
                if (received > _o.MaxMessageSize) tooBig = true;
                if (!Keeping()) continue; // refused: read on, keep nothing
                if (flaw == DataFlaw.None)
                {
                    var clean = line.WithTerminator[stuffed..];
                    if (!reservation.TryGrow(clean.Length)) noStorage = true;
                    else if (Join(ref run, clean) is { IsEmpty: false } before) await body.WriteAsync(before, _hardStop).ConfigureAwait(false);
                }
                else
                {
                    if (!run.IsEmpty) { await body.WriteAsync(run, _hardStop).ConfigureAwait(false); run = default; }
                    var scratch = ArrayPool<byte>.Shared.Rent(2 * content.Length + 2);
                    try
                    {
                        int n = DataHygiene.Normalize(content.Span[stuffed..], scratch);
                        if (!reservation.TryGrow(n)) { noStorage = true; continue; }
                        await body.WriteAsync(scratch.AsMemory(0, n), _hardStop).ConfigureAwait(false);
                    }
                    finally
                    {
                        ArrayPool<byte>.Shared.Return(scratch);
                    }
                }
            }
            // The reader has not moved since the run's lines were taken (a refused message's body is dropped anyway).
            if (!run.IsEmpty) await body.WriteAsync(run, _hardStop).ConfigureAwait(false);
            _reader.Narrow();
        }
        _tx = null;
        string? refusal = null, reason = null;
        if (lookalikeEnd)
            (refusal, reason) = ("550 5.5.2 Message refused: end of data must be <CR><LF>.<CR><LF>, bare <LF> received",
                "end of data with a bare LF (\\n.\\n or a variant)");
        else if (tooLong)
            (refusal, reason) = ("500 5.5.2 Line too long", $"line longer than {_o.MaxTextLineLength} octets");
        else if (tooBig)
            (refusal, reason) = ("552 5.3.4 Message size exceeds fixed maximum message size", $"message larger than {_o.MaxMessageSize} bytes");
        else if (reject && flaws.HasFlag(DataFlaw.BareLf))
            (refusal, reason) = ("550 5.5.2 Message refused: bare <LF> in message data, lines must end with <CR><LF>", "bare LF in DATA");
        else if (reject && flaws.HasFlag(DataFlaw.BareCr))
            (refusal, reason) = ("550 5.5.2 Message refused: bare <CR> in message data, lines must end with <CR><LF>", "bare CR in DATA");
        else if (reject && flaws.HasFlag(DataFlaw.Nul))
            (refusal, reason) = ("550 5.6.0 Message refused: NUL character in message data", "NUL in DATA");
        else if (noStorage)
            (refusal, reason) = ("452 4.3.1 Insufficient system storage, try again later",
                $"more than {_o.MaxDataInFlight} bytes of DATA in flight across sessions");
        if (refusal is not null)
        {
            _log.Info("mid_rejected", $"MID {tx.Mid} ICID {_icid} rejected: {reason}", ("mid", tx.Mid), ("icid", _icid), ("reason", reason));
            if (refusal[0] == '4') Reply(refusal); else Error(refusal);
            return true;
        }
        if (flaws != DataFlaw.None)
            _log.Info("mid_normalised", $"MID {tx.Mid} ICID {_icid} {Describe(flaws)} normalised (bare-line-endings = normalize)",
                ("mid", tx.Mid), ("icid", _icid), ("flaws", flaws.ToString()));
        return null;
    }

    /// <summary>Adds <paramref name="next"/> to the run: extended in place when it is the bytes right after the run in
    /// the same buffer; otherwise it starts a new run and the old one is returned, to be written first.</summary>
    private static ReadOnlyMemory<byte> Join(ref ReadOnlyMemory<byte> run, ReadOnlyMemory<byte> next)
    {
        if (!run.IsEmpty && MemoryMarshal.TryGetArray(run, out var a) && MemoryMarshal.TryGetArray(next, out var b) &&
            ReferenceEquals(a.Array, b.Array) && a.Offset + a.Count == b.Offset)
        {
            run = a.Array.AsMemory(a.Offset, a.Count + b.Count);
            return default;
        }
        var before = run;
        run = next;
        return before;
    }

    /// <summary>A DATA line that needs a read; one linked token for the whole DATA phase (the command loop's helper
    /// links a new one per line).</summary>
    private async ValueTask<(SmtpLine Line, ReadOutcome Outcome)> ReadDataLineAsync(CancellationToken read, CancellationToken deadline)
    {
        try
        {
            return (await _reader.ReadLineAsync(_o.MaxTextLineLength, read).ConfigureAwait(false), ReadOutcome.Line);
        }
        catch (OperationCanceledException) when (_hardStop.IsCancellationRequested)
        {
            return (default, ReadOutcome.Shutdown);
        }
        catch (OperationCanceledException) when (deadline.IsCancellationRequested)
        {
            return (default, ReadOutcome.Timeout);
        }
    }

    private static string Describe(DataFlaw flaws) => string.Join(", ", new[]
    {
        flaws.HasFlag(DataFlaw.BareLf) ? "bare LF" : null,
        flaws.HasFlag(DataFlaw.BareCr) ? "bare CR" : null,
        flaws.HasFlag(DataFlaw.Nul) ? "NUL removed" : null,
    }.Where(x => x is not null));

    private async Task<bool> StoreAsync(Transaction tx, MessageBody body, DateTimeOffset receivedAt)
    {
        long commitStart = System.Diagnostics.Stopwatch.GetTimestamp();
        var envelope = new Envelope(tx.From, tx.Recipients.ToArray(), receivedAt, _icid, _helo ?? "", _remote.ToString(),
            tx.EnvId, tx.Ret, tx.EightBitMime, tx.SmtpUtf8);
        SpooledMessage stored;
        Task<SpooledMessage>? append = null;
        try
        {
            // Last check before the message becomes the gateway's responsibility: a node that left its cluster (or
            // whose actor system stopped) while the client sent DATA must not store it, or answer 250 for it.
            if (NotAvailable() is { } why)
            {
                LogNotAvailable("at end of DATA, message not stored", why, tx.Mid);
                await GoodbyeAsync(NotAvailableReply(Host, why)).ConfigureAwait(false);
                return false;
            }
            // Durability invariant (DESIGN.md): the 250 is written only after the spool's fsync.
            append = _spool.AppendAsync(tx.Mid, envelope, body, _hardStop);
            stored = await append.WaitAsync(_hardStop).ConfigureAwait(false);
        }
        catch (OperationCanceledException) when (_hardStop.IsCancellationRequested)
        {
            await GoodbyeAsync($"421 4.3.2 {Host} Service shutting down, closing transmission channel").ConfigureAwait(false);
            return false;
        }
        catch (Exception ex)
        {
            _log.Critical("mid_spool_failed", $"MID {tx.Mid} ICID {_icid} spool write failed: {ex.Message}",
                ("mid", tx.Mid), ("icid", _icid), ("error", ex.GetType().Name));
            Reply("451 4.3.0 Requested action aborted: local error in processing");
            return true;
        }
        finally
        {
            // The spool reads the body until its append completes, also when we stopped waiting for it.
            if (append is null || append.IsCompleted) body.Dispose();
            else _ = append.ContinueWith(static (_, b) => ((MessageBody)b!).Dispose(), body, CancellationToken.None,
                TaskContinuationOptions.ExecuteSynchronously, TaskScheduler.Default);
        }
        _log.Info("mid_ready", $"MID {tx.Mid} ready {stored.BodyLength} bytes from <{tx.From}>",
            ("mid", tx.Mid), ("bytes", stored.BodyLength), ("from", tx.From),
            ("commit_ms", System.Diagnostics.Stopwatch.GetElapsedTime(commitStart).TotalMilliseconds));
        Reply($"250 2.0.0 Ok: queued as {tx.Mid}");
        _nonTransactionCommands = 0; // a client that delivers mail is not idling
        bool clientGone = false;
        try { await FlushAsync().ConfigureAwait(false); }
        catch (Exception ex) when (ex is IOException or SocketException or ObjectDisposedException or OperationCanceledException)
        {
            clientGone = true; // the message is durable all the same: hand it off below
        }
        try
        {
            await _sink(stored, _hardStop).ConfigureAwait(false);
            _log.Info("mid_queued", $"MID {tx.Mid} queued for delivery", ("mid", tx.Mid));
        }
        catch (Exception ex)
        {
            _log.Critical("mid_handoff_failed", $"MID {tx.Mid} hand-off failed ({ex.Message}); it stays in the spool and is recovered at restart",
                ("mid", tx.Mid), ("error", ex.GetType().Name));
        }
        return !clientGone;
    }

    private string ReceivedHeader(Transaction tx, DateTimeOffset at)
    {
        // RFC 5321 §4.4 trace; protocol names from RFC 3848 (ESMTP[S][A]) and RFC 6531 §3.7.3 (UTF8SMTP[S][A]).
        var with = (tx.SmtpUtf8 ? "UTF8SMTP" : _esmtp ? "ESMTP" : "SMTP") + (_tls ? "S" : "") + (_authUser is not null ? "A" : "");
        var ip = _remote.AddressFamily == AddressFamily.InterNetworkV6 ? "IPv6:" + _remote : _remote.ToString();
        var sb = new StringBuilder();
        sb.Append("Received: from ").Append(HeaderSafe(_helo ?? "", tx.SmtpUtf8)).Append(" ([").Append(ip).Append("])\r\n");
        sb.Append("\tby ").Append(Host).Append(" (MtaSts.Actors) with ").Append(with).Append(" id ")
          .Append(tx.Mid.ToString(CultureInfo.InvariantCulture));
        if (tx.Recipients.Count == 1) sb.Append("\r\n\tfor <").Append(HeaderSafe(tx.Recipients[0].Address, tx.SmtpUtf8)).Append('>');
        sb.Append("; ").Append(at.ToUniversalTime().ToString("ddd, dd MMM yyyy HH:mm:ss '+0000'", CultureInfo.InvariantCulture)).Append("\r\n");
        return sb.ToString();
    }

    /// <summary>A client-supplied token as it may appear in our Received header: printable ASCII without the
    /// characters that would open a comment or end the field; non-ASCII only in an SMTPUTF8 transaction (RFC 6531
    /// §3.7.3); anything else becomes '?'.</summary>
    internal static string HeaderSafe(string value, bool utf8)
    {
        static bool Ok(char c, bool utf8) => c is > ' ' and < (char)127 and not ('(' or ')' or '\\' or ';' or '"')
                                           || utf8 && c > 127 && !char.IsControl(c) && !char.IsWhiteSpace(c) && !char.IsSurrogate(c);
        foreach (var c in value)
            if (!Ok(c, utf8)) return string.Create(value.Length, (value, utf8), static (dst, st) =>
            {
                for (int i = 0; i < dst.Length; i++) dst[i] = Ok(st.value[i], st.utf8) ? st.value[i] : '?';
            });
        return value;
    }

    // ------------------------------------------------------------------ STARTTLS (RFC 3207)

    private async Task<bool> StartTlsAsync(string arg)
    {
        if (_o.Certificate is null) { Error("502 5.5.1 STARTTLS not available"); return true; }
        if (_tls) { Error("503 5.5.1 TLS already active"); return true; }
        if (arg.Length > 0) { Error("501 5.5.4 Syntax: STARTTLS (no parameters allowed)"); return true; }
        if (_tx is not null) { Error("503 5.5.1 STARTTLS not permitted during a mail transaction"); return true; }
        Reply("220 2.0.0 Ready to start TLS");
        await FlushAsync().ConfigureAwait(false);
        // RFC 3207 §4.2 / CVE-2011-0411: anything pipelined after STARTTLS was sent in clear text; drop it.
        int dropped = _reader.DiscardBuffered();
        if (dropped > 0)
            _log.Warning("icid_starttls_injection", $"ICID {_icid} discarded {dropped} bytes sent after STARTTLS", ("icid", _icid));

        var ssl = new SslStream(_stream, leaveInnerStreamOpen: false);
        using var deadline = CancellationTokenSource.CreateLinkedTokenSource(_hardStop);
        deadline.CancelAfter(_o.CommandTimeout);
        try
        {
            await ssl.AuthenticateAsServerAsync(new SslServerAuthenticationOptions
            {
                ServerCertificate = _o.Certificate,
                EnabledSslProtocols = _o.TlsProtocols,
                ClientCertificateRequired = false,
                CertificateRevocationCheckMode = X509RevocationMode.NoCheck,
            }, deadline.Token).ConfigureAwait(false);
        }
        catch (Exception ex) when (ex is AuthenticationException or IOException or OperationCanceledException or SocketException)
        {
            _log.Info("icid_tls_failed", $"ICID {_icid} TLS failed: {ex.Message}", ("icid", _icid));
            _stream = ssl;
            return false;
        }
        _stream = ssl;
        _reader = new SmtpLineReader(ssl);
        _tls = true;
        _log.Info("icid_tls_success", $"ICID {_icid} TLS success protocol {ProtocolName(ssl.SslProtocol)} cipher {ssl.NegotiatedCipherSuite}",
            ("icid", _icid), ("protocol", ProtocolName(ssl.SslProtocol)), ("cipher", ssl.NegotiatedCipherSuite.ToString()));
        // RFC 3207 §4.2: forget everything learned before the handshake.
        _helo = null;
        _esmtp = false;
        _tx = null;
        _authUser = null;
        return true;
    }

    private static string ProtocolName(SslProtocols p) => p switch
    {
        SslProtocols.Tls13 => "TLSv1.3",
        SslProtocols.Tls12 => "TLSv1.2",
        _ => p.ToString(),
    };

    // ------------------------------------------------------------------ AUTH (RFC 4954, RFC 4616 PLAIN, LOGIN)

    private async Task<bool> AuthAsync(string arg)
    {
        if (!_o.AuthConfigured) { Error("502 5.5.1 AUTH not available"); return true; }
        if (!_tls) { Error("538 5.7.11 Encryption required for requested authentication mechanism"); return true; }
        if (_helo is null || !_esmtp) { Error("503 5.5.1 Send EHLO first"); return true; }
        if (_authUser is not null) { Error("503 5.5.1 Already authenticated"); return true; }
        if (_tx is not null) { Error("503 5.5.1 AUTH not permitted during a mail transaction"); return true; }
        var parts = arg.Split(' ', StringSplitOptions.RemoveEmptyEntries);
        if (parts.Length is 0 or > 2) { Error("501 5.5.4 Syntax: AUTH mechanism [initial-response]"); return true; }
        var mechanism = parts[0].ToUpperInvariant();
        string? initial = parts.Length == 2 ? parts[1] : null;

        string user, password;
        switch (mechanism)
        {
            case "PLAIN":
            {
                var (ok, resp) = await ChallengeAsync("", initial).ConfigureAwait(false);
                if (!ok) return false;
                if (resp is null) return true;
                var fields = resp.Split('\0');
                if (fields.Length != 3) { Error("501 5.5.2 Invalid PLAIN response"); return true; }
                // RFC 4616 §2: authzid, authcid, passwd. Acting as someone else is not supported.
                if (fields[0].Length > 0 && fields[0] != fields[1]) { AuthFailed(fields[1], mechanism); return true; }
                user = fields[1];
                password = fields[2];
                break;
            }
            case "LOGIN":
            {
                var (ok, u) = await ChallengeAsync("VXNlcm5hbWU6", initial).ConfigureAwait(false); // "Username:"
                if (!ok) return false;
                if (u is null) return true;
                var (ok2, pw) = await ChallengeAsync("UGFzc3dvcmQ6", null).ConfigureAwait(false); // "Password:"
                if (!ok2) return false;
                if (pw is null) return true;
                user = u;
                password = pw;
                break;
            }
            default:
                Error("504 5.5.4 Unrecognized authentication type");
                return true;
        }

        var check = _shared.Auth.Check(_remote, user);
        if (!check.Allowed)
        {
            // Locked out (per address or per user name, whether or not the user exists): credentials are not even
            // checked, so a correct guess during a lockout is not confirmed. RFC 4954 §6: 454 4.7.0.
            _log.Debug("icid_auth_locked", $"ICID {_icid} AUTH refused: {check.LockedOut} locked out until {check.Until:u} user {user}",
                ("icid", _icid), ("user", user), ("address", _remote.ToString()));
            Error("454 4.7.0 Temporary authentication failure, try again later");
            return true;
        }
        // Same work whether or not the user exists: compare fixed-size hashes, against a dummy for unknown users.
        bool known = _o.AuthUsers!.TryGetValue(user, out var expected);
        bool match = CryptographicOperations.FixedTimeEquals(
            SHA256.HashData(Encoding.UTF8.GetBytes(password)), SHA256.HashData(Encoding.UTF8.GetBytes(expected ?? "\0unknown-user\0")));
        if (known && match)
        {
            _shared.Auth.RecordSuccess(_remote, user);
            _authUser = user;
            _log.Info("icid_auth_success", $"ICID {_icid} AUTH success user {user} mechanism {mechanism}",
                ("icid", _icid), ("user", user), ("mechanism", mechanism));
            Reply("235 2.7.0 Authentication successful");
            return true;
        }
        AuthFailed(user, mechanism);
        return true;
    }

    private void AuthFailed(string user, string mechanism)
    {
        var failure = _shared.Auth.RecordFailure(_remote, user);
        _log.Warning("icid_auth_failed", $"ICID {_icid} AUTH failed user {user} mechanism {mechanism}",
            ("icid", _icid), ("user", user), ("mechanism", mechanism));
        if (failure.TriggeredLockout)
            _log.Warning("icid_auth_lockout", $"ICID {_icid} AUTH lockout ({failure.LockoutStarted}) address {_remote} user {user} until {failure.LockedUntil:u}",
                ("icid", _icid), ("address", _remote.ToString()), ("user", user), ("scope", failure.LockoutStarted.ToString()),
                ("until", failure.LockedUntil));
        Error("535 5.7.8 Authentication credentials invalid");
        // Brute-force brake: the reply waits (0.5 s, 1 s, 2 s … per recent failure of this address).
        if (failure.Delay > _replyDelay) _replyDelay = failure.Delay;
    }

    /// <summary>Sends a 334 challenge unless an initial response was given, and decodes the base64 answer.</summary>
    /// <returns>ok=false: end the session. response=null: an error reply was already queued.</returns>
    private async Task<(bool Ok, string? Response)> ChallengeAsync(string challenge, string? initial)
    {
        string answer;
        if (initial is not null)
        {
            answer = initial;
        }
        else
        {
            Reply("334 " + challenge);
            await FlushAsync().ConfigureAwait(false);
            using var deadline = new CancellationTokenSource(_o.CommandTimeout);
            var (line, outcome) = await ReadLineAsync(AuthLineLimit, deadline.Token, _softStop).ConfigureAwait(false);
            if (outcome == ReadOutcome.Timeout)
            {
                await GoodbyeAsync($"421 4.4.2 {Host} Error: timeout exceeded").ConfigureAwait(false);
                return (false, null);
            }
            if (outcome == ReadOutcome.Shutdown)
            {
                await GoodbyeAsync($"421 4.3.2 {Host} Service shutting down, closing transmission channel").ConfigureAwait(false);
                return (false, null);
            }
            if (line.Status == SmtpLineStatus.Eof) return (false, null);
            if (line.Status == SmtpLineStatus.TooLong) { Error("500 5.5.2 Line too long"); return (true, null); }
            answer = Encoding.ASCII.GetString(line.Content.Span).Trim();
        }
        if (answer == "*") { Error("501 5.7.0 Authentication cancelled"); return (true, null); } // RFC 4954 §4
        if (answer == "=") return (true, ""); // empty initial response
        try { return (true, StrictUtf8.GetString(Convert.FromBase64String(answer))); }
        catch (Exception ex) when (ex is FormatException or DecoderFallbackException)
        {
            Error("501 5.5.2 Cannot decode response");
            return (true, null);
        }
    }

    // ------------------------------------------------------------------ I/O helpers

    private async Task<(SmtpLine Line, ReadOutcome Outcome)> ReadLineAsync(int maxLength, CancellationToken deadline, CancellationToken stop)
    {
        using var linked = CancellationTokenSource.CreateLinkedTokenSource(deadline, stop);
        try
        {
            return (await _reader.ReadLineAsync(maxLength, linked.Token).ConfigureAwait(false), ReadOutcome.Line);
        }
        catch (OperationCanceledException) when (stop.IsCancellationRequested)
        {
            return (default, ReadOutcome.Shutdown);
        }
        catch (OperationCanceledException) when (deadline.IsCancellationRequested)
        {
            return (default, ReadOutcome.Timeout);
        }
    }

    private void Reply(string line)
    {
        _out.Write(Encoding.UTF8.GetBytes(line));
        _out.Write(CrLf);
    }

    /// <summary>The reply of the admission gate (<see cref="SmtpListenerOptions.Admission"/>), RFC 3463 4.3.2
    /// "system not accepting network messages".</summary>
    internal static string NotAvailableReply(string host, string reason) => $"421 4.3.2 {host} Service not available: {reason}";

    private string? NotAvailable() => _o.Admission?.Invoke();

    /// <summary>One line per refusal: at warning level the first time for a reason and then every
    /// <see cref="AdmissionLog.Interval"/>, at debug level in between.</summary>
    private void LogNotAvailable(string stage, string reason, long? mid)
    {
        bool warn = _shared.AdmissionLog.ShouldWarn(reason, DateTime.UtcNow.Ticks, out var suppressed);
        var text = (mid is { } m ? $"MID {m} " : "") + $"ICID {_icid} refused {stage}: service not available: {reason}" +
                   (warn && suppressed > 0 ? $" ({suppressed} more refusals since the last warning)" : "");
        _log.Write(warn ? MailLogLevel.Warning : MailLogLevel.Debug, "icid_not_available", text,
            ("icid", _icid), ("mid", mid), ("address", _remote.ToString()), ("reason", reason), ("stage", stage));
    }

    private void Error(string line)
    {
        _errors++;
        Reply(line);
    }

    private async Task FlushAsync()
    {
        if (_out.Length == 0) return;
        using var cts = CancellationTokenSource.CreateLinkedTokenSource(_hardStop);
        cts.CancelAfter(_o.CommandTimeout); // a client that never reads cannot park us on a full send buffer
        await _stream.WriteAsync(_out.GetBuffer().AsMemory(0, (int)_out.Length), cts.Token).ConfigureAwait(false);
        await _stream.FlushAsync(cts.Token).ConfigureAwait(false);
        _out.SetLength(0);
    }

    /// <summary>Last words before closing: best effort, bounded, never throws.</summary>
    private async Task GoodbyeAsync(string line)
    {
        Reply(line);
        try
        {
            using var cts = new CancellationTokenSource(TimeSpan.FromSeconds(10));
            await _stream.WriteAsync(_out.GetBuffer().AsMemory(0, (int)_out.Length), cts.Token).ConfigureAwait(false);
            await _stream.FlushAsync(cts.Token).ConfigureAwait(false);
        }
        catch (Exception ex) when (ex is IOException or SocketException or ObjectDisposedException or OperationCanceledException or InvalidOperationException or NotSupportedException)
        {
        }
        _out.SetLength(0);
    }
}
