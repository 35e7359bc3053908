using MtaSts.Actors.Engine.Delivery;
using MtaSts.Actors.Engine.Intake;
using MtaSts.Actors.Logging;
using MtaSts.Actors.Smtp.Dsn;
using MtaSts.Actors.Smtp.Replies;
using MtaSts.Actors.Spool;

namespace MtaSts.Actors.Engine.Bounces;

/// <summary>
/// Builds RFC 3464 DSNs for failed (or delayed) recipients and queues them like any accepted message: spooled
/// (fsync'd) first, then dispatched to the sender's destination. The original's recipients are marked done only
/// after this completes, so a crash can never lose both the message and its bounce.
/// </summary>
public sealed class BounceService(ISpool spool, IdSequence mids, MailLog log, string reportingMta, TimeProvider clock) : IBounceSink
{
    private static readonly DsnBuilder Builder = new();
    private Dispatcher? _dispatcher;

    public void Attach(Dispatcher dispatcher) => _dispatcher = dispatcher;

    public async Task QueueAsync(BounceRequest request, CancellationToken ct = default)
    {
        var msg = request.Message;
        if (msg.ReversePath.Length == 0)
        {
            // RFC 5321 §4.5.5 / RFC 3461 §6.2: never a DSN for the null reverse-path (that would be a bounce of a bounce).
            log.Info("double_bounce", $"Double bounce: MID {msg.Mid} to RID {Rid.List(request.Recipients.Select(r => r.Recipient.Rid))} - no DSN for the null reverse-path",
                ("mid", msg.Mid));
            return;
        }
        var envelope = new Envelope(msg.ReversePath,
            request.Recipients.Select(r => new Recipient(r.Recipient.Rid, r.Recipient.Address, r.Recipient.Notify, r.Recipient.OriginalRecipient)).ToArray(),
            msg.ReceivedAt, EnvId: msg.EnvId, Ret: msg.Ret, EightBitMime: msg.EightBitMime, SmtpUtf8: msg.SmtpUtf8);
        var now = clock.GetUtcNow();
        var action = request.Delayed ? DsnAction.Delayed : DsnAction.Failed;
        var reports = request.Recipients.Select(r => new DsnRecipientReport(
            envelope.Recipients.First(x => x.Rid == r.Recipient.Rid),
            action,
            EnhancedStatusCode.TryParse(r.Outcome.Status, out var st) ? st : null,
            // Diagnostic-Code only for a remote reply, or the local reason an operator bounce gives.
            r.Outcome.Reply is { IsNoReply: false } reply ? reply
                : request.LocalDiagnostic is { } why ? SmtpReply.NoReply(why, EnhancedStatusCode.TryParse(r.Outcome.Status, out var ls) ? ls : null) : null,
            r.Outcome.RemoteMta,
            now)).ToArray();
        var selected = DsnRules.Select(envelope, reports);
        if (selected.Count == 0) return; // NOTIFY=NEVER, or the sender asked only for other notifications
        var original = await spool.ReadBodyAsync(msg.Mid, ct).ConfigureAwait(false);
        var dsn = Builder.Build(new DsnRequest(msg.Mid, envelope, selected, original, reportingMta, now));
        var mid = mids.Next();
        var dsnEnvelope = new Envelope("", [new Recipient(0, dsn.EnvelopeTo, DsnNotify.Never)], now,
            EightBitMime: dsn.Requires8BitMime, SmtpUtf8: dsn.RequiresSmtpUtf8);
        var spooled = await spool.AppendAsync(mid, dsnEnvelope, dsn.Content, ct).ConfigureAwait(false);
        log.Info("bounce_generated", $"MID {mid} was generated for bounce of MID {msg.Mid}", ("mid", mid), ("original_mid", msg.Mid));
        (_dispatcher ?? throw new InvalidOperationException("bounce service not attached")).Dispatch(spooled);
    }
}
