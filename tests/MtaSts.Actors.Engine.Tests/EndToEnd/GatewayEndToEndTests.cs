using MtaSts.Actors.TestInfra.Net;
using MtaSts.Actors.TestInfra.Smtp;

namespace MtaSts.Actors.Engine.Tests.EndToEnd;

/// <summary>
/// A real SMTP client submits to a real gateway, which delivers over real SMTP to loopback receivers that accept,
/// tempfail and permfail. Every accepted message must end delivered, deferred or bounced with a DSN.
/// </summary>
public sealed class GatewayEndToEndTests
{
    private static readonly TimeSpan Wait = TimeSpan.FromSeconds(60);

    [Fact]
    public async Task Accepted_mail_is_delivered_once_per_recipient_across_domains()
    {
        await using var mx = TestSmtpReceiver.Start(new TestSmtpReceiverOptions { OfferStartTls = false });
        await using var gw = await GatewayFixture.StartAsync(mx.Port);
        await gw.SendAsync("app@sender.test", ["a@one.test", "b@one.test", "c@two.test"], "multi");
        await gw.SendAsync("app@sender.test", ["d@three.test"], "single");

        var got = await gw.ReceivedAsync(mx, 3, Wait);
        await gw.WaitForLineAsync(l => l.Contains("Message finished MID") && l.Contains("done"), Wait, count: 2);
        var rcpts = got.SelectMany(m => m.Recipients.Select(r => r.Address)).OrderBy(x => x).ToArray();
        Assert.Equal(["a@one.test", "b@one.test", "c@two.test", "d@three.test"], rcpts);
        // one.test's two recipients travel in one transaction; the body is the submitted one.
        Assert.Contains(got, m => m.Recipients.Count == 2 && m.Text.Contains("Subject: multi"));
        Assert.Contains(gw.Lines, l => l.Contains("New SMTP ICID"));
        Assert.Contains(gw.Lines, l => l.Contains("queued for delivery"));
        Assert.Contains(gw.Lines, l => l.Contains("New SMTP DCID"));
        Assert.Contains(gw.Lines, l => l.Contains("Delivery start DCID"));
        await Task.Delay(300);
        Assert.Equal(3, mx.Messages.Count); // no duplicate deliveries
    }

    [Fact]
    public async Task Permanent_failure_bounces_a_dsn_to_the_sender_and_delivers_the_rest()
    {
        await using var mx = TestSmtpReceiver.Start(new TestSmtpReceiverOptions { OfferStartTls = false });
        mx.RejectRecipient("nobody@dest.test", "550 5.1.1 <nobody@dest.test>: no such user");
        await using var gw = await GatewayFixture.StartAsync(mx.Port);
        await gw.SendAsync("app@sender.test", ["nobody@dest.test", "ok@dest.test"], "partial");

        var got = await gw.ReceivedAsync(mx, 2, Wait);
        var delivered = Assert.Single(got, m => m.MailFrom.Length > 0);
        Assert.Equal("ok@dest.test", Assert.Single(delivered.Recipients).Address);
        var dsn = Assert.Single(got, m => m.MailFrom.Length == 0); // RFC 3464: null reverse-path
        Assert.Equal("app@sender.test", Assert.Single(dsn.Recipients).Address);
        Assert.Contains("multipart/report", dsn.Text);
        Assert.Contains("report-type=delivery-status", dsn.Text);
        Assert.Contains("Final-Recipient: rfc822; nobody@dest.test", dsn.Text);
        Assert.Contains("Status: 5.1.1", dsn.Text);
        Assert.Contains("Action: failed", dsn.Text);
    }

    [Fact]
    public async Task Bounce_of_a_null_sender_message_produces_no_dsn()
    {
        await using var mx = TestSmtpReceiver.Start(new TestSmtpReceiverOptions { OfferStartTls = false });
        mx.RejectRecipient("gone@dest.test");
        await using var gw = await GatewayFixture.StartAsync(mx.Port);
        await gw.SendAsync("", ["gone@dest.test"], "a bounce itself");
        await gw.WaitForLineAsync(l => l.Contains("Message finished MID"), Wait);
        await Task.Delay(1000);
        Assert.Empty(mx.Messages);
        // One "Message finished" line per message, also when its bounce is a double bounce (no DSN).
        Assert.Single(gw.Lines, l => l.Contains("Message finished MID"));
        Assert.Single(gw.Lines, l => l.Contains("Double bounce"));
    }

    [Fact]
    public async Task A_double_bounce_finishes_each_message_once()
    {
        // The original bounces, its DSN is refused by the sender's domain too: no third message, and each of the two
        // messages is finished exactly once in the log.
        await using var mx = TestSmtpReceiver.Start(new TestSmtpReceiverOptions { OfferStartTls = false });
        mx.RejectRecipient("nobody@dest.test");
        mx.RejectRecipient("app@sender.test");
        await using var gw = await GatewayFixture.StartAsync(mx.Port);
        await gw.SendAsync("app@sender.test", ["nobody@dest.test"], "bounces twice");
        await gw.WaitForLineAsync(l => l.Contains("Double bounce"), Wait);
        await gw.WaitForLineAsync(l => l.Contains("Message finished MID"), Wait, count: 2);
        await Task.Delay(1000);
        var finished = gw.Lines.Where(l => l.Contains("Message finished MID")).ToArray();
        Assert.Equal(2, finished.Length);
        Assert.Equal(2, finished.Distinct().Count());
        Assert.Single(gw.Lines, l => l.Contains("Double bounce"));
        Assert.Empty(mx.Messages);
    }

    [Fact]
    public async Task Temporary_failure_is_retried_and_then_delivered()
    {
        await using var mx = TestSmtpReceiver.Start(new TestSmtpReceiverOptions { OfferStartTls = false });
        var refusals = 0;
        mx.Script = (phase, _, _) => phase == SmtpPhase.Rcpt && Interlocked.Increment(ref refusals) <= 2
            ? "451 4.3.0 try again later" : null;
        await using var gw = await GatewayFixture.StartAsync(mx.Port);
        await gw.SendAsync("app@sender.test", ["later@dest.test"], "retry me");

        var got = await gw.ReceivedAsync(mx, 1, Wait);
        Assert.Equal("later@dest.test", Assert.Single(Assert.Single(got).Recipients).Address);
        Assert.True(refusals >= 3);
        Assert.Contains(gw.Lines, l => l.Contains("Delayed: DCID"));
    }

    [Fact]
    public async Task Deliver_now_retries_deferred_mail_before_its_next_attempt()
    {
        // An outage is over: the operator's "deliver now" (SIGUSR1 in `serve`) must not wait for the hour-long retry.
        await using var mx = TestSmtpReceiver.Start(new TestSmtpReceiverOptions { OfferStartTls = false });
        var refuse = 1;
        mx.Script = (phase, _, _) => phase == SmtpPhase.Rcpt && Volatile.Read(ref refuse) == 1 ? "451 4.3.0 down for maintenance" : null;
        await using var gw = await GatewayFixture.StartAsync(mx.Port,
            "mtasts.bounce-profiles.default { initial-retry-interval = 1h\n max-retry-interval = 2h }");
        await gw.SendAsync("app@sender.test", ["a@later.test"], "held");
        await gw.SendAsync("app@sender.test", ["b@other.test"], "held too");
        await gw.WaitForLineAsync(l => l.Contains("Delayed: DCID"), Wait, count: 2);
        Volatile.Write(ref refuse, 0);
        await Task.Delay(500);
        Assert.Empty(mx.Messages); // the next attempt is an hour away

        Assert.Equal(2, await gw.Gateway.DeliverNowAsync());
        var got = await gw.ReceivedAsync(mx, 2, Wait);
        Assert.Equal(["a@later.test", "b@other.test"], got.SelectMany(m => m.Recipients).Select(r => r.Address).Order());
        Assert.Contains(gw.Lines, l => l.Contains("Deliver now: 2 destinations"));
    }

    [Fact]
    public async Task Graceful_stop_waits_for_the_transaction_in_flight_so_nothing_is_sent_twice()
    {
        // The receiver holds its 250 for 1.5 s; the stop comes meanwhile. Stopping the actors first lost the outcome
        // (and the restart delivered the message again — seen as a flaky MtaStsCacheRestartTests).
        await using var mx = TestSmtpReceiver.Start(new TestSmtpReceiverOptions { OfferStartTls = false });
        var slow = 1;
        mx.Script = (phase, _, _) =>
        {
            if (phase == SmtpPhase.DataEnd && Volatile.Read(ref slow) == 1) Thread.Sleep(1500);
            return null;
        };
        await using var gw = await GatewayFixture.StartAsync(mx.Port);
        await gw.SendAsync("app@sender.test", ["once@slow.test"], "in flight at stop");
        await gw.WaitForLineAsync(l => l.Contains("Delivery start DCID"), Wait);
        await gw.StopAsync();
        Assert.Contains(gw.Lines, l => l.Contains("Message finished MID"));
        Volatile.Write(ref slow, 0);
        await gw.RestartAsync($"\"*\" = \"127.0.0.1:{mx.Port}\"", "");
        await Task.Delay(2000);
        Assert.Single(mx.Messages);
        Assert.Equal(0, gw.Gateway.Spool.Count);
    }

    [Fact]
    public async Task Mail_that_outlives_max_time_in_queue_bounces_with_a_failure_dsn()
    {
        await using var mx = TestSmtpReceiver.Start(new TestSmtpReceiverOptions { OfferStartTls = false });
        mx.Script = (phase, arg, _) => phase == SmtpPhase.Rcpt && arg.EndsWith("@slow.test", StringComparison.Ordinal)
            ? "452 4.2.2 mailbox full" : null;
        await using var gw = await GatewayFixture.StartAsync(mx.Port,
            "mtasts.bounce-profiles.default { max-time-in-queue = 3s }\nmtasts.destinations.default.bounce-profile = default");
        await gw.SendAsync("app@sender.test", ["full@slow.test"], "never fits");

        var got = await gw.ReceivedAsync(mx, 1, Wait);
        var dsn = Assert.Single(got);
        Assert.Equal("", dsn.MailFrom);
        Assert.Contains("Final-Recipient: rfc822; full@slow.test", dsn.Text);
        Assert.Contains("Action: failed", dsn.Text);
    }

    [Fact]
    public async Task Connection_limits_of_the_destination_are_respected()
    {
        await using var mx = TestSmtpReceiver.Start(new TestSmtpReceiverOptions { OfferStartTls = false });
        await using var gw = await GatewayFixture.StartAsync(mx.Port,
            "mtasts.destinations.default { max-concurrent-connections = 2\nmax-messages-per-connection = 3 }");
        var sends = Enumerable.Range(0, 30).Select(i => gw.SendAsync("app@sender.test", [$"u{i}@limits.test"], $"m{i}"));
        await Task.WhenAll(sends);

        await gw.ReceivedAsync(mx, 30, Wait);
        await gw.WaitForLineAsync(l => l.Contains("Message finished MID"), Wait, count: 30);
        // Concurrency as the gateway lived it (the receiver notices a closed session a little late): the log orders
        // "New SMTP DCID" (after connect) and "DCID n close" (after the socket is closed).
        var open = new HashSet<string>();
        var maxOpen = 0;
        foreach (var line in gw.Lines)
        {
            if (System.Text.RegularExpressions.Regex.Match(line, @"New SMTP DCID (\d+)") is { Success: true } n) open.Add(n.Groups[1].Value);
            else if (System.Text.RegularExpressions.Regex.Match(line, @"DCID (\d+) close") is { Success: true } c) open.Remove(c.Groups[1].Value);
            maxOpen = Math.Max(maxOpen, open.Count);
        }
        Assert.InRange(maxOpen, 1, 2);
        Assert.InRange(mx.MaxConcurrentSessions, 1, 3);
        Assert.InRange(mx.MaxMessagesPerConnection, 1, 3);
        Assert.True(mx.TotalSessions >= 10, $"30 messages at 3 per connection need ≥ 10 sessions, saw {mx.TotalSessions}");
    }

    [Fact]
    public async Task Profile_max_recipients_per_transaction_splits_the_rcpt_batches()
    {
        // The profile key (not a global value) decides: 5 recipients of one message at a domain whose profile says
        // 2 arrive as transactions of 2, 2 and 1; another domain on the default profile gets all 3 in one.
        await using var mx = TestSmtpReceiver.Start(new TestSmtpReceiverOptions { OfferStartTls = false });
        await using var gw = await GatewayFixture.StartAsync(mx.Port,
            "mtasts.destinations { \"batch.test\" { max-recipients-per-transaction = 2 } }");
        await gw.SendAsync("app@sender.test",
            ["a@batch.test", "b@batch.test", "c@batch.test", "d@batch.test", "e@batch.test", "x@other.test", "y@other.test", "z@other.test"],
            "batches");

        var got = await gw.ReceivedAsync(mx, 4, Wait);
        await gw.WaitForLineAsync(l => l.Contains("Message finished MID"), Wait);
        var batch = got.Where(m => m.Recipients[0].Address.EndsWith("@batch.test", StringComparison.Ordinal)).ToList();
        Assert.Equal([1, 2, 2], batch.Select(m => m.Recipients.Count).Order());
        Assert.Equal(["a@batch.test", "b@batch.test", "c@batch.test", "d@batch.test", "e@batch.test"],
            batch.SelectMany(m => m.Recipients.Select(r => r.Address)).Order());
        Assert.Equal(3, Assert.Single(got, m => m.Recipients[0].Address.EndsWith("@other.test", StringComparison.Ordinal)).Recipients.Count);
        await Task.Delay(300);
        Assert.Equal(4, mx.Messages.Count);
    }

    [Fact]
    public async Task Queued_mail_survives_a_restart_and_is_delivered_by_the_new_process()
    {
        var dataDir = Path.Combine(Path.GetTempPath(), "mtasts-e2e-restart-" + Guid.NewGuid().ToString("N"));
        // First life: the destination refuses connections (nothing listens on the port).
        var closedPort = LoopbackPort.Free();
        var gw = await GatewayFixture.StartAsync(closedPort, "", dataDir);
        await gw.SendAsync("app@sender.test", ["x@restart.test", "y@restart.test"], "survivor");
        await gw.WaitForLineAsync(l => l.Contains("Delayed: DCID"), Wait);
        await gw.StopAsync();

        // Second life: same data directory, the receiver is up.
        await using var mx = TestSmtpReceiver.Start(new TestSmtpReceiverOptions { OfferStartTls = false });
        await gw.RestartAsync($"\"*\" = \"127.0.0.1:{mx.Port}\"", "");
        await using (gw)
        {
            var got = await gw.ReceivedAsync(mx, 1, Wait);
            Assert.Equal(2, got.Sum(m => m.Recipients.Count));
            await gw.WaitForLineAsync(l => l.Contains("Message finished MID"), Wait);
        }
    }

    [Fact]
    public async Task A_profile_source_address_or_virtual_gateway_selects_the_outbound_source_ip()
    {
        await using var mx = TestSmtpReceiver.Start(new TestSmtpReceiverOptions { OfferStartTls = false });
        await using var gw = await GatewayFixture.StartAsync(mx.Port, """
            mtasts.virtual-gateways { "vg-bulk" = "127.0.0.3" }
            mtasts.destinations { "vg.test" { source-address = "vg-bulk" }
              "ip.test" { source-address = "127.0.0.2" } }
            """);
        await gw.SendAsync("app@sender.test", ["a@vg.test"], "via virtual gateway");
        await gw.SendAsync("app@sender.test", ["b@ip.test"], "via source ip");
        await gw.SendAsync("app@sender.test", ["c@plain.test"], "default");
        var got = await gw.ReceivedAsync(mx, 3, Wait);

        string SourceOf(string rcpt)
        {
            var m = Assert.Single(got, m => m.Recipients.Any(r => r.Address == rcpt));
            return mx.Sessions.Single(x => x.Id == m.SessionId).RemoteEndPoint.Address.ToString();
        }
        Assert.Equal("127.0.0.3", SourceOf("a@vg.test"));
        Assert.Equal("127.0.0.2", SourceOf("b@ip.test"));
        Assert.Equal("127.0.0.1", SourceOf("c@plain.test"));
    }

    [Fact]
    public async Task A_profile_client_certificate_is_presented_in_starttls()
    {
        using var ca = new MtaSts.Actors.TestInfra.Certificates.TestCertificateAuthority();
        var dir = Path.Combine(Path.GetTempPath(), "mtasts-clientcert-" + Guid.NewGuid().ToString("N"));
        Directory.CreateDirectory(dir);
        try
        {
            using var client = MtaSts.Actors.TestInfra.Smtp.TestLeafCertificates.Issue(ca, "gw.test.invalid");
            var certPath = Path.Combine(dir, "client.pem");
            File.WriteAllText(certPath, MtaSts.Actors.TestInfra.Certificates.TestCertificateAuthority.Pem(client));
            File.WriteAllText(Path.Combine(dir, "client.key"), MtaSts.Actors.TestInfra.Certificates.TestCertificateAuthority.KeyPem(client));
            using var server = MtaSts.Actors.TestInfra.Smtp.TestLeafCertificates.Issue(ca, "mx.test.invalid");
            await using var mx = TestSmtpReceiver.Start(new TestSmtpReceiverOptions { Certificate = server });
            await using var gw = await GatewayFixture.StartAsync(mx.Port, $$"""
                mtasts.destinations { "cert.test" { tls-support = preferred
                    client-certificate = "{{certPath.Replace("\\", "/")}}" }
                  "nocert.test" { tls-support = preferred } }
                """);
            await gw.SendAsync("app@sender.test", ["a@cert.test"], "with client cert");
            await gw.SendAsync("app@sender.test", ["b@nocert.test"], "without");
            var got = await gw.ReceivedAsync(mx, 2, Wait);
            var withCert = Assert.Single(got, m => m.Recipients.Any(r => r.Address == "a@cert.test"));
            var without = Assert.Single(got, m => m.Recipients.Any(r => r.Address == "b@nocert.test"));
            Assert.True(withCert.Tls);
            Assert.True(withCert.ClientCertificatePresented);
            Assert.False(without.ClientCertificatePresented);
        }
        finally
        {
            Directory.Delete(dir, true);
        }
    }
}
