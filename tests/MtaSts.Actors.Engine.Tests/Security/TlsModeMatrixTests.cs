using System.Text;
using MtaSts.Actors.Engine.Hosting;
using MtaSts.Actors.Engine.Tests.EndToEnd;
using MtaSts.Actors.TestInfra.Smtp;

namespace MtaSts.Actors.Engine.Tests.Security;

/// <summary>
/// One real gateway, one recipient domain per (TLS mode × receiver kind), each with its own MX host and loopback
/// receiver. Every message is submitted when the fixture starts; each Theory row then checks its own outcome from
/// the receiver and from the log lines of the connections made to that receiver's port.
/// </summary>
public sealed class TlsMatrixFixture : IAsyncLifetime
{
    public static readonly string[] Modes =
        ["none", "preferred", "required", "preferred-verify", "required-verify", "required-verify-hosted-domains"];

    public SecurityLab Lab { get; } = new();
    public GatewayFixture Gateway { get; private set; } = null!;
    public Dictionary<(string Mode, ReceiverKind Kind), TestSmtpReceiver> Receivers { get; } = new();

    public static string Domain(string mode, ReceiverKind kind) => $"{Short(mode)}-{kind.ToString().ToLowerInvariant()}.tls.test";

    private static string Short(string mode) => string.Concat(mode.Split('-').Select(p => p[0]));

    public async Task InitializeAsync()
    {
        var overrides = new StringBuilder();
        var profiles = new StringBuilder();
        foreach (var mode in Modes)
        foreach (var kind in Enum.GetValues<ReceiverKind>())
        {
            var domain = Domain(mode, kind);
            var mx = "mx." + domain;
            var rx = Lab.Receiver(kind, mx, domain);
            Receivers[(mode, kind)] = rx;
            overrides.Append($"\"{domain}\" = \"{mx}:{rx.Port}\"\n");
            profiles.Append($"mtasts.destinations.\"{domain}\".tls-support = {mode}\n");
        }
        Gateway = await GatewayFixture.StartAsync(overrides.ToString(), Lab.TrustHocon + "\n" + profiles, null,
            new GatewayOverrides { Dns = Lab.Resolver() });
        var sends = Receivers.Keys.Select(k => Gateway.SendAsync("app@sender.test", [$"user@{Domain(k.Mode, k.Kind)}"], $"{k.Mode} {k.Kind}"));
        await Task.WhenAll(sends);
    }

    public async Task DisposeAsync()
    {
        await Gateway.DisposeAsync();
        await Lab.DisposeAsync();
    }
}

public sealed class TlsModeMatrixTests(TlsMatrixFixture f) : IClassFixture<TlsMatrixFixture>
{
    private static readonly TimeSpan Wait = TimeSpan.FromSeconds(30);

    public enum Outcome { Plain, Tls, Deferred }

    private const string Required = "TLS was required but could not be successfully negotiated";
    private const string Mismatch = "TLS deferring: verify error: peer cert does not match domain";

    public static TheoryData<string, ReceiverKind, Outcome, string?> Rows()
    {
        var d = new TheoryData<string, ReceiverKind, Outcome, string?>();
        var tlsKinds = new[] { ReceiverKind.Valid, ReceiverKind.WrongName, ReceiverKind.Expired, ReceiverKind.SelfSigned, ReceiverKind.Hosted };
        // None: never STARTTLS, whatever the receiver offers.
        foreach (var k in Enum.GetValues<ReceiverKind>()) d.Add("none", k, Outcome.Plain, null);
        // Preferred: encrypt when offered, no verification; clear text only when STARTTLS is not offered.
        foreach (var k in tlsKinds) d.Add("preferred", k, Outcome.Tls, null);
        d.Add("preferred", ReceiverKind.NoStartTls, Outcome.Plain, null);
        // Required: encryption without authentication; no STARTTLS defers.
        foreach (var k in tlsKinds) d.Add("required", k, Outcome.Tls, null);
        d.Add("required", ReceiverKind.NoStartTls, Outcome.Deferred, Required);
        // Preferred - Verify: verification failures are reported, the session stays encrypted; plain only without STARTTLS.
        d.Add("preferred-verify", ReceiverKind.Valid, Outcome.Tls, null);
        d.Add("preferred-verify", ReceiverKind.WrongName, Outcome.Tls, "TLS verify error (not enforced, Profile): peer cert does not match domain");
        d.Add("preferred-verify", ReceiverKind.Expired, Outcome.Tls, "TLS verify error (not enforced, Profile)");
        d.Add("preferred-verify", ReceiverKind.SelfSigned, Outcome.Tls, "TLS verify error (not enforced, Profile)");
        d.Add("preferred-verify", ReceiverKind.Hosted, Outcome.Tls, "TLS verify error (not enforced, Profile): peer cert does not match domain");
        d.Add("preferred-verify", ReceiverKind.NoStartTls, Outcome.Plain, null);
        // Required - Verify: the certificate must chain to a trusted root and name the recipient domain.
        d.Add("required-verify", ReceiverKind.Valid, Outcome.Tls, null);
        d.Add("required-verify", ReceiverKind.WrongName, Outcome.Deferred, Mismatch);
        d.Add("required-verify", ReceiverKind.Expired, Outcome.Deferred, "TLS deferring: verify error: certificate has expired");
        d.Add("required-verify", ReceiverKind.SelfSigned, Outcome.Deferred, "TLS deferring: verify error: ");
        d.Add("required-verify", ReceiverKind.Hosted, Outcome.Deferred, Mismatch);
        d.Add("required-verify", ReceiverKind.NoStartTls, Outcome.Deferred, Required);
        // Required - Verify Hosted Domains: as above, but the MX host name also counts.
        d.Add("required-verify-hosted-domains", ReceiverKind.Valid, Outcome.Tls, null);
        d.Add("required-verify-hosted-domains", ReceiverKind.Hosted, Outcome.Tls, null);
        d.Add("required-verify-hosted-domains", ReceiverKind.WrongName, Outcome.Deferred, Mismatch);
        d.Add("required-verify-hosted-domains", ReceiverKind.Expired, Outcome.Deferred, "TLS deferring: verify error: certificate has expired");
        d.Add("required-verify-hosted-domains", ReceiverKind.SelfSigned, Outcome.Deferred, "TLS deferring: verify error: ");
        d.Add("required-verify-hosted-domains", ReceiverKind.NoStartTls, Outcome.Deferred, Required);
        return d;
    }

    [Theory]
    [MemberData(nameof(Rows))]
    public async Task Tls_mode_and_receiver_decide_the_outcome(string mode, ReceiverKind kind, Outcome expected, string? line)
    {
        var rx = f.Receivers[(mode, kind)];
        var gw = f.Gateway;
        var domain = TlsMatrixFixture.Domain(mode, kind);
        switch (expected)
        {
            case Outcome.Plain:
            case Outcome.Tls:
            {
                var msg = Assert.Single(await gw.ReceivedAsync(rx, 1, Wait));
                Assert.Equal($"user@{domain}", Assert.Single(msg.Recipients).Address);
                Assert.Equal(expected == Outcome.Tls, msg.Tls);
                if (expected == Outcome.Tls)
                {
                    // SNI is the MX host name (RFC 8461 §7.1 / RFC 7672 §8.1), and the guide's success line is logged.
                    Assert.Equal("mx." + domain, msg.Sni);
                    var ok = await gw.WaitForConnectionLineAsync(rx.Port, l => l.Contains(" TLS success protocol TLSv1."), Wait);
                    Assert.Matches(@"DCID \d+ TLS success protocol TLSv1\.[23] cipher \S+", ok);
                }
                else
                {
                    Assert.DoesNotContain(gw.LinesFor(rx.Port), l => l.Contains("TLS success"));
                    if (mode == "none") Assert.All(rx.Sessions, s => Assert.DoesNotContain(s.Commands, c => c.StartsWith("STARTTLS", StringComparison.OrdinalIgnoreCase)));
                }
                if (line is not null) await gw.WaitForConnectionLineAsync(rx.Port, l => l.Contains(line, StringComparison.Ordinal), Wait);
                else Assert.DoesNotContain(gw.LinesFor(rx.Port), l => l.Contains("verify error", StringComparison.Ordinal));
                break;
            }
            case Outcome.Deferred:
            {
                await gw.WaitForConnectionLineAsync(rx.Port, l => l.Contains(line!, StringComparison.Ordinal), Wait);
                // Both guide lines: the verify error (when there is one) and "TLS was required …".
                await gw.WaitForConnectionLineAsync(rx.Port, l => l.EndsWith(Required, StringComparison.Ordinal), Wait);
                await gw.WaitForLineAsync(l => l.Contains("Delayed: DCID", StringComparison.Ordinal) && l.Contains($"user@{domain}", StringComparison.Ordinal), Wait);
                // Deferred means nothing was sent, in clear text or otherwise.
                Assert.Empty(rx.Messages);
                Assert.True(rx.NoTransactionStarted(), "a transaction was started on a connection that had to defer");
                break;
            }
        }
    }
}
