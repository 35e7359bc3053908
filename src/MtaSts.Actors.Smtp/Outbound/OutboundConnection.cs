using System.Globalization;
using System.Net;
using System.Net.Security;
using System.Net.Sockets;
using System.Security.Authentication;
using System.Security.Cryptography.X509Certificates;
using System.Text;
using MtaSts.Actors.Smtp.Replies;
using MailKit;
using MailKit.Net.Smtp;
using MailKit.Security;
using MimeKit;
using MtaSts.Actors.Logging;
using MtaSts.Actors.Spool;
using MtaSts.Actors.Tls;

namespace MtaSts.Actors.Smtp.Outbound;

/// <summary>
/// One outbound SMTP connection (DCID) to one MX address: TCP connect (optionally from a virtual-gateway source
/// address), greeting, EHLO, STARTTLS as the <see cref="ConnectionSecurity"/> plan says (SNI = MX host, certificate
/// checks in the handshake), then any number of transactions (RSET between them), then QUIT.
/// MailKit does the connection, EHLO and TLS; the transaction is written on MailKit's SMTP stream so that the body goes
/// out byte-exact (no MIME re-encoding) and every RCPT reply is kept (partial success).
/// Not thread-safe: one caller (a connection actor) at a time.
/// </summary>
public sealed class OutboundConnection : IAsyncDisposable
{
    public const string TlsRequiredFailed = "TLS was required but could not be successfully negotiated";

    private readonly OutboundOptions _options;
    private readonly MailLog _log;
    private readonly List<CheckOutcome> _checks = new();
    private readonly List<string> _reports = new();
    private readonly CommandTracker _tracker = new();
    private GatewaySmtpClient? _client;
    private Socket? _socket; // MailKit's (it closes it); kept to write plaintext DATA bodies in large sends
    private bool _usable;
    private bool _closed;
    // A transaction was started and did not end in a known clean state: the next one starts with RSET. A transaction
    // that got its end-of-data reply needs none (RFC 5321 §4.1.1.4: the server clears its buffers on completing DATA),
    // nor does one followed by RSET; an RSET there would cost a round trip per message on a reused connection.
    private bool _needsReset;

    public OutboundConnection(MxTarget target, ConnectionSecurity security, OutboundOptions options, MailLog log, long dcid)
    {
        Target = target ?? throw new ArgumentNullException(nameof(target));
        Security = security ?? throw new ArgumentNullException(nameof(security));
        _options = options ?? throw new ArgumentNullException(nameof(options));
        _log = log ?? MailLog.Null;
        Dcid = dcid;
        if (security.Skip) throw new ArgumentException($"the plan says not to connect to {security.MxHost}: {security.SkipReason}", nameof(security));
    }

    public long Dcid { get; }
    public MxTarget Target { get; }
    public ConnectionSecurity Security { get; }
    public bool IsConnected => _usable && _client is { IsConnected: true };
    public bool IsTls => _client?.IsSecure == true;
    public TlsSessionInfo? Tls { get; private set; }
    public IReadOnlyList<CheckOutcome> CheckOutcomes => _checks;
    /// <summary>Report-only findings for TLS-RPT (see <see cref="ConnectResult.Reports"/>).</summary>
    public IReadOnlyList<string> Reports => _reports;
    public int MessagesSent { get; private set; }
    public IPEndPoint? LocalEndPoint { get; private set; }
    public string Peer => Target.ToString();

    public bool SupportsDsn => _client?.Capabilities.HasFlag(SmtpCapabilities.Dsn) == true;
    public bool SupportsPipelining => _client?.Capabilities.HasFlag(SmtpCapabilities.Pipelining) == true;
    public bool SupportsEightBitMime => _client?.Capabilities.HasFlag(SmtpCapabilities.EightBitMime) == true;
    public bool SupportsSmtpUtf8 => _client?.Capabilities.HasFlag(SmtpCapabilities.UTF8) == true;
    /// <summary>RFC 1870 SIZE limit (0 = none announced).</summary>
    public long MaxSize => _client?.Capabilities.HasFlag(SmtpCapabilities.Size) == true ? _client.MaxSize : 0;

    // ------------------------------------------------------------------ connect

    public async Task<ConnectResult> ConnectAsync(CancellationToken ct = default)
    {
        if (_client is not null) throw new InvalidOperationException("already connected");
        var first = await ConnectOnceAsync(Security.StartTls, ct).ConfigureAwait(false);
        // Vendor "Preferred": if STARTTLS is refused before its 220 reply, carry on in the clear. MailKit drops the
        // session on that error, so reconnect without STARTTLS.
        if (first.Failure == ConnectFailure.StartTlsUnavailable && Security.StartTls == StartTlsPolicy.Opportunistic)
        {
            _log.Info("tls_failed", $"DCID {Dcid} TLS failed: STARTTLS unexpected response", ("dcid", Dcid), ("error", first.Error));
            if (Security.ReportStartTlsFailure) _reports.Add("starttls-not-supported");
            await DisposeClientAsync().ConfigureAwait(false);
            return await ConnectOnceAsync(StartTlsPolicy.Never, ct).ConfigureAwait(false);
        }
        return first;
    }

    private async Task<ConnectResult> ConnectOnceAsync(StartTlsPolicy startTls, CancellationToken ct)
    {
        _checks.Clear();
        var ep = Target.EndPoint;
        Socket? socket = null;
        try
        {
            socket = new Socket(ep.AddressFamily, SocketType.Stream, ProtocolType.Tcp) { NoDelay = true };
            if (_options.LocalAddress is { } local)
            {
                if (local.AddressFamily != ep.AddressFamily)
                    return Fail(ConnectStatus.Transient, ConnectFailure.Network,
                        $"source address {local} cannot reach {ep.Address} (address family)", null, logConnectionError: true);
                socket.Bind(new IPEndPoint(local, 0));
            }
            using (var cts = Timeout(ct, _options.ConnectTimeout))
            {
                try { await socket.ConnectAsync(ep, cts.Token).ConfigureAwait(false); }
                catch (OperationCanceledException) when (!ct.IsCancellationRequested)
                {
                    socket.Dispose();
                    return Fail(ConnectStatus.Transient, ConnectFailure.Timeout, "connection timed out", null, logConnectionError: true);
                }
                catch (SocketException e)
                {
                    socket.Dispose();
                    return Fail(ConnectStatus.Transient, ConnectFailure.Network, SocketError(e), null, logConnectionError: true);
                }
            }
            LocalEndPoint = socket.LocalEndPoint as IPEndPoint;
            _log.Info("delivery_connection",
                $"New SMTP DCID {Dcid} interface {LocalEndPoint?.Address} address {ep.Address} port {ep.Port}",
                ("dcid", Dcid), ("interface", LocalEndPoint?.Address.ToString()), ("address", ep.Address.ToString()),
                ("port", ep.Port), ("mx", Target.Host));

            var client = new GatewaySmtpClient(_tracker)
            {
                LocalDomain = _options.HeloName,
                Timeout = Millis(_options.GreetingTimeout),
                CheckCertificateRevocation = false,
                ServerCertificateValidationCallback = ValidateServerCertificate,
                // RFC 8996 / RFC 8461 §7.2: no TLS below 1.2 when TLS is mandatory.
                SslProtocols = Security.RequireTls12 ? SslProtocols.Tls12 | SslProtocols.Tls13 : SslProtocols.None,
            };
            if (_options.ClientCertificate is { } cc) client.ClientCertificates = new X509CertificateCollection { cc };
            _client = client;
            var mode = startTls switch
            {
                StartTlsPolicy.Never => SecureSocketOptions.None,
                StartTlsPolicy.Opportunistic => SecureSocketOptions.StartTlsWhenAvailable,
                _ => SecureSocketOptions.StartTls,
            };
            using (var cts = Timeout(ct, _options.GreetingTimeout))
            {
                var s = socket;
                socket = null; // owned by MailKit from here
                _socket = s;
                // SNI and the certificate callback use the MX host name (RFC 8461 §7.1, RFC 7672 §8.1).
                await client.ConnectAsync(s, Target.Host, Target.Port, mode, cts.Token).ConfigureAwait(false);
            }
            client.Timeout = Millis(_options.CommandTimeout);
            _usable = true;
            return AfterConnect(client, startTls);
        }
        catch (OperationCanceledException) when (ct.IsCancellationRequested)
        {
            socket?.Dispose();
            await DisposeClientAsync().ConfigureAwait(false);
            throw;
        }
        catch (Exception e)
        {
            socket?.Dispose();
            var result = Classify(e, ct);
            await DisposeClientAsync().ConfigureAwait(false);
            return result;
        }
    }

    private ConnectResult AfterConnect(GatewaySmtpClient client, StartTlsPolicy startTls)
    {
        if (client.IsSecure)
        {
            Tls = new TlsSessionInfo(ProtocolName(client.SslProtocol), client.SslCipherSuite?.ToString() ?? "unknown");
            _log.Info("tls_success", $"DCID {Dcid} TLS success protocol {Tls.Protocol} cipher {Tls.Cipher}",
                ("dcid", Dcid), ("protocol", Tls.Protocol), ("cipher", Tls.Cipher));
            foreach (var c in _checks.Where(c => !c.Ok && !c.Check.Enforced))
            {
                _reports.Add(ReportType(c.Error));
                _log.Info("tls_verify_report", $"DCID {Dcid} TLS verify error (not enforced, {c.Check.Source}): {c.Error}",
                    ("dcid", Dcid), ("error", c.Error), ("source", c.Check.Source.ToString()));
            }
        }
        else if (startTls == StartTlsPolicy.Opportunistic && Security.ReportStartTlsFailure
                 && !_reports.Contains("starttls-not-supported"))
        {
            _reports.Add("starttls-not-supported");
        }
        return new ConnectResult(ConnectStatus.Ready, ConnectFailure.None, null, null, Tls, _checks.ToArray(), _reports.ToArray());
    }

    private bool ValidateServerCertificate(object sender, X509Certificate? certificate, X509Chain? chain, SslPolicyErrors errors)
    {
        var checks = Security.Checks;
        if (checks.Count == 0) return true; // Preferred/Required: encryption without authentication.
        if (certificate is null)
        {
            foreach (var c in checks) _checks.Add(new CheckOutcome(c, false, "no peer certificate"));
            return !checks.Any(c => c.Enforced);
        }
        var leaf = certificate as X509Certificate2 ?? X509CertificateLoader.LoadCertificate(certificate.GetRawCertData());
        var presented = new List<X509Certificate2> { leaf };
        if (chain is not null)
            foreach (var c in chain.ChainPolicy.ExtraStore)
                if (!presented.Any(p => p.RawDataMemory.Span.SequenceEqual(c.RawDataMemory.Span))) presented.Add(c);
        var names = CertificateVerifier.PresentedIdentifiers(leaf);
        foreach (var check in checks)
        {
            if (check.Kind == CheckKind.Dane)
            {
                var v = DaneVerifier.Verify(leaf, presented, check.Tlsa, check.ReferenceIds);
                _checks.Add(new CheckOutcome(check, v.Ok, v.Error, names));
            }
            else
            {
                var v = _options.Verifier.Verify(leaf, presented, check.ReferenceIds);
                _checks.Add(new CheckOutcome(check, v.Ok, v.Error, names));
            }
        }
        return _checks.All(c => c.Ok || !c.Check.Enforced);
    }

    private ConnectResult Classify(Exception e, CancellationToken ct)
    {
        var failedCheck = _checks.FirstOrDefault(c => !c.Ok && c.Check.Enforced);
        switch (e)
        {
            case SslHandshakeException or System.Security.Authentication.AuthenticationException when failedCheck is not null:
                _log.Info("tls_verify_failed", $"DCID {Dcid} TLS deferring: verify error: {failedCheck.Error}",
                    ("dcid", Dcid), ("error", failedCheck.Error), ("source", failedCheck.Check.Source.ToString()));
                LogTlsRequired();
                return Fail(ConnectStatus.Transient, ConnectFailure.Verification, $"verify error: {failedCheck.Error}", null);
            case SslHandshakeException or System.Security.Authentication.AuthenticationException:
                if (Security.StartTls == StartTlsPolicy.Required) LogTlsRequired();
                else _log.Info("tls_failed", $"DCID {Dcid} TLS failed: {Inner(e)}", ("dcid", Dcid), ("error", Inner(e)));
                if (Security.ReportStartTlsFailure) _reports.Add("validation-failure");
                // Vendor "Preferred": a failure after the 220 to STARTTLS does not fall back to clear text.
                return Fail(ConnectStatus.Transient, ConnectFailure.TlsHandshake, $"TLS handshake failed: {Inner(e)}", null);
            case NotSupportedException when Security.StartTls == StartTlsPolicy.Required:
                // MailKit: SecureSocketOptions.StartTls and the server did not announce STARTTLS.
                LogTlsRequired();
                return Fail(ConnectStatus.Transient, ConnectFailure.StartTlsUnavailable, "STARTTLS not offered", null);
            case SmtpCommandException sce when _tracker.LastCommand.StartsWith("STARTTLS", StringComparison.OrdinalIgnoreCase):
            {
                var reply = SmtpReply.FromWire((int)sce.StatusCode, sce.Message);
                if (Security.StartTls == StartTlsPolicy.Required) LogTlsRequired();
                return Fail(ConnectStatus.Transient, ConnectFailure.StartTlsUnavailable, $"STARTTLS refused: {reply}", reply);
            }
            case SmtpCommandException sce:
            {
                // Greeting or EHLO/HELO refused (RFC 5321 §3.1: 554 greeting; 421 service not available).
                var reply = SmtpReply.FromWire((int)sce.StatusCode, sce.Message);
                return Fail(reply.IsPermanent ? ConnectStatus.Permanent : ConnectStatus.Transient, ConnectFailure.Rejected,
                    $"{(_tracker.LastCommand.Length == 0 ? "greeting" : _tracker.LastCommand)} refused: {reply}", reply);
            }
            case OperationCanceledException or TimeoutException when !ct.IsCancellationRequested:
                return Fail(ConnectStatus.Transient, ConnectFailure.Timeout, "timeout during greeting/EHLO/STARTTLS", null, logConnectionError: true);
            case SmtpProtocolException or IOException or SocketException or ServiceNotConnectedException:
                return Fail(ConnectStatus.Transient, ConnectFailure.Network, $"connection lost: {Inner(e)}", null, logConnectionError: true);
            default:
                return Fail(ConnectStatus.Transient, ConnectFailure.Protocol, $"{e.GetType().Name}: {e.Message}", null);
        }
    }

    private void LogTlsRequired() =>
        _log.Info("tls_required_failed", $"DCID {Dcid} {TlsRequiredFailed}", ("dcid", Dcid));

    private ConnectResult Fail(ConnectStatus status, ConnectFailure failure, string error, SmtpReply? reply, bool logConnectionError = false)
    {
        _usable = false;
        if (logConnectionError)
            _log.Info("connection_error",
                $"Connection Error: {error} DCID: {Dcid} IP: {Target.Address} details: {failure.ToString().ToLowerInvariant()} interface: {LocalEndPoint?.Address.ToString() ?? _options.LocalAddress?.ToString() ?? "default"}",
                ("dcid", Dcid), ("ip", Target.Address.ToString()), ("error", error));
        return new ConnectResult(status, failure, error, reply, Tls, _checks.ToArray(), _reports.ToArray());
    }

    // ------------------------------------------------------------------ transactions

    /// <summary>One SMTP transaction (MAIL, RCPTs — pipelined when offered, RFC 2920 — DATA). Never throws for SMTP or
    /// network failures (they become results); throws <see cref="OperationCanceledException"/> only when
    /// <paramref name="ct"/> is cancelled. Partial success is normal: each recipient has its own result.</summary>
    public async Task<SendResult> SendAsync(OutboundMessage message, CancellationToken ct = default)
    {
        ArgumentNullException.ThrowIfNull(message);
        if (message.Recipients.Count == 0) throw new ArgumentException("no recipients", nameof(message));
        var rids = message.Recipients.Select(r => r.Rid).ToArray();
        if (!IsConnected)
            return AllTransient(message, SmtpReply.Local("4.4.2", "connection not available"), null, usable: false);

        _log.Info("delivery_start", $"Delivery start DCID {Dcid} MID {message.Mid} to RID {Rid.List(rids)}",
            ("dcid", Dcid), ("mid", message.Mid), ("rid", rids));

        var client = _client!;
        // Local checks before MAIL FROM.
        if (message.SmtpUtf8 && !SupportsSmtpUtf8)
            return AllPermanent(message, SmtpReply.Local("5.6.7", "SMTPUTF8 is required but not supported by the receiving server"));
        if (MaxSize > 0 && message.Body.Length > MaxSize)
            return AllPermanent(message, SmtpReply.Local("5.3.4", $"message size {message.Body.Length} exceeds the server limit {MaxSize}"));

        var tx = new Transaction(message);
        MailboxAddress sender;
        try
        {
            sender = new MailboxAddress("", message.ReversePath); // "" → MAIL FROM:<> (RFC 5321 §4.5.5)
        }
        catch (Exception e) when (e is ParseException or FormatException or ArgumentException)
        {
            return AllPermanent(message, SmtpReply.Local("5.6.0", $"message cannot be sent: {e.Message}"));
        }
        // The spooled bytes go out as they are, streamed from the spool (no MIME parse, no copy of the body): BODY=8BITMIME
        // follows the envelope (a relay passes the BODY parameter on, RFC 6152 §3) when the server offers it.
        var body = message.Body;
        var eightBit = message.EightBitMime;
        OutboundBody? converted = null;
        if (eightBit && !SupportsEightBitMime)
        {
            var (outcome, sevenBit, reason) = await EightBitDowngrade.PrepareAsync(body, ct).ConfigureAwait(false);
            if (outcome == EightBitDowngrade.Outcome.NotConvertible)
            {
                _log.Info("delivery_8bit_refused", $"DCID {Dcid} MID {message.Mid} 8-bit message to a server without 8BITMIME, not convertible: {reason}",
                    ("dcid", Dcid), ("mid", message.Mid), ("reason", reason));
                return AllPermanent(message, SmtpReply.Local("5.6.3", $"the receiving server does not accept 8-bit data (no 8BITMIME) and the message cannot be converted to 7 bits: {reason}"));
            }
            if (outcome == EightBitDowngrade.Outcome.Converted)
            {
                converted = sevenBit;
                body = converted!;
                _log.Info("delivery_8bit_converted", $"DCID {Dcid} MID {message.Mid} converted to 7-bit MIME: the server does not offer 8BITMIME (RFC 6152 §3)",
                    ("dcid", Dcid), ("mid", message.Mid));
            }
            eightBit = false;
        }
        using var convertedBody = converted;
        // Plaintext: the body goes straight to the socket in large sends (see SpooledMessagePart.WriteToAsync).
        using var mime = SpooledMessagePart.Wrap(body, eightBit, client.IsSecure ? null : _socket);
        var mailboxes = new List<MailboxAddress>(message.Recipients.Count);
        for (int i = 0; i < message.Recipients.Count; i++)
        {
            try
            {
                var mb = new MailboxAddress("", message.Recipients[i].Address);
                tx.Index[mb] = i;
                mailboxes.Add(mb);
            }
            catch (Exception e) when (e is ParseException or FormatException or ArgumentException)
            {
                tx.Rcpt[i] = SmtpReply.Local("5.1.3", $"bad recipient address syntax: {e.Message}");
            }
        }
        if (mailboxes.Count == 0) return Decide(message, tx, null, _usable);

        using var cts = Timeout(ct, _options.DataTimeout + _options.CommandTimeout);
        try
        {
            if (_needsReset)
            {
                // RFC 5321 §4.1.1.5: start from a clean state.
                var rset = await CommandAsync(client, "RSET", _options.CommandTimeout, ct).ConfigureAwait(false);
                if (!rset.IsPositive)
                {
                    if (rset.Code == 421) await AbandonAsync().ConfigureAwait(false);
                    return AllTransient(message, rset, null, usable: rset.Code != 421 && _usable);
                }
            }
            _needsReset = true;
            client.Current = tx;
            client.DeliveryStatusNotificationType = message.Ret switch
            {
                DsnRet.Full => DeliveryStatusNotificationType.Full,
                DsnRet.Headers => DeliveryStatusNotificationType.HeadersOnly,
                _ => DeliveryStatusNotificationType.Unspecified,
            };
            var text = await client.SendAsync(SpooledMessagePart.Format, mime, sender, mailboxes, cts.Token).ConfigureAwait(false);
            _needsReset = false; // the end-of-data reply completed the transaction (RFC 5321 §4.1.1.4)
            // MailKit returns the text of the 2xx reply to the end of DATA.
            var dataReply = SmtpReply.FromWire(250, text ?? "");
            var result = Decide(message, tx, dataReply, _usable);
            MessagesSent++;
            var accepted = result.Accepted.Select(r => r.Rid).ToArray();
            if (_options.LogOutcomes)
            {
                _log.Info("message_done", $"Message done DCID {Dcid} MID {message.Mid} to RID {Rid.List(accepted)}",
                    ("dcid", Dcid), ("mid", message.Mid), ("rid", accepted));
                _log.Info("delivery_response", $"MID {message.Mid} RID {Rid.List(accepted)} Response {dataReply.DiagnosticText}",
                    ("mid", message.Mid), ("rid", accepted), ("response", dataReply.DiagnosticText));
            }
            return result;
        }
        catch (SmtpCommandException e) when (e.ErrorCode == SmtpErrorCode.MessageNotAccepted && tx.Mail is not { IsPositive: false }
                                             && tx.Rcpt.All(r => r is { IsPositive: false }))
        {
            // Every RCPT refused: MailKit stops before DATA (and keeps the connection); each refusal decides its recipient.
            if (tx.Rcpt.Any(r => r?.Code == 421)) await AbandonAsync().ConfigureAwait(false);
            else await TryResetAsync(client, ct).ConfigureAwait(false);
            return Decide(message, tx, null, _usable);
        }
        catch (SmtpCommandException e)
        {
            var reply = SmtpReply.FromWire((int)e.StatusCode, e.Message);
            if (e.ErrorCode == SmtpErrorCode.SenderNotAccepted) tx.Mail = reply;
            if (reply.Code == 421 || tx.Rcpt.Any(r => r?.Code == 421)) await AbandonAsync().ConfigureAwait(false);
            else await TryResetAsync(client, ct).ConfigureAwait(false);
            // MAIL refused: it decides for everyone. Otherwise the DATA reply (or DATA command reply) decides for the
            // recipients whose RCPT was accepted.
            return Decide(message, tx, e.ErrorCode == SmtpErrorCode.SenderNotAccepted ? null : reply, _usable);
        }
        catch (OperationCanceledException) when (ct.IsCancellationRequested)
        {
            await AbandonAsync().ConfigureAwait(false);
            throw;
        }
        catch (Exception e) when (e is OperationCanceledException or TimeoutException or IOException or SocketException
                                       or SmtpProtocolException or ServiceNotConnectedException or ObjectDisposedException)
        {
            // Timeout or lost connection before the final DATA reply: nothing is delivered (a duplicate is possible if the
            // server did accept — RFC 1047 — which SMTP tolerates; a loss is not).
            var detail = e is OperationCanceledException or TimeoutException
                ? $"timeout waiting for reply to {_tracker.LastCommand}"
                : $"connection lost during {_tracker.LastCommand}: {Inner(e)}";
            await AbandonAsync().ConfigureAwait(false);
            return Decide(message, tx, SmtpReply.Local("4.4.2", detail), usable: false, lost: true);
        }
        finally
        {
            client.Current = null;
        }
    }

    private SendResult Decide(OutboundMessage m, Transaction tx, SmtpReply? data, bool usable, bool lost = false)
    {
        var list = new RecipientResult[m.Recipients.Count];
        for (int i = 0; i < list.Length; i++)
        {
            var r = m.Recipients[i];
            SmtpReply decisive;
            if (tx.Mail is { IsPositive: false } mail) decisive = mail;
            else if (tx.Rcpt[i] is { IsPositive: false } refused) decisive = refused;
            else if (data is not null) decisive = data;
            else decisive = SmtpReply.Local("4.4.2", lost ? "connection lost" : "transaction not completed");
            if (lost && decisive.IsPositive) decisive = data!;
            var status = decisive.IsPositive ? RecipientStatus.Accepted
                : decisive.IsPermanent ? RecipientStatus.Permanent : RecipientStatus.Transient;
            list[i] = new RecipientResult(r.Rid, r.Address, status, decisive);
        }
        return new SendResult(m.Mid, list, tx.Mail, data, usable && _usable);
    }

    private SendResult AllTransient(OutboundMessage m, SmtpReply reply, SmtpReply? mail, bool usable) =>
        new(m.Mid, m.Recipients.Select(r => new RecipientResult(r.Rid, r.Address, RecipientStatus.Transient, reply)).ToArray(),
            mail, null, usable);

    private SendResult AllPermanent(OutboundMessage m, SmtpReply reply) =>
        new(m.Mid, m.Recipients.Select(r => new RecipientResult(r.Rid, r.Address, RecipientStatus.Permanent, reply)).ToArray(),
            null, null, _usable);

    private async Task<SmtpReply> CommandAsync(GatewaySmtpClient client, string command, TimeSpan timeout, CancellationToken ct)
    {
        using var cts = Timeout(ct, timeout);
        var resp = await client.RawCommandAsync(command, cts.Token).ConfigureAwait(false);
        return SmtpReply.FromWire((int)resp.StatusCode, resp.Response);
    }

    /// <summary>RSET on a kept connection before it is used again (MX roll-up): RFC 5321 §4.1.1.5, a clean state, and
    /// proof that the server is still there. False — the connection is abandoned — when it is gone, refuses, or times out.</summary>
    public async Task<bool> ResetAsync(CancellationToken ct = default)
    {
        if (_client is not { } client || !_usable || !client.IsConnected) return false;
        try
        {
            var r = await CommandAsync(client, "RSET", _options.CommandTimeout, ct).ConfigureAwait(false);
            if (r.IsPositive)
            {
                _needsReset = false; // the next transaction needs no second RSET
                return true;
            }
        }
        catch (Exception e) when (e is not OperationCanceledException || !ct.IsCancellationRequested)
        {
            // gone: abandoned below
        }
        await AbandonAsync().ConfigureAwait(false);
        return false;
    }

    private async Task TryResetAsync(GatewaySmtpClient client, CancellationToken ct)
    {
        if (!_usable || !client.IsConnected) { await AbandonAsync().ConfigureAwait(false); return; }
        try
        {
            var r = await CommandAsync(client, "RSET", _options.CommandTimeout, ct).ConfigureAwait(false);
            if (!r.IsPositive) await AbandonAsync().ConfigureAwait(false);
        }
        catch (Exception e) when (e is not OperationCanceledException || !ct.IsCancellationRequested)
        {
            await AbandonAsync().ConfigureAwait(false);
        }
        _needsReset = false; // already reset (or abandoned)
    }

    /// <summary>RFC 3461 §4: xtext — "+" HEX for '+', '=', and characters outside 33..126.</summary>
    public static string XText(string value)
    {
        var sb = new StringBuilder(value.Length);
        foreach (var b in Encoding.UTF8.GetBytes(value))
            if (b is < 33 or > 126 or (byte)'+' or (byte)'=') sb.Append('+').Append(b.ToString("X2", CultureInfo.InvariantCulture));
            else sb.Append((char)b);
        return sb.ToString();
    }

    /// <summary>Per-transaction state the MailKit callbacks fill in.</summary>
    private sealed class Transaction(OutboundMessage message)
    {
        public OutboundMessage Message { get; } = message;
        public Dictionary<MailboxAddress, int> Index { get; } = new(ReferenceEqualityComparer.Instance);
        public SmtpReply?[] Rcpt { get; } = new SmtpReply?[message.Recipients.Count];
        public SmtpReply? Mail { get; set; }
    }

    // ------------------------------------------------------------------ close

    /// <summary>QUIT (bounded by <see cref="OutboundOptions.QuitTimeout"/>), close, and log <c>DCID n close</c>. Idempotent.</summary>
    public async Task CloseAsync(CancellationToken ct = default)
    {
        if (_closed) return;
        _closed = true;
        if (_client is { IsConnected: true } c && _usable)
        {
            try
            {
                using var cts = Timeout(ct, _options.QuitTimeout);
                await c.DisconnectAsync(true, cts.Token).ConfigureAwait(false);
            }
            catch (Exception e) when (e is not OperationCanceledException || !ct.IsCancellationRequested)
            {
                // best effort
            }
        }
        _usable = false;
        await DisposeClientAsync().ConfigureAwait(false);
        if (LocalEndPoint is not null) _log.Info("delivery_close", $"DCID {Dcid} close", ("dcid", Dcid));
    }

    public async ValueTask DisposeAsync() => await CloseAsync().ConfigureAwait(false);

    private async Task AbandonAsync()
    {
        _usable = false;
        await DisposeClientAsync().ConfigureAwait(false);
    }

    private Task DisposeClientAsync()
    {
        var c = _client;
        _client = null;
        _socket = null;
        if (c is null) return Task.CompletedTask;
        try { c.Dispose(); } catch (Exception) { /* closing a broken socket */ }
        return Task.CompletedTask;
    }

    // ------------------------------------------------------------------ helpers

    private static CancellationTokenSource Timeout(CancellationToken ct, TimeSpan timeout)
    {
        var cts = CancellationTokenSource.CreateLinkedTokenSource(ct);
        cts.CancelAfter(timeout);
        return cts;
    }

    private static int Millis(TimeSpan t) => t == System.Threading.Timeout.InfiniteTimeSpan ? -1 : (int)Math.Min(int.MaxValue, t.TotalMilliseconds);

    /// <summary>Vendor/OpenSSL names: TLSv1.2, TLSv1.3.</summary>
    public static string ProtocolName(SslProtocols p) => p switch
    {
        SslProtocols.Tls13 => "TLSv1.3",
        SslProtocols.Tls12 => "TLSv1.2",
#pragma warning disable SYSLIB0039 // legacy names for logging only
        SslProtocols.Tls11 => "TLSv1.1",
        SslProtocols.Tls => "TLSv1",
#pragma warning restore SYSLIB0039
        _ => p.ToString(),
    };

    private static string ReportType(string? error) => error switch
    {
        CertificateVerifier.NameMismatch => "certificate-host-mismatch",
        CertificateVerifier.Expired or CertificateVerifier.NotYetValid => "certificate-expired",
        CertificateVerifier.UnknownIssuer or CertificateVerifier.SelfSigned => "certificate-not-trusted",
        _ => "validation-failure",
    };

    private static string SocketError(SocketException e) => e.SocketErrorCode switch
    {
        System.Net.Sockets.SocketError.ConnectionRefused => "connection refused",
        System.Net.Sockets.SocketError.TimedOut => "connection timed out",
        System.Net.Sockets.SocketError.HostUnreachable or System.Net.Sockets.SocketError.NetworkUnreachable => "no route to host",
        _ => e.Message,
    };

    private static string Inner(Exception e)
    {
        while (e.InnerException is not null) e = e.InnerException;
        return e.Message;
    }

    /// <summary>Remembers the last command written (MailKit's protocol logger hook) to tell which phase failed.</summary>
    private sealed class CommandTracker : IProtocolLogger
    {
        public string LastCommand { get; set; } = "";
        public IAuthenticationSecretDetector? AuthenticationSecretDetector { get; set; }
        public void LogConnect(Uri uri) { }
        public void LogServer(byte[] buffer, int offset, int count) { }
        public void LogClient(byte[] buffer, int offset, int count)
        {
            var len = Math.Min(count, 16);
            var text = Encoding.ASCII.GetString(buffer, offset, len);
            var end = text.IndexOfAny(new[] { '\r', '\n', ' ' });
            var verb = (end < 0 ? text : text[..end]).ToUpperInvariant();
            if (verb is "EHLO" or "HELO" or "STARTTLS" or "MAIL" or "RCPT" or "DATA" or "RSET" or "QUIT") LastCommand = verb;
        }
        public void Dispose() { }
    }

    /// <summary>MailKit's client adapted to a relay: the message goes out as received (no re-encoding), every RCPT
    /// reply is recorded instead of thrown, and DSN parameters come from the spool envelope (RFC 3461).</summary>
    private sealed class GatewaySmtpClient(IProtocolLogger logger) : SmtpClient(logger)
    {
        public Transaction? Current { get; set; }

        public Task<SmtpResponse> RawCommandAsync(string command, CancellationToken ct) => SendCommandAsync(command, ct);

        protected override void Prepare(FormatOptions options, MimeMessage message, EncodingConstraint constraint, int maxLineLength)
        {
            // A relay must not re-encode (DKIM signatures cover the body as received).
        }

        protected override void OnSenderAccepted(MimeMessage message, MailboxAddress mailbox, SmtpResponse response)
        {
            if (Current is { } tx) tx.Mail = SmtpReply.FromWire((int)response.StatusCode, response.Response);
        }

        protected override void OnSenderNotAccepted(MimeMessage message, MailboxAddress mailbox, SmtpResponse response)
        {
            if (Current is { } tx) tx.Mail = SmtpReply.FromWire((int)response.StatusCode, response.Response);
            base.OnSenderNotAccepted(message, mailbox, response);
        }

        protected override void OnRecipientAccepted(MimeMessage message, MailboxAddress mailbox, SmtpResponse response) =>
            Record(mailbox, response);

        protected override void OnRecipientNotAccepted(MimeMessage message, MailboxAddress mailbox, SmtpResponse response) =>
            Record(mailbox, response); // partial success: keep going

        protected override string? GetEnvelopeId(MimeMessage message) => Current?.Message.EnvId;

        // RFC 1870 SIZE: the spooled length (the last line's CRLF, if missing, is not counted) instead of MailKit's
        // measuring pass, which would write the whole body once more just to count it.
        protected override long GetSize(FormatOptions options, MimeMessage message, CancellationToken cancellationToken) =>
            Current?.Message.Body.Length ?? base.GetSize(options, message, cancellationToken);

        protected override Task<long> GetSizeAsync(FormatOptions options, MimeMessage message, CancellationToken cancellationToken) =>
            Current is { } tx ? Task.FromResult(tx.Message.Body.Length) : base.GetSizeAsync(options, message, cancellationToken);

        protected override DeliveryStatusNotification? GetDeliveryStatusNotifications(MimeMessage message, MailboxAddress mailbox)
        {
            if (Current is not { } tx || !tx.Index.TryGetValue(mailbox, out var i)) return null;
            var n = tx.Message.Recipients[i].Notify;
            if (n == DsnNotify.Default) return null;
            if (n.HasFlag(DsnNotify.Never)) return DeliveryStatusNotification.Never;
            DeliveryStatusNotification d = 0;
            if (n.HasFlag(DsnNotify.Success)) d |= DeliveryStatusNotification.Success;
            if (n.HasFlag(DsnNotify.Failure)) d |= DeliveryStatusNotification.Failure;
            if (n.HasFlag(DsnNotify.Delay)) d |= DeliveryStatusNotification.Delay;
            return d;
        }

        private void Record(MailboxAddress mailbox, SmtpResponse response)
        {
            if (Current is { } tx && tx.Index.TryGetValue(mailbox, out var i))
                tx.Rcpt[i] = SmtpReply.FromWire((int)response.StatusCode, response.Response);
        }
    }
}
