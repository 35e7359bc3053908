using MtaSts.Actors.Dns;
using MtaSts.Actors.Engine.Delivery;
using MtaSts.Actors.Logging;

namespace MtaSts.Actors.Engine.Destination;

/// <summary>Runs a destination's side effects after its changes are applied. The durable ones run off the actor
/// (tracked by <see cref="BackgroundWork"/> so that a graceful stop waits for them); both services are thread-safe.</summary>
public sealed class DestinationEffects(DeliveryServices svc, PendingIndex index, DestinationDomain domain)
{
    private int _pendingFinishes;

    /// <summary>Done records not yet written (a hand-off waits for them: the next owner must not see the mail as queued).</summary>
    public int PendingFinishes => Volatile.Read(ref _pendingFinishes);

    /// <summary>Called (off the actor) when a done record has been written or has failed: MID and RIDs.</summary>
    public Action<long, int[]>? Finished { get; set; }

    public void Run(IEnumerable<DestinationEffect> effects)
    {
        foreach (var effect in effects)
        {
            switch (effect)
            {
                case LogLine l:
                    svc.Log.Info(l.Event, l.Text, l.Fields);
                    break;
                case FinishRecipients f:
                    Finish(f);
                    break;
                case WarnDelayed w:
                    Warn(w);
                    break;
            }
        }
    }

    /// <summary>Durable side of a final outcome: queue the DSN first (it must be on disk before the original is
    /// released), then record the recipients done in the spool.</summary>
    private void Finish(FinishRecipients f)
    {
        var mid = f.Message.Mid;
        var rids = f.Rids.ToArray();
        Interlocked.Increment(ref _pendingFinishes);
        svc.Work.Track(Task.Run(async () =>
        {
            try
            {
                if (f.Bounced.Count > 0 && f.SendDsn)
                    await svc.Bounces.QueueAsync(new BounceRequest(f.Message, domain, f.Bounced, LocalDiagnostic: f.Diagnostic)).ConfigureAwait(false);
                var messageFinished = await svc.Spool.MarkDoneAsync(mid, rids).ConfigureAwait(false);
                index.Remove(domain, mid, rids);
                if (messageFinished)
                    svc.Log.Info("message_finished", $"Message finished MID {mid} done", ("mid", mid));
            }
            catch (Exception ex)
            {
                // Not marked done: the spool keeps the message and it is re-delivered after a restart (duplicate, not loss).
                svc.Log.Critical("finish_failed", $"MID {mid} could not be marked done: {ex.Message}", ("mid", mid));
            }
            finally
            {
                Interlocked.Decrement(ref _pendingFinishes);
                Finished?.Invoke(mid, rids);
            }
        }));
    }

    /// <summary>Queues a "delayed" DSN (RFC 3464 Action: delayed; only to recipients whose NOTIFY asks for DELAY or
    /// left it default). The mail stays queued; a crash before the DSN is durable loses only the warning.</summary>
    private void Warn(WarnDelayed w)
    {
        var mid = w.Message.Mid;
        svc.Work.Track(Task.Run(async () =>
        {
            try
            {
                await svc.Bounces.QueueAsync(new BounceRequest(w.Message, domain, w.Recipients, Delayed: true)).ConfigureAwait(false);
                svc.Log.Info("delay_warning", $"Delay warning sent for MID {mid} to RID {Rid.List(w.Recipients.Select(d => d.Item1.Rid))}",
                    ("mid", mid));
            }
            catch (Exception ex)
            {
                svc.Log.Warning("delay_warning_failed", $"Delay warning for MID {mid} could not be queued: {ex.Message}", ("mid", mid));
            }
        }));
    }
}
