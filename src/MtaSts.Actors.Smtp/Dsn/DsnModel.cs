using MtaSts.Actors.Smtp.Replies;
using MtaSts.Actors.Spool;

namespace MtaSts.Actors.Smtp.Dsn;

/// <summary>RFC 3464 §2.3.3 Action values.</summary>
public enum DsnAction { Failed, Delayed, Delivered, Relayed, Expanded }

/// <summary>What the DSN carries of the original message (RFC 3461 §4.3, RFC 6522 §3).</summary>
public enum DsnReturnedContent { None, FullMessage, Headers }

/// <summary>The outcome for one recipient that goes into a DSN.</summary>
/// <param name="Status">RFC 3463 status; defaults to the reply's enhanced code (or its class X.0.0).</param>
/// <param name="RemoteReply">The remote MTA's reply, reported as <c>Diagnostic-Code: smtp; 550 5.1.1 …</c>; a no-reply
/// (code 000) is reported as <c>X-MtaSts; &lt;text&gt;</c> since it is not an SMTP reply.</param>
/// <param name="RemoteMta">Host name (or <c>[ip]</c>) of the MX that answered: <c>Remote-MTA: dns; host</c>.</param>
/// <param name="WillRetryUntil">For delayed: when the bounce profile gives up (RFC 3464 §2.3.9).</param>
public sealed record DsnRecipientReport(
    Recipient Recipient,
    DsnAction Action,
    EnhancedStatusCode? Status = null,
    SmtpReply? RemoteReply = null,
    string? RemoteMta = null,
    DateTimeOffset? LastAttemptAt = null,
    DateTimeOffset? WillRetryUntil = null)
{
    public EnhancedStatusCode EffectiveStatus => Status ?? RemoteReply?.Status ?? Action switch
    {
        DsnAction.Failed => new EnhancedStatusCode(5, 0, 0),
        DsnAction.Delayed => new EnhancedStatusCode(4, 0, 0),
        _ => EnhancedStatusCode.Delivered,
    };
}

/// <param name="Mid">Vendor MID of the original message (goes into the Message-ID and the boundary).</param>
/// <param name="OriginalMessage">The message as spooled (CRLF lines).</param>
/// <param name="ReportingMta">Our host name (<c>mtasts.hostname</c>): Reporting-MTA and the From address domain.</param>
/// <param name="Now">Date of the DSN (injected clock).</param>
public sealed record DsnRequest(
    long Mid,
    Envelope Envelope,
    IReadOnlyList<DsnRecipientReport> Recipients,
    ReadOnlyMemory<byte> OriginalMessage,
    string ReportingMta,
    DateTimeOffset Now);

public sealed record DsnOptions
{
    /// <summary>Vendor <c>max_bounce_copy</c>: without RET, the whole message is returned only below this size (10 KB).</summary>
    public int MaxFullReturnBytes { get; init; } = 10 * 1024;
    public string FromDisplayName { get; init; } = "Mail Delivery System";
    public string FromLocalPart { get; init; } = "MAILER-DAEMON";
}

/// <summary>A composed DSN, ready to be spooled. <see cref="EnvelopeFrom"/> is always the null reverse-path (RFC 5321
/// §4.5.5, RFC 3461 §6.2) so that a DSN never causes another DSN.</summary>
/// <param name="Requires8BitMime">The returned message has 8-bit bytes: relay with BODY=8BITMIME (RFC 6152).</param>
/// <param name="RequiresSmtpUtf8">The recipient address is not ASCII: relay with SMTPUTF8 (RFC 6531).</param>
public sealed record DsnMessage(
    string EnvelopeFrom,
    string EnvelopeTo,
    byte[] Content,
    string MessageId,
    DsnReturnedContent Returned,
    bool Requires8BitMime,
    bool RequiresSmtpUtf8);
