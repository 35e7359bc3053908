using MtaSts.Actors.Smtp.Replies;
using System.Net;
using System.Net.Sockets;
using System.Text;
using System.Text.RegularExpressions;
using MtaSts.Actors.Dns;
using MtaSts.Actors.Logging;
using MtaSts.Actors.Smtp.Outbound;
using MtaSts.Actors.Spool;
using MtaSts.Actors.TestInfra.Certificates;
using MtaSts.Actors.TestInfra.Smtp;
using MtaSts.Actors.Tls;

namespace MtaSts.Actors.Smtp.Tests.Outbound;

public sealed class OutboundConnectionTests : IAsyncLifetime
{
    private const string Mx = "mx.example.com";
    private const string Domain = "example.com";
    private readonly TestCertificateAuthority _ca = new();
    private readonly List<string> _log = new();
    private readonly MailLog _mailLog;
    private readonly List<IAsyncDisposable> _disposables = new();

    public OutboundConnectionTests()
    {
        _mailLog = new MailLog(null);
        _mailLog.Written += e => { lock (_log) _log.Add(e.Text); };
    }

    public Task InitializeAsync() => Task.CompletedTask;

    public async Task DisposeAsync()
    {
        foreach (var d in _disposables) await d.DisposeAsync();
        _ca.Dispose();
    }

    private string[] Log { get { lock (_log) return _log.ToArray(); } }

    private TestSmtpReceiver Receiver(TestSmtpReceiverOptions? o = null)
    {
        var r = TestSmtpReceiver.Start(o);
        _disposables.Add(r);
        return r;
    }

    private TestSmtpReceiver TlsReceiver(params string[] names) =>
        Receiver(new TestSmtpReceiverOptions { Certificate = TestLeafCertificates.Issue(_ca, names.Length == 0 ? new[] { Mx } : names) });

    private OutboundOptions Options => new()
    {
        HeloName = "gateway.test",
        Verifier = new CertificateVerifier(new[] { _ca.Root }, useSystemRoots: false),
        CommandTimeout = TimeSpan.FromSeconds(30),
        GreetingTimeout = TimeSpan.FromSeconds(30),
        DataTimeout = TimeSpan.FromSeconds(30),
    };

    private OutboundConnection Connection(TestSmtpReceiver r, ConnectionSecurity security, long dcid = 834833, OutboundOptions? options = null)
    {
        var c = new OutboundConnection(new MxTarget(Mx, r.Address, r.Port), security, options ?? Options, _mailLog, dcid);
        _disposables.Add(c);
        return c;
    }

    private static ConnectionSecurity Plan(TlsSupport tls, DaneSupport dane = DaneSupport.None, MtaStsMode sts = MtaStsMode.None,
        TlsaLookup? tlsa = null, string domain = Domain) =>
        SecurityPlanner.Plan(new SecurityContext(domain, Mx, tls, dane, sts, true, tlsa));

    private static readonly byte[] Body = Encoding.ASCII.GetBytes(
        "From: a@sender.test\r\nTo: b@example.com\r\nSubject: hello\r\nMessage-ID: <1@sender.test>\r\n\r\nline one\r\n.leading dot\r\n..two dots\r\nlast\r\n");

    private static OutboundMessage Message(long mid, params string[] rcpts) =>
        new(mid, "a@sender.test", rcpts.Select((r, i) => new Recipient(i, r)).ToArray(), Body);

    [Fact]
    public async Task Plain_delivery_logs_connection_delivery_and_close()
    {
        var r = Receiver();
        var c = Connection(r, Plan(TlsSupport.None));
        var cr = await c.ConnectAsync();
        Assert.True(cr.Ready, cr.Error);
        Assert.False(c.IsTls);
        var res = await c.SendAsync(Message(5444, "b@example.com"));
        Assert.True(res.AllAccepted);
        Assert.True(res.ConnectionUsable);
        await c.CloseAsync();

        var m = Assert.Single(r.Messages);
        Assert.False(m.Tls);
        Assert.Equal("gateway.test", m.Helo);
        Assert.Equal("a@sender.test", m.MailFrom);
        Assert.Equal(Body, m.Data); // byte-exact, dot-stuffing undone by the receiver
        Assert.Contains($"New SMTP DCID 834833 interface 127.0.0.1 address 127.0.0.1 port {r.Port}", Log);
        Assert.Contains("Delivery start DCID 834833 MID 5444 to RID [0]", Log);
        Assert.Contains("Message done DCID 834833 MID 5444 to RID [0]", Log);
        Assert.Contains("DCID 834833 close", Log);
        Assert.DoesNotContain(Log, l => l.Contains("TLS"));
    }

    [Fact]
    public async Task Starttls_success_logs_protocol_and_cipher_and_sends_sni()
    {
        var r = TlsReceiver();
        var c = Connection(r, Plan(TlsSupport.Preferred));
        var cr = await c.ConnectAsync();
        Assert.True(cr.Ready, cr.Error);
        Assert.True(c.IsTls);
        Assert.NotNull(cr.Tls);
        Assert.Contains(Log, l => Regex.IsMatch(l, @"^DCID 834833 TLS success protocol TLSv1\.[23] cipher TLS_[A-Z0-9_]+$"));
        var res = await c.SendAsync(Message(1, "b@example.com"));
        Assert.True(res.AllAccepted);
        var m = Assert.Single(r.Messages);
        Assert.True(m.Tls);
        Assert.Equal(Mx, m.Sni);
    }

    /// <summary>The DATA body is dot-stuffed by the gateway and sent past MailKit's filter: straight to the socket on a
    /// plaintext connection, through MailKit's stream under TLS. Either way a 100 KB body with "." lines at the read-chunk
    /// boundaries arrives byte-exact after the receiver unstuffs it, and the connection stays in step for a second one.</summary>
    [Theory]
    [InlineData(false)]
    [InlineData(true)]
    public async Task Large_bodies_with_leading_dots_arrive_exact_over_plaintext_and_tls(bool tls)
    {
        var body = new byte[100 * 1024];
        for (int i = 0; i < body.Length; i++) body[i] = (byte)('a' + i % 23);
        for (int at = 50; at < body.Length - 8; at += 700) Encoding.ASCII.GetBytes("\r\n.").CopyTo(body, at);
        foreach (int boundary in new[] { 1, 2, 3, 4, 5, 6 })
            Encoding.ASCII.GetBytes("\r\n..\r\n").CopyTo(body, boundary * OutboundBody.ChunkSize - 2);
        Encoding.ASCII.GetBytes("\r\n").CopyTo(body, body.Length - 2);
        var r = tls ? TlsReceiver() : Receiver();
        var c = Connection(r, Plan(tls ? TlsSupport.Preferred : TlsSupport.None));
        Assert.True((await c.ConnectAsync()).Ready);
        Assert.Equal(tls, c.IsTls);
        for (int mid = 1; mid <= 2; mid++)
            Assert.True((await c.SendAsync(new OutboundMessage(mid, "a@sender.test", [new Recipient(0, "b@example.com")], body))).AllAccepted);
        await c.CloseAsync();
        Assert.Equal(2, r.Messages.Count);
        Assert.All(r.Messages, m => Assert.Equal(body, m.Data));
    }

    [Fact]
    public async Task Preferred_without_starttls_falls_back_to_plain()
    {
        var r = Receiver();
        var c = Connection(r, Plan(TlsSupport.Preferred));
        Assert.True((await c.ConnectAsync()).Ready);
        Assert.False(c.IsTls);
        Assert.True((await c.SendAsync(Message(2, "b@example.com"))).AllAccepted);
    }

    [Fact]
    public async Task Preferred_starttls_refused_before_220_continues_in_the_clear()
    {
        var r = TlsReceiver().ReplyAt(SmtpPhase.StartTls, "454 4.7.0 TLS not available due to temporary reason");
        var c = Connection(r, Plan(TlsSupport.Preferred, sts: MtaStsMode.Testing));
        var cr = await c.ConnectAsync();
        Assert.True(cr.Ready, cr.Error);
        Assert.False(c.IsTls);
        Assert.Contains("starttls-not-supported", c.Reports);
        Assert.True((await c.SendAsync(Message(3, "b@example.com"))).AllAccepted);
        Assert.Equal(2, r.TotalSessions);
    }

    [Fact]
    public async Task Required_without_starttls_defers_with_the_vendor_line()
    {
        var r = Receiver();
        var c = Connection(r, Plan(TlsSupport.Required), dcid: 831556);
        var cr = await c.ConnectAsync();
        Assert.Equal(ConnectStatus.Transient, cr.Status);
        Assert.Equal(ConnectFailure.StartTlsUnavailable, cr.Failure);
        Assert.Equal("4.7.5", cr.EnhancedStatus);
        Assert.Contains("DCID 831556 TLS was required but could not be successfully negotiated", Log);
        Assert.Empty(r.Messages);
        var res = await c.SendAsync(Message(4, "b@example.com"));
        Assert.All(res.Recipients, x => Assert.Equal(RecipientStatus.Transient, x.Status));
    }

    [Fact]
    public async Task RequiredVerify_wrong_name_defers_with_verify_error()
    {
        var r = TlsReceiver("mx.other-provider.net");
        var c = Connection(r, Plan(TlsSupport.RequiredVerify), dcid: 831556);
        var cr = await c.ConnectAsync();
        Assert.Equal(ConnectStatus.Transient, cr.Status);
        Assert.Equal(ConnectFailure.Verification, cr.Failure);
        Assert.Contains("DCID 831556 TLS deferring: verify error: peer cert does not match domain", Log);
        Assert.Contains("DCID 831556 TLS was required but could not be successfully negotiated", Log);
        Assert.Empty(r.Messages);
    }

    [Fact]
    public async Task RequiredVerify_untrusted_certificate_defers_with_issuer_error()
    {
        var r = Receiver(new TestSmtpReceiverOptions { Certificate = TestCertificateAuthority.SelfSigned(Domain) });
        var c = Connection(r, Plan(TlsSupport.RequiredVerify), dcid: 12);
        var cr = await c.ConnectAsync();
        Assert.Equal(ConnectFailure.Verification, cr.Failure);
        Assert.Contains("DCID 12 TLS deferring: verify error: self signed certificate", Log);
    }

    [Fact]
    public async Task Hosted_verify_accepts_a_certificate_naming_the_mx_host()
    {
        var r = TlsReceiver(Mx);
        var plain = Connection(r, Plan(TlsSupport.RequiredVerify, domain: "customer.example"), dcid: 20);
        Assert.Equal(ConnectFailure.Verification, (await plain.ConnectAsync()).Failure);
        var hosted = Connection(r, Plan(TlsSupport.RequiredVerifyHostedDomains, domain: "customer.example"), dcid: 21);
        var cr = await hosted.ConnectAsync();
        Assert.True(cr.Ready, cr.Error);
        Assert.All(cr.Checks, ch => Assert.True(ch.Ok));
        Assert.True((await hosted.SendAsync(Message(5, "b@customer.example"))).AllAccepted);
    }

    [Fact]
    public async Task PreferredVerify_failure_is_reported_not_enforced()
    {
        var r = TlsReceiver("mx.other-provider.net");
        var c = Connection(r, Plan(TlsSupport.PreferredVerify), dcid: 30);
        var cr = await c.ConnectAsync();
        Assert.True(cr.Ready, cr.Error);
        Assert.True(c.IsTls);
        Assert.Contains("certificate-host-mismatch", cr.Reports);
        Assert.Contains(Log, l => l.StartsWith("DCID 30 TLS verify error (not enforced", StringComparison.Ordinal));
    }

    [Fact]
    public async Task MtaSts_enforce_verifies_the_mx_host_over_tls12_or_newer()
    {
        var r = TlsReceiver(Mx);
        var c = Connection(r, Plan(TlsSupport.Preferred, sts: MtaStsMode.Enforce));
        var cr = await c.ConnectAsync();
        Assert.True(cr.Ready, cr.Error);
        Assert.Matches("^TLSv1\\.[23]$", cr.Tls!.Protocol);
        Assert.Contains(cr.Checks, ch => ch.Check.Source == SecuritySource.MtaSts && ch.Ok);
    }

    [Fact]
    public async Task Dane_ee_accepts_a_self_signed_certificate_and_rejects_another()
    {
        var cert = TestCertificateAuthority.SelfSigned("anything.invalid");
        var r = Receiver(new TestSmtpReceiverOptions { Certificate = cert });
        var good = TlsaLookup.FromAnswer(new DnsAnswer<TlsaRecord>(DnsOutcome.Ok, new[] { DaneVerifier.RecordFor(cert, 3, 1, 1) }, true));
        var c = Connection(r, Plan(TlsSupport.Preferred, DaneSupport.Mandatory, MtaStsMode.Enforce, good), dcid: 40);
        var cr = await c.ConnectAsync();
        Assert.True(cr.Ready, cr.Error);
        Assert.Equal(CheckKind.Dane, Assert.Single(cr.Checks).Check.Kind);

        using var other = TestCertificateAuthority.SelfSigned("anything.invalid");
        var bad = TlsaLookup.FromAnswer(new DnsAnswer<TlsaRecord>(DnsOutcome.Ok, new[] { DaneVerifier.RecordFor(other, 3, 1, 1) }, true));
        var c2 = Connection(r, Plan(TlsSupport.Preferred, DaneSupport.Opportunistic, MtaStsMode.Enforce, bad), dcid: 41);
        var cr2 = await c2.ConnectAsync();
        Assert.Equal(ConnectFailure.Verification, cr2.Failure);
        Assert.Contains($"DCID 41 TLS deferring: verify error: {DaneVerifier.NoMatch}", Log);
    }

    [Fact]
    public async Task Partial_recipient_success()
    {
        var r = Receiver().RejectRecipient("gone@example.com").RejectRecipient("full@example.com", "452 4.2.2 mailbox full");
        var c = Connection(r, Plan(TlsSupport.None));
        Assert.True((await c.ConnectAsync()).Ready);
        var msg = new OutboundMessage(77, "a@sender.test",
            new[] { new Recipient(0, "ok@example.com"), new Recipient(1, "gone@example.com"), new Recipient(2, "full@example.com") }, Body);
        var res = await c.SendAsync(msg);
        Assert.Equal(RecipientStatus.Accepted, res.Recipients[0].Status);
        Assert.Equal(RecipientStatus.Permanent, res.Recipients[1].Status);
        Assert.Equal(550, res.Recipients[1].Reply.Code);
        Assert.Equal("5.1.1", res.Recipients[1].Reply.Enhanced?.ToString());
        Assert.Equal(RecipientStatus.Transient, res.Recipients[2].Status);
        Assert.Equal("('452', ['4.2.2 mailbox full'])", res.Recipients[2].Reply.ToString());
        Assert.True(res.ConnectionUsable);
        Assert.Equal(new[] { "ok@example.com" }, Assert.Single(r.Messages).Recipients.Select(x => x.Address));
        Assert.Contains("Delivery start DCID 834833 MID 77 to RID [0, 1, 2]", Log);
        Assert.Contains("Message done DCID 834833 MID 77 to RID [0]", Log);
    }

    [Fact]
    public async Task No_recipient_accepted_keeps_the_connection()
    {
        var r = Receiver().RejectRecipient("x@example.com");
        var c = Connection(r, Plan(TlsSupport.None));
        Assert.True((await c.ConnectAsync()).Ready);
        var res = await c.SendAsync(Message(8, "x@example.com"));
        Assert.Equal(RecipientStatus.Permanent, Assert.Single(res.Recipients).Status);
        Assert.Null(res.DataReply);
        Assert.True(res.ConnectionUsable);
        Assert.True((await c.SendAsync(Message(9, "y@example.com"))).AllAccepted);
    }

    [Fact]
    public async Task Mail_from_refused_decides_for_every_recipient()
    {
        var r = Receiver().ReplyAt(SmtpPhase.Mail, "553 5.7.1 sender rejected");
        var c = Connection(r, Plan(TlsSupport.None));
        Assert.True((await c.ConnectAsync()).Ready);
        var res = await c.SendAsync(Message(10, "a@example.com", "b@example.com"));
        Assert.All(res.Recipients, x => Assert.Equal(553, x.Reply.Code));
        Assert.All(res.Recipients, x => Assert.Equal(RecipientStatus.Permanent, x.Status));
    }

    [Fact]
    public async Task Reply_421_at_mail_makes_everything_transient_and_closes()
    {
        var r = Receiver().ReplyAt(SmtpPhase.Mail, "421 4.3.2 try again later");
        var c = Connection(r, Plan(TlsSupport.None));
        Assert.True((await c.ConnectAsync()).Ready);
        var res = await c.SendAsync(Message(11, "a@example.com", "b@example.com"));
        Assert.All(res.Recipients, x => Assert.Equal(RecipientStatus.Transient, x.Status));
        Assert.False(res.ConnectionUsable);
        Assert.False(c.IsConnected);
    }

    [Fact]
    public async Task Reply_421_at_banner_is_a_transient_connect_failure()
    {
        var r = Receiver().ReplyAt(SmtpPhase.Banner, "421 4.3.2 too busy");
        var c = Connection(r, Plan(TlsSupport.None));
        var cr = await c.ConnectAsync();
        Assert.Equal(ConnectStatus.Transient, cr.Status);
        Assert.Equal(ConnectFailure.Rejected, cr.Failure);
        Assert.Equal(421, cr.Reply!.Code);
    }

    [Fact]
    public async Task Reply_554_at_banner_is_permanent_for_this_host()
    {
        var r = Receiver().ReplyAt(SmtpPhase.Banner, "554 5.7.1 go away");
        var cr = await Connection(r, Plan(TlsSupport.None)).ConnectAsync();
        Assert.Equal(ConnectStatus.Permanent, cr.Status);
        Assert.Equal("5.7.1", cr.EnhancedStatus);
    }

    [Fact]
    public async Task Reply_421_after_data_is_transient_and_closes()
    {
        var r = Receiver().ReplyAt(SmtpPhase.DataEnd, "421 4.3.0 shutting down");
        var c = Connection(r, Plan(TlsSupport.None));
        Assert.True((await c.ConnectAsync()).Ready);
        var res = await c.SendAsync(Message(12, "a@example.com"));
        Assert.Equal(RecipientStatus.Transient, Assert.Single(res.Recipients).Status);
        Assert.False(res.ConnectionUsable);
        Assert.Empty(r.Messages);
    }

    [Fact]
    public async Task Permanent_data_reply_fails_accepted_recipients()
    {
        var r = Receiver().ReplyAt(SmtpPhase.DataEnd, "554 5.6.0 content rejected").RejectRecipient("gone@example.com");
        var c = Connection(r, Plan(TlsSupport.None));
        Assert.True((await c.ConnectAsync()).Ready);
        var res = await c.SendAsync(Message(13, "a@example.com", "gone@example.com"));
        Assert.Equal(554, res.Recipients[0].Reply.Code);
        Assert.Equal(550, res.Recipients[1].Reply.Code);
        Assert.All(res.Recipients, x => Assert.Equal(RecipientStatus.Permanent, x.Status));
        Assert.True(res.ConnectionUsable);
    }

    [Fact]
    public async Task Several_messages_on_one_connection_need_no_rset_after_a_completed_transaction()
    {
        // RFC 5321 §4.1.1.4: completing DATA clears the server's buffers; an RSET per message would be a round trip each.
        var r = TlsReceiver();
        var c = Connection(r, Plan(TlsSupport.Required));
        Assert.True((await c.ConnectAsync()).Ready);
        for (int i = 0; i < 3; i++)
            Assert.True((await c.SendAsync(Message(100 + i, $"r{i}@example.com"))).AllAccepted);
        await c.CloseAsync();
        Assert.Equal(3, c.MessagesSent);
        Assert.Equal(1, r.TotalSessions);
        Assert.Equal(3, r.MaxMessagesPerConnection);
        var session = Assert.Single(r.Sessions);
        Assert.Equal(3, session.Commands.Count(x => x.StartsWith("MAIL ", StringComparison.Ordinal)));
        Assert.DoesNotContain("RSET", session.Commands);
        Assert.Contains("QUIT", session.Commands);
        Assert.All(r.Messages, m => Assert.True(m.Tls));
    }

    [Fact]
    public async Task A_refused_transaction_is_reset_once_and_the_connection_carries_the_next_messages()
    {
        int dataEnds = 0;
        var r = Receiver();
        r.Script = (phase, _, _) => phase == SmtpPhase.DataEnd && Interlocked.Increment(ref dataEnds) == 2 ? "554 5.6.0 content rejected" : null;
        var c = Connection(r, Plan(TlsSupport.None));
        Assert.True((await c.ConnectAsync()).Ready);
        Assert.True((await c.SendAsync(Message(200, "a@example.com"))).AllAccepted);
        var refused = await c.SendAsync(Message(201, "b@example.com"));
        Assert.Equal(RecipientStatus.Permanent, Assert.Single(refused.Recipients).Status);
        Assert.True(refused.ConnectionUsable);
        Assert.True((await c.SendAsync(Message(202, "c@example.com"))).AllAccepted);
        Assert.True((await c.SendAsync(Message(203, "d@example.com"))).AllAccepted);
        await c.CloseAsync();
        // RSET only between the refused transaction and the next one (MailKit sends one of its own there too).
        var verbs = Assert.Single(r.Sessions).Commands.Select(x => x.Split(' ')[0]).Where(v => v is "MAIL" or "RSET").ToArray();
        int second = Array.IndexOf(verbs, "MAIL", 1), third = Array.IndexOf(verbs, "MAIL", second + 1);
        Assert.Equal(4, verbs.Count(v => v == "MAIL"));
        Assert.NotEmpty(verbs[(second + 1)..third]);
        Assert.All(verbs[(second + 1)..third], v => Assert.Equal("RSET", v));
        Assert.Equal(third - second - 1, verbs.Count(v => v == "RSET"));
        Assert.Equal(["a@example.com", "c@example.com", "d@example.com"], r.Messages.Select(m => m.Recipients[0].Address));
    }

    [Fact]
    public async Task A_reused_connection_the_server_closes_at_mail_defers_the_message()
    {
        // No RSET probes the connection first now: a server going away answers (or drops) the MAIL of the next message,
        // which must come back transient on an unusable connection, never as a permanent failure.
        int mails = 0;
        var r = Receiver();
        r.Script = (phase, _, _) => phase == SmtpPhase.Mail && Interlocked.Increment(ref mails) == 2 ? "421 4.3.2 shutting down" : null;
        var c = Connection(r, Plan(TlsSupport.None));
        Assert.True((await c.ConnectAsync()).Ready);
        Assert.True((await c.SendAsync(Message(300, "a@example.com"))).AllAccepted);
        var res = await c.SendAsync(Message(301, "b@example.com"));
        var rcpt = Assert.Single(res.Recipients);
        Assert.Equal(RecipientStatus.Transient, rcpt.Status);
        Assert.Equal(421, rcpt.Reply.Code);
        Assert.False(res.ConnectionUsable);
        Assert.Single(r.Messages);
    }

    [Fact]
    public async Task Dsn_parameters_and_null_reverse_path()
    {
        var r = Receiver();
        var c = Connection(r, Plan(TlsSupport.None));
        Assert.True((await c.ConnectAsync()).Ready);
        var msg = new OutboundMessage(14, "",
            new[] { new Recipient(0, "a@example.com", DsnNotify.Failure | DsnNotify.Delay), new Recipient(1, "b@example.com", DsnNotify.Never) },
            Body, EnvId: "env+1", Ret: DsnRet.Headers);
        Assert.True((await c.SendAsync(msg)).AllAccepted);
        var m = Assert.Single(r.Messages);
        Assert.Equal("", m.MailFrom);
        Assert.Contains("RET=HDRS", m.MailParameters);
        Assert.Contains("ENVID=env+2B1", m.MailParameters);
        Assert.Contains("NOTIFY=FAILURE,DELAY", m.Recipients[0].Parameters);
        Assert.Contains("NOTIFY=NEVER", m.Recipients[1].Parameters);
    }

    [Fact]
    public async Task Timeout_waiting_for_a_reply_is_transient()
    {
        var r = Receiver();
        r.HangAt = SmtpPhase.Rcpt;
        var c = Connection(r, Plan(TlsSupport.None), options: Options with { CommandTimeout = TimeSpan.FromSeconds(1), DataTimeout = TimeSpan.FromSeconds(1) });
        Assert.True((await c.ConnectAsync()).Ready);
        var res = await c.SendAsync(Message(15, "a@example.com"));
        var x = Assert.Single(res.Recipients);
        Assert.Equal(RecipientStatus.Transient, x.Status);
        Assert.True(x.Reply.IsNoReply);
        Assert.False(res.ConnectionUsable);
    }

    [Fact]
    public async Task Connection_refused_is_transient_and_logged()
    {
        var l = new TcpListener(IPAddress.Loopback, 0);
        l.Start();
        var port = ((IPEndPoint)l.LocalEndpoint).Port;
        l.Stop();
        var c = new OutboundConnection(new MxTarget(Mx, IPAddress.Loopback, port), Plan(TlsSupport.None), Options, _mailLog, 2804);
        _disposables.Add(c);
        var cr = await c.ConnectAsync();
        Assert.Equal(ConnectStatus.Transient, cr.Status);
        Assert.Equal(ConnectFailure.Network, cr.Failure);
        Assert.Contains(Log, x => x.StartsWith("Connection Error: connection refused DCID: 2804 IP: 127.0.0.1", StringComparison.Ordinal));
    }

    [Fact]
    public async Task Source_address_and_client_certificate()
    {
        var r = TlsReceiver();
        var client = TestLeafCertificates.Issue(_ca, "gateway.test");
        var c = Connection(r, Plan(TlsSupport.Required), dcid: 50,
            options: Options with { LocalAddress = IPAddress.Loopback, ClientCertificate = client });
        Assert.True((await c.ConnectAsync()).Ready);
        Assert.Equal(IPAddress.Loopback, c.LocalEndPoint!.Address);
        Assert.True((await c.SendAsync(Message(16, "a@example.com"))).AllAccepted);
        Assert.True(Assert.Single(r.Messages).ClientCertificatePresented);
    }

    [Fact]
    public async Task Message_larger_than_size_limit_fails_permanently_without_sending()
    {
        var r = Receiver(new TestSmtpReceiverOptions { MaxSize = 10 });
        var c = Connection(r, Plan(TlsSupport.None));
        Assert.True((await c.ConnectAsync()).Ready);
        var res = await c.SendAsync(Message(17, "a@example.com"));
        var x = Assert.Single(res.Recipients);
        Assert.Equal(RecipientStatus.Permanent, x.Status);
        Assert.Equal("5.3.4", x.Reply.Enhanced?.ToString());
        Assert.True(res.ConnectionUsable);
    }

    [Fact]
    public void Skipped_plan_cannot_be_connected()
    {
        var skip = SecurityPlanner.Plan(new SecurityContext(Domain, Mx, TlsSupport.Preferred, MtaSts: MtaStsMode.Enforce, MxMatchesPolicy: false));
        Assert.Throws<ArgumentException>(() => new OutboundConnection(new MxTarget(Mx, IPAddress.Loopback, 25), skip, Options, _mailLog, 1));
    }

    [Fact]
    public void Reply_forms()
    {
        var reply = SmtpReply.FromWire(550, "5.1.1 no such user\nsecond line");
        Assert.Equal("5.1.1", reply.Enhanced?.ToString());
        Assert.Equal("('550', ['5.1.1 no such user', 'second line'])", reply.ToString());
        Assert.Equal("550 5.1.1 no such user second line", reply.DiagnosticText);
        var local = SmtpReply.Local("4.4.2", "timeout");
        Assert.True(local.IsTransient);
        Assert.StartsWith("('000'", local.ToString());
        Assert.True(SmtpReply.Local("5.3.4", "too big").IsPermanent);
        // A broken server's non-SMTP code is kept as text, classed transient (retried), never thrown.
        var odd = SmtpReply.FromWire(999, "what");
        Assert.True(odd.IsNoReply && odd.IsTransient);
        Assert.Equal("999 what", odd.Text);
        Assert.Equal("a+2Bb+3Dc+20", OutboundConnection.XText("a+b=c "));
    }
}
