using Akka.Actor;
using Akka.Cluster.Sharding;
using Akka.Persistence;
using MtaSts.Actors.DestinationControls;
using MtaSts.Actors.Dns;
using MtaSts.Actors.Engine.Delivery;
using MtaSts.Actors.Engine.Policy;
using MtaSts.Actors.Engine.Intake;
using MtaSts.Actors.Spool;

namespace MtaSts.Actors.Engine.Destination;

/// <summary>
/// One destination domain: a sharded, persistent entity, a shell around two pure parts: <see cref="DestinationState"/>
/// (queue, retry schedule, recipient limit: Decide → PersistAll(changes, Apply) → effects) and
/// <see cref="ConnectionPlanner"/> (connections, slow start, jobs, idle close: effects this actor runs — children,
/// timers, the recipient-limit journal). It never blocks: the policy resolver and the connections answer with messages.
/// Persisted: only retry records (deferrals and their end). A first-attempt success persists nothing here — the
/// spool's done record is the durable outcome — which keeps the journal off the hot path.
/// </summary>
public sealed class DestinationActor : UntypedPersistentActor, IWithTimers
{
    private readonly DestinationDomain _domain;
    private readonly DeliveryServices _svc;
    private readonly PendingIndex _index;
    private readonly DestinationState _state;
    private readonly DestinationEffects _effects;
    private readonly ConnectionPlanner _plan;
    private readonly Dictionary<long, IActorRef> _children = new();
    private int _eventsSinceSnapshot;
    private PolicyState _policy = PolicyState.None;
    private bool _handingOff;
    /// <summary>Cluster: the queue's truth is the shared spool, read by this owner; null on a single node.</summary>
    private readonly IClusterSpool? _clusterSpool;
    private DateTimeOffset _nextReconcile;

    private sealed record Wake;
    private sealed record FinishWritten(long Mid, int[] Rids);
    /// <summary>The cluster spool's outstanding recipients of this domain (or why they could not be read).</summary>
    private sealed record QueueLoaded(long Generation, IReadOnlyList<RecoveredMessage>? Messages, string? Error);
    private sealed record Sweep; // expiry and retry-record pruning
    private sealed record IdleCheck;
    private sealed record ReloadQueue; // cluster: the second read of the spool after this owner started

    /// <summary>A new owner after a shard move reads the cluster spool again this long after its first load: the
    /// accepting nodes' enqueues sent to the old home while the coordinator still advertised it (the removal margin)
    /// are dropped, and the first load may have read the spool before those messages committed (chaos (c): 12 messages
    /// waited for the 2-minute reconcile).</summary>
    private static readonly TimeSpan FirstReload = TimeSpan.FromSeconds(10);

    /// <param name="entityId">The destination domain (one entity per domain, also in a cluster).</param>
    public DestinationActor(string entityId, DeliveryServices services, PendingIndex index)
    {
        _domain = DestinationMessageExtractor.DomainOf(entityId);
        _svc = services;
        _index = index;
        _state = new DestinationState(_domain);
        _clusterSpool = services.Spool as IClusterSpool;
        _effects = new DestinationEffects(services, index, _domain);
        var self = Self;
        _effects.Finished = (mid, rids) => self.Tell(new FinishWritten(mid, rids));
        _plan = new ConnectionPlanner(_state, services.Dcids.Next);
        PersistenceId = "destination-" + entityId;
    }

    public static Props Props(string entityId, DeliveryServices services, PendingIndex index) =>
        Akka.Actor.Props.Create(() => new DestinationActor(entityId, services, index));

    public override string PersistenceId { get; }
    public ITimerScheduler Timers { get; set; } = null!;

    private DateTimeOffset Now => _svc.Clock.GetUtcNow();
    private DestinationSettings Settings => _svc.Settings(_domain);
    private DestinationQueue Queue => _state.Queue;

    private PlanContext Plan()
    {
        var now = Now;
        return new(Settings.Profile, _svc.Tuning, now, _svc.Work.Draining || _handingOff, () => PolicyReady(now), _state.Suspended is not null);
    }

    // A failing connection is stopped; the destination re-plans (its job's recipients are released).
    protected override SupervisorStrategy SupervisorStrategy() => new OneForOneStrategy(_ => Directive.Stop);

    protected override void OnRecover(object message)
    {
        switch (message)
        {
            case SnapshotOffer { Snapshot: DestinationSnapshot s }:
                _state.ApplySnapshot(s);
                break;
            case IDestinationEvent e:
                _state.Apply(e);
                break;
            case RecoveryCompleted:
                _plan.Start(Plan());
                // Pull everything the spool still holds for us: a (re)started entity never forgets mail. In a cluster
                // that is the cluster spool (mail accepted on any node, or owned by a node that is gone).
                if (_clusterSpool is not null) LoadClusterQueue();
                else foreach (var e in _index.For(_domain)) Queue.Enqueue(e.Message, e.Recipients, Now);
                Timers.StartPeriodicTimer("sweep", new Sweep(), _svc.Tuning.ExpirySweep);
                Context.SetReceiveTimeout(_svc.Tuning.PassivateAfter);
                Run(_plan.Pump(Plan()));
                break;
        }
    }

    protected override void OnCommand(object message)
    {
        switch (message)
        {
            case EnqueueRecipients e:
            {
                // Cluster: an enqueue that arrives after this owner loaded and finished the recipient is not new mail.
                var recipients = _clusterSpool is null ? e.Recipients
                    : e.Recipients.Where(r => !_finishedRecently.Contains(e.Message.Mid, r.Rid, Now)).ToList();
                if (recipients.Count == 0) break;
                if (_clusterSpool is not null) _index.Add(_domain, e.Message, recipients); // this node owns it now
                if (Queue.Enqueue(e.Message, recipients, Now) > 0) Run(_plan.Pump(Plan()));
                break;
            }
            case FinishWritten w:
                _recentFinishes.Written(w.Mid, w.Rids);
                StopIfHandedOff();
                break;
            case QueueLoaded l:
                OnQueueLoaded(l);
                break;
            case HandOff:
                // Graceful leave / rebalance: no new transactions; the ones in flight report (and are journaled)
                // before the entity stops, so the next owner starts from their outcome, not from a duplicate.
                _handingOff = true;
                Run(_plan.CloseIdle(Plan() with { Now = DateTimeOffset.MaxValue }));
                StopIfHandedOff();
                break;
            case Resume:
                Run(_plan.Resume(Plan()));
                break;
            case DeliverNow:
                Run(_plan.DeliverNow(Plan()));
                break;
            case GetDestinationStatus:
                Sender.Tell(Status());
                break;
            case SuspendDelivery or ResumeDelivery:
            {
                // Journaled (survives a restart); the answer is the status after the change.
                var sender = Sender;
                Commit(_state.Decide(message, Settings, Now), () =>
                {
                    Run(_plan.Pump(Plan()));
                    sender.Tell(Status());
                });
                break;
            }
            case RemoveQueued rq:
            {
                var sender = Sender;
                var counted = _state.Count(rq);
                Commit(_state.Decide(rq, Settings, Now), () =>
                {
                    Run(_plan.Pump(Plan()));
                    sender.Tell(counted);
                });
                break;
            }
            case Wake:
                Run(_plan.Pump(Plan()));
                break;
            case Sweep:
                Commit(_state.Decide(new ExpirySweep(), Settings, Now));
                // Cluster: a message told to us over the network can be lost with a node; the spool is the truth.
                if (_clusterSpool is not null && _queueLoaded && Now >= _nextReconcile) LoadClusterQueue();
                if (_index.Loaded && (_queueLoaded || _clusterSpool is null) && Queue.PruneRetryRecords((mid, rid) => _index.Contains(_domain, mid, rid)) is > 0 and var pruned)
                    _svc.Log.Debug("retry_records_pruned", $"Destination {_domain}: {pruned} retry records of finished mail dropped",
                        ("domain", _domain.Name));
                Run(_plan.Pump(Plan()));
                break;
            case IdleCheck:
                Run(_plan.CloseIdle(Plan()));
                break;
            case ReloadQueue:
                LoadClusterQueue();
                break;
            case PolicyResolved p:
                _policy = _policy.Answered(p.Resolution, p.Failed, Now);
                Run(_plan.Pump(Plan()));
                break;
            case ConnectionActor.Ready r:
                Run(_plan.Ready(r.Dcid, Plan()));
                break;
            case ConnectionActor.OpenFailed f:
                if (_plan.OpenFailed(f.Dcid, f.Kind == RecipientOutcomeKind.Transient, Plan()))
                    // Nothing gets through (DNS, every MX down, TLS required but failed, MTA-STS: no usable MX).
                    Commit(_state.Decide(new DestinationUnreachable(f.Kind, f.Detail, f.Status), Settings, Now),
                        () => Run(_plan.Wake(Plan())));
                break;
            case ConnectionActor.Done d when _plan.Has(d.Dcid):
                Commit(_state.Decide(new OutcomesReported(d.Dcid, d.Job.Message, d.Job.Recipients, d.Result.Outcomes), Settings, Now),
                    // After the effects: their finish task is tracked before a graceful stop sees the delivery as ended.
                    () =>
                    {
                        Run(_plan.Done(d.Dcid, d.Result.Outcomes.Any(o => o.Kind == RecipientOutcomeKind.Delivered),
                            d.Result.ConnectionUsable, Plan()));
                        StopIfHandedOff();
                    });
                break;
            case Terminated t when long.TryParse(t.ActorRef.Path.Name.AsSpan(1), out var dcid) && _children.Remove(dcid):
                Run(_plan.Stopped(dcid, Plan()));
                StopIfHandedOff();
                break;
            case ReceiveTimeout:
                if (Queue.IsEmpty && _plan.IsIdle) Context.Parent.Tell(new Passivate(PoisonPill.Instance));
                break;
            case SaveSnapshotSuccess s:
                // Older snapshots and the events they cover are no longer needed.
                DeleteSnapshots(new SnapshotSelectionCriteria(s.Metadata.SequenceNr - 1));
                DeleteMessages(s.Metadata.SequenceNr);
                break;
            case SaveSnapshotFailure f:
                _svc.Log.Warning("snapshot_failed", $"Destination {_domain} snapshot failed: {f.Cause.Message}", ("domain", _domain.Name));
                break;
            case DeleteMessagesSuccess or DeleteMessagesFailure or DeleteSnapshotsSuccess or DeleteSnapshotsFailure or Terminated
                or ConnectionActor.Done: // of a connection already gone
                break;
            default:
                Unhandled(message);
                break;
        }
    }

    private bool _queueLoaded;

    /// <summary>Cluster mode: what this owner finished that a queue load in flight may still list as outstanding.</summary>
    private readonly RecentFinishes _recentFinishes = new();

    /// <summary>Cluster mode: finished recipients an enqueue delayed by a shard move must not bring back.</summary>
    private readonly FinishedRecently _finishedRecently = new(TimeSpan.FromMinutes(5), 20_000);

    private void LoadClusterQueue()
    {
        _nextReconcile = Now + _svc.Tuning.ClusterReconcile;
        var generation = _recentFinishes.LoadIssued();
        _clusterSpool!.OutstandingAsync(_domain.Name).PipeTo(Self, success: m => new QueueLoaded(generation, m, null),
            failure: ex => new QueueLoaded(generation, null, ex.Message));
    }

    /// <summary>Runs a decision's effects, first noting (cluster mode) which recipients are being finished.</summary>
    private void RunEffects(IReadOnlyList<DestinationEffect> effects)
    {
        if (_clusterSpool is not null)
            foreach (var effect in effects)
                if (effect is FinishRecipients f)
                {
                    _recentFinishes.Finishing(f.Message.Mid, f.Rids);
                    _finishedRecently.Finished(f.Message.Mid, f.Rids, Now);
                }
        _effects.Run(effects);
    }

    private void OnQueueLoaded(QueueLoaded l)
    {
        try { ApplyQueueLoad(l); }
        finally { _recentFinishes.LoadCompleted(l.Generation); } // after the filter: it forgets what this load needed
    }

    private void ApplyQueueLoad(QueueLoaded l)
    {
        if (l.Messages is null)
        {
            // Mail stays in the cluster spool; the next sweep tries again (and Resume restarts a stopped entity).
            _svc.Log.Warning("cluster_queue_load_failed", $"Destination {_domain}: queue not loaded from the cluster spool: {l.Error}",
                ("domain", _domain.Name));
            _nextReconcile = Now;
            return;
        }
        var added = 0;
        foreach (var r in l.Messages)
        {
            // A load read before a done record committed still lists that recipient: it is finished, not queued.
            var rids = r.OutstandingRids.Where(rid => !_recentFinishes.Stale(l.Generation, r.Message.Mid, rid)).ToList();
            if (rids.Count == 0) continue;
            var (message, recipients) = Dispatcher.Refs(r.Message, rids);
            _index.Add(_domain, message, recipients);
            added += Queue.Enqueue(message, recipients, Now);
        }
        if (!_queueLoaded && l.Messages.Count > 0)
            _svc.Log.Info("cluster_queue_loaded", $"Destination {_domain}: {l.Messages.Count} messages loaded from the cluster spool",
                ("domain", _domain.Name), ("messages", l.Messages.Count));
        else if (added > 0)
            _svc.Log.Warning("cluster_queue_reconciled", $"Destination {_domain}: {added} recipients found in the cluster spool that were never told to this owner",
                ("domain", _domain.Name), ("recipients", added));
        if (!_queueLoaded) Timers.StartSingleTimer("reload", new ReloadQueue(), FirstReload);
        _queueLoaded = true;
        Run(_plan.Pump(Plan()));
    }

    private void StopIfHandedOff()
    {
        // Also after the done records of what was delivered: the next owner loads the queue from the spool.
        if (_handingOff && Queue.InFlightCount == 0 && _effects.PendingFinishes == 0) Context.Stop(Self);
    }

    /// <summary>Runs the planner's effects: children, timers, the recipient-limit journal, delivery tracking.</summary>
    private void Run(IReadOnlyList<ConnectionEffect> effects)
    {
        var counted = new List<RecipientsCounted>();
        foreach (var effect in effects)
        {
            switch (effect)
            {
                case OpenConnection o:
                    var child = Context.ActorOf(ConnectionActor.Props(new SessionRequest(_domain, Settings, _policy.Resolution, o.Dcid),
                        _svc.Transport), "c" + o.Dcid);
                    _children[o.Dcid] = Context.Watch(child);
                    break;
                case SendJob s:
                    _svc.Work.DeliveryStarted();
                    _children[s.Dcid].Tell(s.Job);
                    break;
                case CloseConnection c: _children[c.Dcid].Tell(new ConnectionActor.Close()); break;
                case JournalCount j: counted.Add(j.Counted); break;
                case JobEnded: _svc.Work.DeliveryEnded(); break;
                case WakeIn w: Timers.StartSingleTimer("wake", new Wake(), w.Delay); break;
                case IdleCheckIn i: Timers.StartSingleTimer("idle", new IdleCheck(), i.Delay); break;
            }
        }
        if (counted.Count > 0) PersistAllAsync(counted, _ => CountForSnapshot(1));
    }

    private DestinationStatus Status() =>
        new(_domain, Queue.RecipientCount, Queue.DeferredCount, _plan.Count, Settings.Profile.MaxConcurrentConnections,
            _state.Suspended is null ? Queue.NextDue : null, Queue.LastError, _state.Suspended?.Since, _state.Suspended?.By);

    private bool PolicyReady(DateTimeOffset now)
    {
        if (!Settings.Profile.MtaSts || Settings.Profile.HasSmtpRoute || _svc.PolicyActor() is not { } policyActor) return true;
        var (ready, ask) = _policy.Readiness(now, _svc.Tuning.PolicyReuse);
        if (!ask) return ready;
        _policy = _policy with { Pending = true };
        policyActor.Ask<PolicyResolved>(new ResolvePolicy(_domain), _svc.Tuning.PolicyTimeout)
            .PipeTo(Self, failure: ex => new PolicyResolved(_domain, null, $"policy resolution timed out: {ex.Message}"));
        return ready;
    }

    /// <summary>Persist → apply → side effects. Journaled changes are applied by the journal callback (the same
    /// <see cref="DestinationState.Apply"/> that replays them on recovery); the others at once — PersistAll stashes
    /// every command until the write is done, so no command sees a half-applied decision. <paramref name="then"/>
    /// runs after the effects.</summary>
    private void Commit(Decision d, Action? then = null)
    {
        var journaled = new List<IDestinationEvent>();
        foreach (var change in d.Changes)
            if (change is IDestinationEvent e) journaled.Add(e);
            else _state.Apply(change);
        if (journaled.Count == 0)
        {
            RunEffects(d.Effects);
            then?.Invoke();
            return;
        }
        // Deferrals go up to 1,000 messages per journal row (a down destination defers its whole queue at once).
        PersistAll(DeferralBatch.Pack(journaled, 1000), e =>
        {
            _state.Apply(e);
            CountForSnapshot(e is DeferralBatch b ? b.Items.Count : 1);
        });
        DeferAsync(d, _ =>
        {
            RunEffects(d.Effects);
            then?.Invoke();
        });
    }

    private void CountForSnapshot(int events)
    {
        // A snapshot carries every retry record: taking one only after at least as many events as it holds records
        // keeps its cost O(1) per event however deep the deferred queue is.
        if ((_eventsSinceSnapshot += events) < Math.Max(_svc.Tuning.SnapshotEvery, Queue.RetryRecordCount)) return;
        _eventsSinceSnapshot = 0;
        SaveSnapshot(_state.ToSnapshot());
    }

    /// <summary>A failed journal write stops a persistent actor; the mail is safe in the spool and the gateway's
    /// periodic <see cref="Resume"/> restarts the entity (recovery re-reads the journal and the pending index).</summary>
    protected override void OnPersistFailure(Exception cause, object @event, long sequenceNr)
    {
        _svc.Log.Critical("journal_failed", $"Destination {_domain}: journal write failed ({cause.GetType().Name}: {cause.Message}); " +
            "the destination restarts on the next resume, its mail stays in the spool", ("domain", _domain.Name));
        base.OnPersistFailure(cause, @event, sequenceNr);
    }

    protected override void PostStop()
    {
        Run(_plan.StopAll());
        // Cluster: this node no longer owns the domain (moved, passivated); the next owner loads it from the spool.
        if (_clusterSpool is not null) _index.Forget(_domain);
        base.PostStop();
    }
}
