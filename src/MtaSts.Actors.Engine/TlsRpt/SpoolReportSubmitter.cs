using MtaSts.Actors.Engine.Intake;
using MtaSts.Actors.Logging;
using MtaSts.Actors.Spool;
using MtaSts.Actors.TlsRpt;

namespace MtaSts.Actors.Engine.TlsRpt;

/// <summary>TLS-RPT report mail goes through the gateway's own queue, as <see cref="Bounces.BounceService"/> does with a
/// DSN: spooled (fsync'd) under a new MID, then dispatched to the rua domain's destination. Null reverse-path
/// (RFC 5321 §4.5.5): an undeliverable report never bounces, so reports cannot start a mail loop.</summary>
public sealed class SpoolReportSubmitter(ISpool spool, IdSequence mids, MailLog log, TimeProvider clock) : ITlsRptMailSubmitter
{
    private Dispatcher? _dispatcher;

    public void Attach(Dispatcher dispatcher) => _dispatcher = dispatcher;

    public async Task SubmitAsync(string recipient, byte[] message, CancellationToken ct)
    {
        var dispatcher = _dispatcher ?? throw new InvalidOperationException("TLS-RPT submitter not attached");
        var mid = mids.Next();
        var envelope = new Envelope("", [new Recipient(0, recipient, DsnNotify.Never)], clock.GetUtcNow());
        var spooled = await spool.AppendAsync(mid, envelope, message, ct).ConfigureAwait(false);
        log.Info("tlsrpt_queued", $"MID {mid} was generated for a TLS-RPT report to {recipient}", ("mid", mid), ("to", recipient));
        dispatcher.Dispatch(spooled);
    }
}
