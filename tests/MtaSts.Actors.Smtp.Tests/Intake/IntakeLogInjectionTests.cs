using System.Net.Security;
using System.Security.Cryptography.X509Certificates;
using System.Text;
using System.Text.Json;
using System.Text.RegularExpressions;
using MtaSts.Actors.Logging;
using MtaSts.Actors.TestInfra.Certificates;
using MtaSts.Actors.TestInfra.Smtp;

namespace MtaSts.Actors.Smtp.Tests.Intake;

/// <summary>Client-supplied values through the real listener into the text log: one event, one line, no terminal
/// escapes (MailLog.EscapeText).</summary>
public sealed class IntakeLogInjectionTests
{
    private const string Forged = "Mon Nov 23 10:00:00 2026 Info: forged";
    private static readonly Regex LineStart = new(@"^\w{3} \w{3} \d\d \d\d:\d\d:\d\d \d{4} (Debug|Info|Warning|Critical): ");

    /// <summary>Every text line starts with a timestamp and a level, one line per written event, and so does the JSON
    /// twin (each line parses). Call once the session is over (nothing else is writing).</summary>
    private static string[] AssertOneLinePerEvent(IntakeHarness h, StringWriter text, StringWriter json)
    {
        var lines = text.ToString().Split('\n', StringSplitOptions.RemoveEmptyEntries);
        var jsonLines = json.ToString().Split('\n', StringSplitOptions.RemoveEmptyEntries);
        var written = h.Entries.Count(e => e.Level >= MailLogLevel.Info); // observers also see the debug events
        Assert.Equal(written, lines.Length);
        Assert.Equal(written, jsonLines.Length);
        Assert.All(lines, l => Assert.Matches(LineStart, l));
        Assert.All(jsonLines, l => JsonDocument.Parse(l).Dispose());
        Assert.DoesNotContain('\r', text.ToString());
        return lines;
    }

    [Fact]
    public async Task Auth_login_user_name_with_crlf_cannot_forge_a_log_line()
    {
        using var ca = new TestCertificateAuthority();
        using var cert = TestLeafCertificates.Issue(ca, "mx.test");
        var text = new StringWriter();
        var json = new StringWriter();
        await using var h = await new IntakeHarness(o => o with
        {
            Certificate = cert,
            AuthUsers = new Dictionary<string, string> { ["alice"] = "s3cret pass" },
        }, logText: text, logJson: json).StartAsync();
        await using var c = await h.ConnectAsync();
        await c.CommandAsync("EHLO client.test");
        Assert.Equal(220, (await c.CommandAsync("STARTTLS")).Code);
        var ssl = new SslStream(c.Stream, leaveInnerStreamOpen: false, (_, certificate, _, _) => TrustedBy(ca, certificate));
        using (var cts = new CancellationTokenSource(IntakeHarness.Generous))
            await ssl.AuthenticateAsClientAsync(new SslClientAuthenticationOptions { TargetHost = "mx.test" }, cts.Token);
        c.Upgrade(ssl);
        await c.CommandAsync("EHLO client.test");

        var user = "x\r\n" + Forged;
        Assert.Equal("334 VXNlcm5hbWU6", (await c.CommandAsync("AUTH LOGIN")).Lines[0]);
        Assert.Equal("334 UGFzc3dvcmQ6", (await c.CommandAsync(Convert.ToBase64String(Encoding.UTF8.GetBytes(user)))).Lines[0]);
        Assert.Equal(535, (await c.CommandAsync(Convert.ToBase64String("pw"u8))).Code);
        Assert.Equal(221, (await c.CommandAsync("QUIT")).Code);
        await h.WaitForLogAsync(e => e.Event == "icid_close");

        var lines = AssertOneLinePerEvent(h, text, json);
        Assert.DoesNotContain(lines, l => l.StartsWith("Mon Nov 23 10:00:00 2026 Info: forged", StringComparison.Ordinal));
        Assert.Contains(lines, l => l.EndsWith(@" AUTH failed user x\r\n" + Forged + " mechanism LOGIN", StringComparison.Ordinal));
        // Observers and the JSON twin keep the original value.
        var failed = h.Entries.Single(e => e.Event == "icid_auth_failed");
        Assert.Contains(("user", (object?)user), failed.Fields);
        Assert.EndsWith($" AUTH failed user {user} mechanism LOGIN", failed.Text);
        var jsonFailed = json.ToString().Split('\n').Single(l => l.Contains("\"icid_auth_failed\"", StringComparison.Ordinal));
        using var doc = JsonDocument.Parse(jsonFailed);
        Assert.Equal(user, doc.RootElement.GetProperty("user").GetString());
    }

    [Fact]
    public async Task Terminal_escapes_in_addresses_do_not_reach_the_text_log()
    {
        var text = new StringWriter();
        var json = new StringWriter();
        await using var h = await new IntakeHarness(logText: text, logJson: json).StartAsync();
        await using var c = await h.ConnectAsync();
        await c.CommandAsync("EHLO client.test");

        // A C0 control (ESC) is refused before the address is parsed, and nothing of it is logged.
        Assert.Equal("500 5.5.2 Control characters in command", (await c.CommandAsync("MAIL FROM:<\"a\u001b[2Jb\"@x.test>")).Lines[0]);
        // RFC 6531 lets UTF-8 into a quoted local part, and the parser takes any non-ASCII character there: C1 CSI
        // (the 8-bit ESC [), NEL and the line separator get through to the log.
        var from = "\"a\u009b2J\u0085\u2028b\"@x.test";
        Assert.Equal(250, (await c.CommandAsync($"MAIL FROM:<{from}> SMTPUTF8")).Code);
        var to = "\"r\u009b2J\u2029\"@example.com";
        Assert.Equal(250, (await c.CommandAsync($"RCPT TO:<{to}>")).Code);
        Assert.Equal(221, (await c.CommandAsync("QUIT")).Code);
        await h.WaitForLogAsync(e => e.Event == "icid_close");

        var lines = AssertOneLinePerEvent(h, text, json);
        var all = text.ToString();
        Assert.Equal(-1, all.IndexOfAny(['\u001b', '\u009b', '\u0085', '\u2028', '\u2029']));
        Assert.Contains(lines, l => l.EndsWith(@" From: <""a\x9b2J\x85\u2028b""@x.test>", StringComparison.Ordinal));
        Assert.Contains(lines, l => l.EndsWith(@" RID 0 To: <""r\x9b2J\u2029""@example.com>", StringComparison.Ordinal));
        Assert.DoesNotContain(h.Entries, e => e.Text.Contains('\u001b'));
        Assert.EndsWith($" From: <{from}>", h.Entries.Single(e => e.Event == "mid_from").Text);
    }

    private static bool TrustedBy(TestCertificateAuthority ca, X509Certificate? certificate)
    {
        if (certificate is null) return false;
        using var chain = new X509Chain();
        chain.ChainPolicy.TrustMode = X509ChainTrustMode.CustomRootTrust;
        chain.ChainPolicy.CustomTrustStore.Add(ca.Root);
        chain.ChainPolicy.RevocationMode = X509RevocationMode.NoCheck;
        return chain.Build(new X509Certificate2(certificate));
    }
}
