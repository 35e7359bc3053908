using Akka.Actor;
using MtaSts.Actors.Dns;
using MtaSts.Actors.Engine.Delivery;
using MtaSts.Actors.Engine.Intake;
using MtaSts.Actors.Logging;
using MtaSts.Actors.Spool;

namespace MtaSts.Actors.Engine.Destination;

/// <summary>The cluster spool's outstanding recipients of a domain (or why they could not be read).</summary>
public sealed record QueueLoaded(long Generation, IReadOnlyList<RecoveredMessage>? Messages, string? Error);

/// <summary>Cluster mode: a destination owner's queue is the shared spool (mail accepted on any node, or owned by a
/// node that is gone). This reads it on start and again every <c>ClusterReconcile</c> (a message told over the network
/// can be lost with a node), and keeps a load read before a done record committed from re-queuing a finished
/// recipient (<see cref="RecentFinishes"/>).</summary>
public sealed class ClusterQueueSync(IClusterSpool spool, DestinationDomain domain, PendingIndex index, MailLog log)
{
    private readonly RecentFinishes _finishes = new();
    private readonly FinishedRecently _recent = new(TimeSpan.FromMinutes(5), 20_000);
    private DateTimeOffset _nextReconcile;

    /// <summary>A new owner after a shard move reads the cluster spool again this long after its first load: the
    /// accepting nodes' enqueues sent to the old home while the coordinator still advertised it (the removal margin)
    /// are dropped, and the first load may have read the spool before those messages committed (chaos (c): 12 messages
    /// waited for the 2-minute reconcile).</summary>
    public static readonly TimeSpan FirstReload = TimeSpan.FromSeconds(10);

    /// <summary>A first load has been applied (until then the queue is not the spool's and must not be pruned).</summary>
    public bool Loaded { get; private set; }

    public bool ReconcileDue(DateTimeOffset now) => Loaded && now >= _nextReconcile;

    /// <summary>Reads the outstanding queue off the actor; the answer comes to <paramref name="self"/> as <see cref="QueueLoaded"/>.</summary>
    public void Load(DateTimeOffset now, TimeSpan reconcileEvery, IActorRef self)
    {
        _nextReconcile = now + reconcileEvery;
        var generation = _finishes.LoadIssued();
        spool.OutstandingAsync(domain.Name).PipeTo(self, success: m => new QueueLoaded(generation, m, null),
            failure: ex => new QueueLoaded(generation, null, ex.Message));
    }

    /// <summary>Notes the recipients a decision is finishing (before its effects write their done records).</summary>
    public void Finishing(IEnumerable<DestinationEffect> effects, DateTimeOffset now)
    {
        foreach (var effect in effects)
            if (effect is FinishRecipients f)
            {
                _finishes.Finishing(f.Message.Mid, f.Rids);
                _recent.Finished(f.Message.Mid, f.Rids, now);
            }
    }

    /// <summary>An accepting node's enqueue: indexed on this (owner) node, less the recipients this owner has already
    /// finished — an enqueue delayed by a shard move (held by the accepting node's region) can arrive after this owner
    /// loaded the recipient from the spool and delivered it (<see cref="FinishedRecently"/>).</summary>
    public IReadOnlyList<RecipientRef> Accept(EnqueueRecipients e, DateTimeOffset now)
    {
        var recipients = e.Recipients.Any(r => _recent.Contains(e.Message.Mid, r.Rid, now))
            ? e.Recipients.Where(r => !_recent.Contains(e.Message.Mid, r.Rid, now)).ToList() : e.Recipients;
        if (recipients.Count > 0) index.Add(domain, e.Message, recipients);
        return recipients;
    }

    /// <summary>A done record was written (or failed).</summary>
    public void Written(long mid, IEnumerable<int> rids) => _finishes.Written(mid, rids);

    /// <summary>Enqueues what a load found outstanding; false when the load failed (the next sweep tries again).</summary>
    public bool Apply(QueueLoaded l, DestinationQueue queue, DateTimeOffset now)
    {
        try { return l.Messages is not null ? Enqueue(_finishes.Outstanding(l.Generation, l.Messages), l.Messages.Count, queue, now) : Failed(l, now); }
        finally { _finishes.LoadCompleted(l.Generation); } // after the filter: it forgets what this load needed
    }

    private bool Failed(QueueLoaded l, DateTimeOffset now)
    {
        // Mail stays in the cluster spool; the next sweep tries again (and Resume restarts a stopped entity).
        log.Warning("cluster_queue_load_failed", $"Destination {domain}: queue not loaded from the cluster spool: {l.Error}",
            ("domain", domain.Name));
        _nextReconcile = now;
        return false;
    }

    private bool Enqueue(IReadOnlyList<(SpooledMessage Message, List<int> Rids)> outstanding, int messages, DestinationQueue queue, DateTimeOffset now)
    {
        var added = 0;
        foreach (var (spooled, rids) in outstanding)
        {
            var (message, recipients) = Dispatcher.Refs(spooled, rids);
            index.Add(domain, message, recipients);
            added += queue.Enqueue(message, recipients, now);
        }
        if (!Loaded && messages > 0)
            log.Info("cluster_queue_loaded", $"Destination {domain}: {messages} messages loaded from the cluster spool",
                ("domain", domain.Name), ("messages", messages));
        else if (added > 0)
            log.Warning("cluster_queue_reconciled", $"Destination {domain}: {added} recipients found in the cluster spool that were never told to this owner",
                ("domain", domain.Name), ("recipients", added));
        Loaded = true;
        return true;
    }
}
