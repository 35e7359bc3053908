using System.Globalization;
using System.Net;
using System.Security.Cryptography.X509Certificates;
using MtaSts.Actors.Smtp.Replies;
using MtaSts.Actors.Spool;
using MtaSts.Actors.Tls;

namespace MtaSts.Actors.Smtp.Outbound;

/// <summary>Outbound connection settings (per destination profile / virtual gateway).</summary>
public sealed record OutboundOptions
{
    /// <summary>EHLO name (RFC 5321 §4.1.1.1: the gateway's FQDN).</summary>
    public string HeloName { get; init; } = "localhost";
    /// <summary>Virtual gateway source address (bind before connect); null = OS choice.</summary>
    public IPAddress? LocalAddress { get; init; }
    /// <summary>Presented when the server asks for a client certificate in STARTTLS.</summary>
    public X509Certificate2? ClientCertificate { get; init; }
    /// <summary>PKIX trust (system roots + optional extra CA bundle).</summary>
    public CertificateVerifier Verifier { get; init; } = CertificateVerifier.System;
    public TimeSpan ConnectTimeout { get; init; } = TimeSpan.FromSeconds(30);
    /// <summary>Greeting, EHLO and STARTTLS handshake (RFC 5321 §4.5.3.2.1: 5 min for the greeting).</summary>
    public TimeSpan GreetingTimeout { get; init; } = TimeSpan.FromMinutes(5);
    /// <summary>MAIL, RCPT, RSET, DATA initiation (RFC 5321 §4.5.3.2.2-3: 5 min / 2 min).</summary>
    public TimeSpan CommandTimeout { get; init; } = TimeSpan.FromMinutes(5);
    /// <summary>Sending the body and waiting for the final reply (RFC 5321 §4.5.3.2.5-6: 3 + 10 min).</summary>
    public TimeSpan DataTimeout { get; init; } = TimeSpan.FromMinutes(10);
    /// <summary>QUIT on close.</summary>
    public TimeSpan QuitTimeout { get; init; } = TimeSpan.FromSeconds(10);
    /// <summary>Pipeline MAIL and RCPT when the server offers PIPELINING (RFC 2920).</summary>
    public bool UsePipelining { get; init; } = true;
    /// <summary>Log <c>Message done DCID … MID … to RID […]</c> and the DATA response after an accepted DATA. The
    /// engine turns it off: its destination logs every recipient's outcome itself (one line per outcome, not two).</summary>
    public bool LogOutcomes { get; init; } = true;
}

/// <summary>The negotiated TLS session, in the vendor's log vocabulary.</summary>
/// <param name="Protocol">e.g. <c>TLSv1.3</c>.</param>
/// <param name="Cipher">IANA name, e.g. <c>TLS_AES_256_GCM_SHA384</c>.</param>
public sealed record TlsSessionInfo(string Protocol, string Cipher);

/// <summary>Result of one planned certificate check during the handshake.</summary>
/// <param name="PresentedNames">The peer certificate's RFC 6125 presented identifiers (its DNS-IDs, else its CN): what
/// the check matched against, kept so that MX roll-up can tell whether the same certificate also answers another
/// domain's reference identifiers.</param>
public sealed record CheckOutcome(CertificateCheck Check, bool Ok, string? Error, IReadOnlyList<string>? PresentedNames = null);

public enum ConnectStatus { Ready, Transient, Permanent }

/// <summary>Why a connection attempt ended (for the engine's next-MX / defer decision and for TLS-RPT).</summary>
public enum ConnectFailure
{
    None,
    Network,
    Timeout,
    /// <summary>Greeting or EHLO/HELO refused (see Reply).</summary>
    Rejected,
    /// <summary>TLS required but STARTTLS not offered or refused.</summary>
    StartTlsUnavailable,
    /// <summary>TLS handshake failed (protocol, cipher, TLS 1.2 floor).</summary>
    TlsHandshake,
    /// <summary>An enforced certificate check failed.</summary>
    Verification,
    Protocol,
}

/// <param name="Reports">Report-only findings (MTA-STS testing, Preferred-Verify), in RFC 8460 result-type words where
/// one fits: <c>starttls-not-supported</c>, <c>certificate-host-mismatch</c>, <c>certificate-expired</c>,
/// <c>certificate-not-trusted</c>, <c>validation-failure</c>.</param>
public sealed record ConnectResult(ConnectStatus Status, ConnectFailure Failure, string? Error, SmtpReply? Reply,
    TlsSessionInfo? Tls, IReadOnlyList<CheckOutcome> Checks, IReadOnlyList<string> Reports)
{
    public bool Ready => Status == ConnectStatus.Ready;

    /// <summary>RFC 3463 status for a deferral/bounce built from this result.</summary>
    public string EnhancedStatus => Reply?.Enhanced?.ToString() ?? Failure switch
    {
        ConnectFailure.StartTlsUnavailable or ConnectFailure.TlsHandshake or ConnectFailure.Verification => "4.7.5",
        ConnectFailure.Rejected => Status == ConnectStatus.Permanent ? "5.4.0" : "4.4.0",
        _ => "4.4.1", // no answer from host
    };
}

/// <summary>One message for one connection: only the recipients routed to this destination.</summary>
/// <param name="ReversePath">MAIL FROM address; "" for the null reverse-path.</param>
/// <param name="Body">The message as spooled (not dot-stuffed); a bare LF or bare CR is sent as CRLF. The caller disposes it.</param>
public sealed record OutboundMessage(long Mid, string ReversePath, IReadOnlyList<Recipient> Recipients, OutboundBody Body,
    string? EnvId = null, DsnRet Ret = DsnRet.Unspecified, bool EightBitMime = false, bool SmtpUtf8 = false);

public enum RecipientStatus { Accepted, Transient, Permanent }

/// <param name="Reply">The RCPT reply when refused there, else the DATA (or MAIL) reply that decided it.</param>
public sealed record RecipientResult(int Rid, string Address, RecipientStatus Status, SmtpReply Reply);

/// <param name="ConnectionUsable">False after 421, timeout, disconnect or protocol error: the connection is closed.</param>
public sealed record SendResult(long Mid, IReadOnlyList<RecipientResult> Recipients, SmtpReply? MailReply,
    SmtpReply? DataReply, bool ConnectionUsable)
{
    public bool AllAccepted => Recipients.All(r => r.Status == RecipientStatus.Accepted);
    public bool AnyAccepted => Recipients.Any(r => r.Status == RecipientStatus.Accepted);
    public IEnumerable<RecipientResult> Accepted => Recipients.Where(r => r.Status == RecipientStatus.Accepted);
}
