using System.Net;
using System.Security.Authentication;
using System.Security.Cryptography.X509Certificates;
using MtaSts.Actors.Smtp.Batv;
using MtaSts.Actors.Smtp.Intake.Limits;

namespace MtaSts.Actors.Smtp.Intake;

/// <summary>What the listener does with a line ending that is not CRLF (a bare LF, or a CR not followed by LF) and
/// with NUL, in commands and in DATA. Whatever the choice, only &lt;CRLF&gt;.&lt;CRLF&gt; ends DATA and the stored
/// body contains CRLF line endings only, so no receiver downstream can see a different end of data (SMTP smuggling).</summary>
public enum BareLineEndingPolicy
{
    /// <summary>Postfix <c>smtpd_forbid_bare_newline = normal</c>: a command ending in a bare LF gets
    /// <c>521 5.5.2</c> and the connection is closed; a message containing a bare LF, a bare CR or a NUL is read to
    /// its end and refused with <c>550 5.5.2</c> / <c>550 5.6.0</c>. The default.</summary>
    Reject,

    /// <summary>The vendor's "Clean": commands may end in a bare LF; in DATA a bare LF or a bare CR becomes CRLF and NUL
    /// is removed (logged per message). The end of data must still be &lt;CRLF&gt;.&lt;CRLF&gt;.</summary>
    Normalize,
}

/// <summary>Settings of the inbound ESMTP listener (where applications hand mail to the gateway).</summary>
public sealed record SmtpListenerOptions
{
    /// <summary>Addresses to listen on. Port 0 picks an ephemeral port (see <see cref="SmtpListener.LocalEndpoints"/>).</summary>
    public IReadOnlyList<IPEndPoint> Endpoints { get; init; } = [new IPEndPoint(IPAddress.Loopback, 2525)];

    /// <summary>Our name in the greeting, EHLO reply and Received header.</summary>
    public string HostName { get; init; } = "localhost";

    /// <summary>Text after the host name in the 220 greeting.</summary>
    public string Banner { get; init; } = "ESMTP MtaSts.Actors";

    /// <summary>RFC 1870 SIZE limit in octets (of the message as received, after dot-unstuffing).</summary>
    public long MaxMessageSize { get; init; } = 50L * 1024 * 1024;

    /// <summary>RCPT commands accepted per transaction; more get 452 4.5.3 (RFC 5321 §4.5.3.1.10).</summary>
    public int MaxRecipients { get; init; } = 1000;

    /// <summary>Command line limit including CRLF (RFC 5321 §4.5.3.1.4). MAIL and RCPT get
    /// <see cref="SmtpSession.ParameterAllowance"/> more for SIZE/DSN/AUTH/SMTPUTF8 parameters; AUTH lines up to
    /// 12288 (RFC 4954 §4).</summary>
    public int MaxCommandLineLength { get; init; } = 512;

    /// <summary>Text line limit in DATA including CRLF (RFC 5321 §4.5.3.1.6).</summary>
    public int MaxTextLineLength { get; init; } = 1000;

    /// <summary>Bare CR / bare LF / NUL handling (see <see cref="BareLineEndingPolicy"/>).</summary>
    public BareLineEndingPolicy BareLineEndings { get; init; } = BareLineEndingPolicy.Reject;

    /// <summary>Largest message body kept in memory while it arrives; larger ones are written to a spill file next
    /// to the spool as they arrive, so a session's memory stays bounded by this whatever the message size.</summary>
    public int BodyMemoryLimit { get; init; } = 256 * 1024;

    /// <summary>Message bytes received by all sessions and not yet in the spool, at most (memory and spill files
    /// together). A message that would exceed it gets <c>452 4.3.1 Insufficient system storage</c> (RFC 3463).</summary>
    public long MaxDataInFlight { get; init; } = 1024L * 1024 * 1024;

    /// <summary>Per-client limits (Postfix anvil-style) for clients outside <see cref="RelayNetworks"/>.</summary>
    public ClientLimits ClientLimits { get; init; } = ClientLimits.Default;

    /// <summary>Per-client limits for clients inside <see cref="RelayNetworks"/> (higher by default).</summary>
    public ClientLimits RelayClientLimits { get; init; } = ClientLimits.RelayDefault;

    /// <summary>AUTH failure delays and lockouts, per client address and per user name.</summary>
    public AuthThrottleOptions AuthThrottle { get; init; } = new();

    /// <summary>Clock of the per-client rate windows and AUTH lockouts (tests move it).</summary>
    public TimeProvider Time { get; init; } = TimeProvider.System;

    /// <summary>Sessions at once; the next connection gets 421 4.3.2 and is closed.</summary>
    public int MaxConcurrentSessions { get; init; } = 1000;

    /// <summary>Time allowed to receive one complete command line (RFC 5321 §4.5.3.2.7 asks at least 5 minutes).
    /// The whole line must arrive within it, so a client dripping a byte at a time cannot extend it.</summary>
    public TimeSpan CommandTimeout { get; init; } = TimeSpan.FromMinutes(5);

    /// <summary>Time allowed for the whole DATA transfer, from 354 to the final dot (RFC 5321 §4.5.3.2.5/6).</summary>
    public TimeSpan DataTimeout { get; init; } = TimeSpan.FromMinutes(10);

    /// <summary>Sessions making more protocol errors than this get 421 4.7.0 and are closed.</summary>
    public int MaxErrors { get; init; } = 20;

    /// <summary>Clients allowed to relay without authenticating. Default: loopback only — never an open relay.</summary>
    public IReadOnlyList<IPNetwork> RelayNetworks { get; init; } = [IPNetwork.Parse("127.0.0.0/8"), IPNetwork.Parse("::1/128")];

    /// <summary>Server certificate (with private key) for STARTTLS (RFC 3207); null: STARTTLS not offered.</summary>
    public X509Certificate2? Certificate { get; init; }

    /// <summary>TLS versions for STARTTLS; None lets the OS choose (TLS 1.2/1.3 on current systems).</summary>
    public SslProtocols TlsProtocols { get; init; } = SslProtocols.None;

    /// <summary>username → password for AUTH PLAIN/LOGIN (RFC 4954), offered only after STARTTLS; null: no AUTH.</summary>
    public IReadOnlyDictionary<string, string>? AuthUsers { get; init; }

    /// <summary>When AUTH is configured, clients outside <see cref="RelayNetworks"/> must authenticate before MAIL
    /// (530 5.7.0). When false they may start a transaction but every RCPT is still refused until they do.</summary>
    public bool RequireAuthForNonRelay { get; init; } = true;

    /// <summary>Prepend a Received trace header (RFC 5321 §4.4 requires one from every relay).</summary>
    public bool AddReceivedHeader { get; init; } = true;

    /// <summary>Whether this listener may take mail now: null = yes, else why not (e.g. "not an Up cluster member
    /// (status Joining)"). Asked at connect, at MAIL and immediately before the spool append at the end of DATA; a
    /// reason means <c>421 4.3.2 &lt;host&gt; Service not available: &lt;reason&gt;</c> and the session closes, so a node
    /// that cannot deliver never answers 250. Called on every connection and message: must be cheap and thread-safe.
    /// Null (the default): always admitted.</summary>
    public Func<string?>? Admission { get; init; }

    /// <summary>Bounce verification in force (read at every bounce, so that a configuration reload applies): a bounce
    /// (null reverse-path) to one of its domains must carry a valid prvs tag, from any client; the tag is removed and
    /// the bounce relayed. Null, or returning null: off.</summary>
    public Func<BounceAddressTagger?>? BounceVerification { get; init; }

    /// <summary>How long <see cref="SmtpListener.StopAsync"/> lets transactions in progress finish.</summary>
    public TimeSpan ShutdownGrace { get; init; } = TimeSpan.FromSeconds(30);

    internal bool AuthConfigured => AuthUsers is { Count: > 0 };

    public void Validate()
    {
        if (Endpoints is null || Endpoints.Count == 0) throw new ArgumentException("at least one endpoint is required");
        if (string.IsNullOrWhiteSpace(HostName) || HostName.Any(char.IsWhiteSpace)) throw new ArgumentException("HostName must be a single token");
        if (Banner.Contains('\r') || Banner.Contains('\n')) throw new ArgumentException("Banner must be one line");
        if (MaxMessageSize < 1) throw new ArgumentOutOfRangeException(nameof(MaxMessageSize));
        if (MaxMessageSize > 1024L * 1024 * 1023) throw new ArgumentOutOfRangeException(nameof(MaxMessageSize), "a spool record holds at most 1 GiB: at most 1023 MiB");
        if (BodyMemoryLimit < 4096) throw new ArgumentOutOfRangeException(nameof(BodyMemoryLimit), "at least 4096 bytes");
        if (MaxDataInFlight < MaxMessageSize) throw new ArgumentOutOfRangeException(nameof(MaxDataInFlight), "must be at least the maximum message size");
        if (MaxRecipients < 1) throw new ArgumentOutOfRangeException(nameof(MaxRecipients), "RFC 5321 §4.5.3.1.8: at least 100; 1 is the floor here");
        if (MaxCommandLineLength < 512) throw new ArgumentOutOfRangeException(nameof(MaxCommandLineLength), "RFC 5321 §4.5.3.1.4: at least 512");
        if (MaxTextLineLength < 1000) throw new ArgumentOutOfRangeException(nameof(MaxTextLineLength), "RFC 5321 §4.5.3.1.6: at least 1000");
        if (MaxConcurrentSessions < 1) throw new ArgumentOutOfRangeException(nameof(MaxConcurrentSessions));
        if (CommandTimeout <= TimeSpan.Zero || DataTimeout <= TimeSpan.Zero || ShutdownGrace < TimeSpan.Zero)
            throw new ArgumentOutOfRangeException(nameof(CommandTimeout), "timeouts must be positive");
        ClientLimits.Validate();
        RelayClientLimits.Validate();
        AuthThrottle.Validate();
        if (Certificate is not null && !Certificate.HasPrivateKey) throw new ArgumentException("the STARTTLS certificate needs its private key");
        if (AuthConfigured && Certificate is null) throw new ArgumentException("AUTH is offered only after STARTTLS: configure a certificate");
    }
}
