using System.Net;
using System.Net.Security;
using System.Security.Cryptography.X509Certificates;
using System.Text;
using MailKit.Net.Smtp;
using MailKit.Security;
using MimeKit;
using MtaSts.Actors.TestInfra.Certificates;
using MtaSts.Actors.TestInfra.Smtp;

namespace MtaSts.Actors.Smtp.Tests.Intake;

public sealed class IntakeTlsAuthTests : IDisposable
{
    private readonly TestCertificateAuthority _ca = new();
    private readonly X509Certificate2 _serverCert;

    // TestLeafCertificates signs the RSA leaf with an explicit generator (the CA root is ECDSA).
    public IntakeTlsAuthTests() => _serverCert = TestLeafCertificates.Issue(_ca, "mx.test");

    public void Dispose()
    {
        _serverCert.Dispose();
        _ca.Dispose();
    }

    private SmtpListenerOptionsFactory Tls(bool auth, bool loopbackRelays) => o => o with
    {
        Certificate = _serverCert,
        AuthUsers = auth ? new Dictionary<string, string> { ["alice"] = "s3cret pass", ["bob"] = "hunter2" } : null,
        RelayNetworks = loopbackRelays ? o.RelayNetworks : [IPNetwork.Parse("192.0.2.0/24")],
    };

    private delegate MtaSts.Actors.Smtp.Intake.SmtpListenerOptions SmtpListenerOptionsFactory(MtaSts.Actors.Smtp.Intake.SmtpListenerOptions o);

    private bool TrustTestCa(object sender, X509Certificate? certificate, X509Chain? chain, SslPolicyErrors errors)
    {
        if (certificate is null) return false;
        using var c = new X509Chain();
        c.ChainPolicy.TrustMode = X509ChainTrustMode.CustomRootTrust;
        c.ChainPolicy.CustomTrustStore.Add(_ca.Root);
        c.ChainPolicy.RevocationMode = X509RevocationMode.NoCheck;
        return c.Build(new X509Certificate2(certificate));
    }

    private static MimeMessage Message(string to = "rcpt@example.com", string text = "Hello from MailKit.")
    {
        var m = new MimeMessage();
        m.From.Add(MailboxAddress.Parse("app@example.org"));
        m.To.Add(MailboxAddress.Parse(to));
        m.Cc.Add(MailboxAddress.Parse("second@example.net"));
        m.Subject = "intake test";
        m.Body = new TextPart("plain") { Text = text };
        return m;
    }

    private SmtpClient NewClient() => new()
    {
        ServerCertificateValidationCallback = TrustTestCa,
        CheckCertificateRevocation = false,
        Timeout = (int)IntakeHarness.Generous.TotalMilliseconds,
    };

    [Fact]
    public async Task MailKit_plain_loopback_happy_path()
    {
        await using var h = await new IntakeHarness().StartAsync();
        using var client = NewClient();
        await client.ConnectAsync("127.0.0.1", h.Port, SecureSocketOptions.None);
        Assert.True(client.Capabilities.HasFlag(SmtpCapabilities.Pipelining));
        Assert.True(client.Capabilities.HasFlag(SmtpCapabilities.Dsn));
        var response = await client.SendAsync(Message());
        Assert.StartsWith("2.0.0 Ok: queued as", response);
        await client.DisconnectAsync(quit: true);

        var m = await h.NextHandedOffAsync();
        Assert.Equal(["rcpt@example.com", "second@example.net"], m.Envelope.Recipients.Select(r => r.Address));
        var body = await h.BodyTextAsync(m.Mid);
        Assert.Contains("Subject: intake test\r\n", body);
        Assert.Contains("Hello from MailKit.", body);
        Assert.Contains(" with ESMTP id ", body);
    }

    [Fact]
    public async Task MailKit_starttls_and_auth_plain_then_send()
    {
        await using var h = await new IntakeHarness(o => Tls(auth: true, loopbackRelays: false)(o)).StartAsync();
        using var client = NewClient();
        await client.ConnectAsync("127.0.0.1", h.Port, SecureSocketOptions.StartTls);
        Assert.True(client.IsSecure);
        Assert.Contains("PLAIN", client.AuthenticationMechanisms);
        Assert.Contains("LOGIN", client.AuthenticationMechanisms);
        await client.AuthenticateAsync(new SaslMechanismPlain("alice", "s3cret pass"));
        await client.SendAsync(Message());
        await client.DisconnectAsync(quit: true);

        var m = await h.NextHandedOffAsync();
        Assert.Contains(" with ESMTPSA id ", await h.BodyTextAsync(m.Mid));
        var tls = await h.WaitForLogAsync(e => e.Event == "icid_tls_success");
        Assert.Matches(@"^ICID \d+ TLS success protocol TLSv1\.[23] cipher TLS_\w+$", tls.Text);
        Assert.Contains(h.LogTexts, t => t.EndsWith("AUTH success user alice mechanism PLAIN", StringComparison.Ordinal));
    }

    [Fact]
    public async Task MailKit_auth_login_and_wrong_password()
    {
        await using var h = await new IntakeHarness(o => Tls(auth: true, loopbackRelays: false)(o)).StartAsync();
        using (var client = NewClient())
        {
            await client.ConnectAsync("127.0.0.1", h.Port, SecureSocketOptions.StartTls);
            await Assert.ThrowsAsync<AuthenticationException>(() => client.AuthenticateAsync(new SaslMechanismLogin("bob", "wrong")));
            await client.AuthenticateAsync(new SaslMechanismLogin("bob", "hunter2"));
            await client.SendAsync(Message());
            await client.DisconnectAsync(quit: true);
        }
        await h.NextHandedOffAsync();
        Assert.Contains(h.LogTexts, t => t.EndsWith("AUTH failed user bob mechanism LOGIN", StringComparison.Ordinal));
    }

    [Fact]
    public async Task Unauthenticated_stranger_gets_530_and_auth_is_not_offered_without_tls()
    {
        await using var h = await new IntakeHarness(o => Tls(auth: true, loopbackRelays: false)(o)).StartAsync();
        await using var c = await h.ConnectAsync();
        var ehlo = await c.CommandAsync("EHLO stranger.test");
        Assert.Contains("250-STARTTLS", ehlo.Lines);
        Assert.DoesNotContain(ehlo.Lines, l => l.Contains("AUTH", StringComparison.Ordinal));
        Assert.Equal("538 5.7.11 Encryption required for requested authentication mechanism", (await c.CommandAsync("AUTH PLAIN AGFsaWNlAHMzY3JldCBwYXNz")).Lines[0]);
        Assert.Equal("530 5.7.0 Authentication required", (await c.CommandAsync("MAIL FROM:<a@x.test>")).Lines[0]);
    }

    [Fact]
    public async Task Stranger_may_start_a_transaction_when_auth_is_not_required_but_cannot_relay()
    {
        await using var h = await new IntakeHarness(o => Tls(auth: true, loopbackRelays: false)(o) with { RequireAuthForNonRelay = false }).StartAsync();
        await using var c = await h.ConnectAsync();
        await c.CommandAsync("EHLO stranger.test");
        Assert.Equal(250, (await c.CommandAsync("MAIL FROM:<a@x.test>")).Code);
        Assert.Equal("530 5.7.0 Authentication required", (await c.CommandAsync("RCPT TO:<b@y.test>")).Lines[0]);
    }

    [Fact]
    public async Task Starttls_discards_pipelined_plaintext_and_resets_state()
    {
        await using var h = await new IntakeHarness(o => Tls(auth: true, loopbackRelays: true)(o)).StartAsync();
        await using var c = await h.ConnectAsync();
        await c.CommandAsync("EHLO client.test");
        Assert.Equal("501 5.5.4 Syntax: STARTTLS (no parameters allowed)", (await c.CommandAsync("STARTTLS now")).Lines[0]);
        // CVE-2011-0411: a MAIL injected behind STARTTLS in the same packet must not survive the handshake.
        await c.SendAsync("STARTTLS\r\nMAIL FROM:<injected@x.test>\r\n");
        Assert.Equal("220 2.0.0 Ready to start TLS", (await c.ReadReplyAsync()).Lines[0]);
        var ssl = new SslStream(c.Stream, leaveInnerStreamOpen: false, TrustTestCa);
        using (var cts = new CancellationTokenSource(IntakeHarness.Generous))
            await ssl.AuthenticateAsClientAsync(new SslClientAuthenticationOptions { TargetHost = "mx.test" }, cts.Token);
        c.Upgrade(ssl);
        Assert.Equal("503 5.5.1 Send HELO/EHLO first", (await c.CommandAsync("MAIL FROM:<a@x.test>")).Lines[0]); // EHLO forgotten (RFC 3207 §4.2)
        var ehlo = await c.CommandAsync("EHLO client.test");
        Assert.DoesNotContain("250-STARTTLS", ehlo.Lines);
        Assert.Contains("250-AUTH PLAIN LOGIN", ehlo.Lines);
        Assert.Equal("503 5.5.1 Need MAIL command", (await c.CommandAsync("RCPT TO:<b@y.test>")).Lines[0]);
        Assert.Equal("503 5.5.1 TLS already active", (await c.CommandAsync("STARTTLS")).Lines[0]);
        // AUTH PLAIN with a 334 round trip, then a cancelled LOGIN.
        Assert.Equal("334 ", (await c.CommandAsync("AUTH PLAIN")).Lines[0]);
        Assert.Equal("501 5.5.2 Cannot decode response", (await c.CommandAsync("not base64!")).Lines[0]);
        Assert.Equal("334 VXNlcm5hbWU6", (await c.CommandAsync("AUTH LOGIN")).Lines[0]);
        Assert.Equal("501 5.7.0 Authentication cancelled", (await c.CommandAsync("*")).Lines[0]);
        Assert.Equal("504 5.5.4 Unrecognized authentication type", (await c.CommandAsync("AUTH CRAM-MD5")).Lines[0]);
        var plain = Convert.ToBase64String(Encoding.UTF8.GetBytes("\0alice\0s3cret pass"));
        Assert.Equal("235 2.7.0 Authentication successful", (await c.CommandAsync("AUTH PLAIN " + plain)).Lines[0]);
        Assert.Equal("503 5.5.1 Already authenticated", (await c.CommandAsync("AUTH PLAIN " + plain)).Lines[0]);
        Assert.Equal(221, (await c.CommandAsync("QUIT")).Code);
        await h.WaitForLogAsync(e => e.Event == "icid_starttls_injection");
    }

    [Fact]
    public async Task Failed_tls_handshake_is_logged_and_closes()
    {
        await using var h = await new IntakeHarness(o => Tls(auth: false, loopbackRelays: true)(o)).StartAsync();
        await using var c = await h.ConnectAsync();
        await c.CommandAsync("EHLO client.test");
        Assert.Equal(220, (await c.CommandAsync("STARTTLS")).Code);
        await c.SendAsync("this is not a TLS ClientHello\r\n");
        Assert.True(await c.IsClosedAsync());
        var failed = await h.WaitForLogAsync(e => e.Event == "icid_tls_failed");
        Assert.StartsWith("ICID ", failed.Text);
        Assert.Contains(" TLS failed: ", failed.Text);
    }

    private async Task<RawSmtpClient> TlsSessionAsync(IntakeHarness h, IPAddress from)
    {
        var c = await h.ConnectAsync(from: from);
        await c.CommandAsync("EHLO client.test");
        Assert.Equal(220, (await c.CommandAsync("STARTTLS")).Code);
        var ssl = new SslStream(c.Stream, leaveInnerStreamOpen: false, TrustTestCa);
        using (var cts = new CancellationTokenSource(IntakeHarness.Generous))
            await ssl.AuthenticateAsClientAsync(new SslClientAuthenticationOptions { TargetHost = "mx.test" }, cts.Token);
        c.Upgrade(ssl);
        await c.CommandAsync("EHLO client.test");
        return c;
    }

    private static string Plain(string user, string password) =>
        "AUTH PLAIN " + Convert.ToBase64String(Encoding.UTF8.GetBytes($"\0{user}\0{password}"));

    [Fact]
    public async Task Auth_brute_force_is_slowed_then_locked_out_per_address()
    {
        // Defect 3: 4,600 guesses per second from one address, no delay, no lockout.
        await using var h = await new IntakeHarness(o => Tls(auth: true, loopbackRelays: true)(o) with
        {
            AuthThrottle = new() { BaseDelay = TimeSpan.FromMilliseconds(200), MaxDelay = TimeSpan.FromMilliseconds(400), MaxFailuresPerAddress = 6, MaxFailuresPerUser = 100 },
            ClientLimits = MtaSts.Actors.Smtp.Intake.Limits.ClientLimits.Default with { SoftErrorLimit = 0 },
            RelayClientLimits = MtaSts.Actors.Smtp.Intake.Limits.ClientLimits.RelayDefault with { SoftErrorLimit = 0 },
        }).StartAsync();
        var from = IPAddress.Parse("127.0.0.2");
        int checkedGuesses = 0, lockedReplies = 0;
        var sw = System.Diagnostics.Stopwatch.StartNew();
        await Task.WhenAll(Enumerable.Range(0, 4).Select(async s =>
        {
            await using var c = await TlsSessionAsync(h, from);
            for (int i = 0; i < 5; i++)
            {
                var r = await c.CommandAsync(Plain("alice", $"guess{s}-{i}"));
                if (r.Code == 535) Interlocked.Increment(ref checkedGuesses);
                else if (r.Code == 454) Interlocked.Increment(ref lockedReplies);
                else Assert.Fail(r.ToString());
            }
        }));
        // Then the address is locked out. Guesses already past the lockout check when the 6th failure was recorded
        // still get their 535: at most one per other concurrent session.
        Assert.InRange(checkedGuesses, 6, 6 + 3);
        Assert.Equal(20 - checkedGuesses, lockedReplies);
        // Failures 2..6 wait 400 ms each before their 535 (in parallel sessions, so only a lower bound is certain).
        Assert.True(sw.Elapsed >= TimeSpan.FromMilliseconds(350), $"the failures were delayed ({sw.Elapsed})");
        // Locked out means locked out: the right password is not even checked (and not confirmed).
        await using var again = await TlsSessionAsync(h, from);
        Assert.Equal("454 4.7.0 Temporary authentication failure, try again later", (await again.CommandAsync(Plain("alice", "s3cret pass"))).Lines[0]);
        // Another address is not affected.
        await using var other = await TlsSessionAsync(h, IPAddress.Parse("127.0.0.3"));
        Assert.Equal(235, (await other.CommandAsync(Plain("alice", "s3cret pass"))).Code);
        var lockout = Assert.Single(h.Entries, e => e.Event == "icid_auth_lockout");
        Assert.Contains("address 127.0.0.2", lockout.Text);
    }

    [Theory]
    [InlineData("alice")]   // exists
    [InlineData("mallory")] // does not: same replies, same lockout (existence is never revealed)
    public async Task Auth_guesses_against_one_user_name_from_many_addresses_lock_that_name(string user)
    {
        await using var h = await new IntakeHarness(o => Tls(auth: true, loopbackRelays: true)(o) with
        {
            AuthThrottle = new() { BaseDelay = TimeSpan.FromMilliseconds(10), MaxDelay = TimeSpan.FromMilliseconds(10), MaxFailuresPerAddress = 100, MaxFailuresPerUser = 3 },
        }).StartAsync();
        for (int i = 2; i <= 4; i++)
        {
            await using var c = await TlsSessionAsync(h, IPAddress.Parse($"127.0.0.{i}"));
            Assert.Equal("535 5.7.8 Authentication credentials invalid", (await c.CommandAsync(Plain(user, "wrong"))).Lines[0]);
        }
        await using var fresh = await TlsSessionAsync(h, IPAddress.Parse("127.0.0.5"));
        Assert.Equal("454 4.7.0 Temporary authentication failure, try again later",
            (await fresh.CommandAsync(Plain(user, user == "alice" ? "s3cret pass" : "anything"))).Lines[0]);
        Assert.Equal(235, (await fresh.CommandAsync(Plain("bob", "hunter2"))).Code); // other names unaffected
        Assert.Contains(h.Entries, e => e.Event == "icid_auth_lockout" && e.Text.Contains($"user {user}"));
    }
}
