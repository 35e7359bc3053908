using MtaSts.Actors.Dns;
using MtaSts.Actors.Engine.Destination;
using MtaSts.Actors.Policy.Resolution;
using MtaSts.Actors.Smtp.Replies;

namespace MtaSts.Actors.Engine.Delivery;

public enum RecipientOutcomeKind { Delivered, Transient, Permanent }

/// <param name="Detail">Vendor-format reply text for logs, e.g. <c>4.3.2 - Not accepting messages ('421', ['4.3.2 try again later'])</c>.</param>
/// <param name="Status">RFC 3463 status for a DSN, e.g. "5.1.1".</param>
/// <param name="Reply">The receiver's reply (the DSN's Diagnostic-Code); null or a no-reply when there was none.</param>
public sealed record RecipientOutcome(int Rid, RecipientOutcomeKind Kind, string Detail, string Status,
    string? RemoteMta = null, SmtpReply? Reply = null);

/// <summary>One message to send over an open connection (only this destination's recipients).</summary>
public sealed record DeliveryJob(MessageRef Message, IReadOnlyList<RecipientRef> Recipients);

/// <param name="ConnectionUsable">False when the connection broke or the server said 421: the session is closed.</param>
/// <param name="SiteWanted">MX roll-up: other destinations wait for a connection at this connection's MX address, so
/// an idle one is handed over to them rather than kept for this destination's own next message.</param>
public sealed record JobResult(long Mid, IReadOnlyList<RecipientOutcome> Outcomes, bool ConnectionUsable, bool SiteWanted = false)
{
    /// <summary>At least one recipient was accepted (the connection's slow start counts it as a success).</summary>
    public bool Delivered => Outcomes.Any(o => o.Kind == RecipientOutcomeKind.Delivered);
}

/// <summary>Why a delivery connection could not be opened (DNS, every MX unreachable, TLS required but failed,
/// MTA-STS enforce with no matching MX...). Permanent only for hard DNS answers (NXDOMAIN, null MX).
/// <paramref name="reply"/>: the last MX's refusal when it was an SMTP reply (banner, EHLO), for throttling rules.</summary>
public sealed class DeliveryOpenException(RecipientOutcomeKind kind, string detail, string status, SmtpReply? reply = null) : Exception(detail)
{
    public SmtpReply? Reply { get; } = reply;
    public RecipientOutcomeKind Kind { get; } = kind;
    public string Detail { get; } = detail;
    public string Status { get; } = status;
}

/// <summary>What the destination decided before opening a connection.</summary>
/// <param name="Policy">The MTA-STS resolution the destination holds (null: none asked or none answered).</param>
public sealed record SessionRequest(DestinationDomain Domain, DestinationSettings Settings, PolicyResolution? Policy, long Dcid);

/// <summary>Opens outbound sessions for a destination. The real one resolves MX, applies the TLS/MTA-STS/DANE plan and
/// speaks SMTP (MailKit); tests substitute a scripted one. Implementations must honour cancellation and time out.</summary>
public interface IDeliveryTransport
{
    Task<IDeliverySession> OpenAsync(SessionRequest request, CancellationToken ct);
}

public interface IDeliverySession : IAsyncDisposable
{
    /// <summary>Human-readable peer, e.g. "mx1.example.com [127.0.0.1]:25".</summary>
    string Peer { get; }
    /// <summary>Messages already sent over the underlying connection (by another destination when rolled up): the
    /// profile's max-messages-per-connection bounds the connection, not each destination's share.</summary>
    int MessagesSent => 0;
    Task<JobResult> SendAsync(DeliveryJob job, CancellationToken ct);
    /// <summary>QUIT and close (best effort, bounded).</summary>
    Task CloseAsync(CancellationToken ct);
    /// <summary>The destination has nothing for it now: a transport with MX roll-up keeps it for other destinations
    /// served by the same MX (see <see cref="SmtpDeliveryTransport"/>); otherwise it is closed.</summary>
    Task ParkAsync(CancellationToken ct) => CloseAsync(ct);
}
