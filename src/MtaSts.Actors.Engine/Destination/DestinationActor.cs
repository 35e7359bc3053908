using Akka.Actor;
using Akka.Cluster.Sharding;
using Akka.Persistence;
using MtaSts.Actors.Dns;
using MtaSts.Actors.Engine.Delivery;
using MtaSts.Actors.Engine.Intake;
using MtaSts.Actors.Engine.Policy;
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
    private readonly ConnectionEffects _connections;
    private readonly SnapshotCadence _snapshots = new();
    private readonly PolicyGate _policy;
    private bool _handingOff;
    /// <summary>The attempt outcome lines of the decision whose journal write is in flight (logged after it).</summary>
    private LogLine[]? _attemptLinesInFlight;
    /// <summary>Cluster: the queue's truth is the shared spool, read by this owner; null on a single node.</summary>
    private readonly ClusterQueueSync? _cluster;

    private sealed record FinishWritten(long Mid, int[] Rids);
    // Expiry and retry-record pruning. Every minute, so it must not count as traffic: it would reset the receive
    // timeout (PassivateAfter, 2 min) and an empty destination would never passivate (100,000 stayed, 1.2 GB).
    private sealed record Sweep : INotInfluenceReceiveTimeout;
    private sealed record ReloadQueue; // cluster: the second read of the spool after this owner started
    /// <summary>The node's connection budget reserved a token for this destination (it waited in line).</summary>
    private sealed record ConnectionGranted
    {
        public static readonly ConnectionGranted Instance = new();
    }
    /// <summary>Envelopes of messages beyond the window, read back from the spool (null: the read failed); an operator
    /// command that waited for them is handled again afterwards.</summary>
    private sealed record WindowLoaded(IReadOnlyList<(long Mid, MessageRef? Message, IReadOnlyList<RecipientRef> Recipients)>? Messages, string? Error,
        (RemoveQueued Command, IActorRef Sender)? Then = null);

    /// <param name="entityId">The destination domain (one entity per domain, also in a cluster).</param>
    public DestinationActor(string entityId, DeliveryServices services, PendingIndex index)
    {
        _domain = DestinationMessageExtractor.DomainOf(entityId);
        _svc = services;
        _index = index;
        if (services.Spool is IClusterSpool cluster) _cluster = new ClusterQueueSync(cluster, _domain, index, services.Log);
        // Paged queue only where the spool reads envelopes back; a cluster owner keeps what it loads (OutstandingAsync).
        _state = new DestinationState(_domain, _cluster is null && services.Spool.CanReadMessages ? services.Tuning.QueueWindow : int.MaxValue);
        _policy = new PolicyGate(_domain);
        var self = Self;
        _effects = new DestinationEffects(services, index, _domain) { Finished = (mid, rids) => self.Tell(new FinishWritten(mid, rids)) };
        // A token of the node's budget freed for this destination: plan again (it takes the token or passes it on).
        _plan = new ConnectionPlanner(_state, services.Dcids.Next, services.Budget?.Open(() => self.Tell(ConnectionGranted.Instance)));
        _connections = new ConnectionEffects(Context, () => Timers, services.Work,
            dcid => ConnectionActor.Props(new SessionRequest(_domain, Settings, _policy.Resolution, dcid), services.Transport), services.Log);
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
        var settings = Settings;
        return new(settings.Profile, _svc.Tuning, now, _svc.Work.Draining || _handingOff,
            () => _policy.Ready(settings.Profile, _svc.PolicyActor, now, _svc.Tuning.PolicyReuse, _svc.Tuning.PolicyTimeout, Self),
            _state.Suspended is not null, settings.Throttle, settings.Bounce.InitialRetryInterval);
    }

    // A failing connection is stopped; the destination re-plans (its job's recipients are released).
    protected override SupervisorStrategy SupervisorStrategy() => new OneForOneStrategy(_ => Directive.Stop);

    protected override void OnRecover(object message)
    {
        switch (message)
        {
            case SnapshotOffer { Snapshot: DestinationSnapshot s }: _state.ApplySnapshot(s); break;
            case IDestinationEvent e: _state.Apply(e); break;
            case RecoveryCompleted:
                _plan.Start(Plan());
                // Pull everything the spool still holds for us: a (re)started entity never forgets mail. In a cluster
                // that is the cluster spool (mail accepted on any node, or owned by a node that is gone).
                if (_cluster is not null) _cluster.Load(Now, _svc.Tuning.ClusterReconcile, Self);
                else
                    foreach (var e in _index.For(_domain))
                        if (e.Message is not null) Queue.Enqueue(e.Message, e.Recipients!, Now);
                        else Queue.EnqueuePaged(e.Mid, e.Rids.ToArray()); // compact index: read back when the window has room
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
                // Cluster: the owner indexes the mail, and a recipient it already finished is not new mail.
                if (Queue.Enqueue(e.Message, _cluster?.Accept(e, Now) ?? e.Recipients, Now) > 0) Run(_plan.Pump(Plan()));
                break;
            case WindowLoaded l:
                if (l.Messages is null)
                {
                    Queue.RefillFailed();
                    _svc.Log.Warning("queue_window_read_failed", $"Destination {_domain}: queued messages not read back from the spool: {l.Error}",
                        ("domain", _domain.Name));
                }
                else Queue.Refilled(l.Messages, Now);
                if (l.Then is var (command, sender))
                {
                    if (l.Messages is null) sender.Tell(new Status.Failure(new IOException($"queued messages of {_domain} could not be read from the spool: {l.Error}")));
                    else Self.Tell(command, sender);
                }
                Run(_plan.Pump(Plan()));
                break;
            case FinishWritten w:
                _cluster?.Written(w.Mid, w.Rids);
                StopIfHandedOff();
                break;
            case QueueLoaded l when _cluster is not null:
                if (!_cluster.Loaded && l.Messages is not null) Timers.StartSingleTimer("reload", new ReloadQueue(), ClusterQueueSync.FirstReload);
                if (_cluster.Apply(l, Queue, Now)) Run(_plan.Pump(Plan()));
                break;
            case HandOff:
                // Graceful leave / rebalance: no new transactions; the ones in flight report (and are journaled)
                // before the entity stops, so the next owner starts from their outcome, not from a duplicate.
                _handingOff = true;
                Run(_plan.CloseIdle(Plan() with { Now = DateTimeOffset.MaxValue }));
                StopIfHandedOff();
                break;
            case Resume: Run(_plan.Resume(Plan())); break;
            case DeliverNow: Run(_plan.DeliverNow(Plan())); break;
            case GetDestinationStatus: Sender.Tell(Status()); break;
            case SuspendDelivery or ResumeDelivery:
                // Journaled (survives a restart); the answer is the status after the change.
                CommitAndAnswer(message, Sender, Status);
                break;
            case RemoveQueued rq when rq.Mid is { } one ? Queue.Paged(one) : Queue.OverflowCount > 0:
                // Messages beyond the window: their envelopes first (a bounce needs them), then the command again.
                Read(Queue.TakeForRead(rq.Mid is { } m ? [m] : null), (rq, Sender));
                break;
            case RemoveQueued rq:
                var counted = _state.Count(rq);
                CommitAndAnswer(rq, Sender, () => counted);
                break;
            case ConnectionGranted: Run(_plan.Pump(Plan())); break;
            case ConnectionEffects.Wake:
                _connections.WakeFired();
                Run(_plan.Pump(Plan()));
                break;
            case Sweep:
                Commit(_state.Decide(new ExpirySweep(), Settings, Now));
                // Cluster: a message told to us over the network can be lost with a node; the spool is the truth.
                if (_cluster?.ReconcileDue(Now) == true) _cluster.Load(Now, _svc.Tuning.ClusterReconcile, Self);
                if (_index.Loaded && (_cluster?.Loaded ?? true) && Queue.PruneRetryRecords((mid, rid) => _index.Contains(_domain, mid, rid)) is > 0 and var pruned)
                    _svc.Log.Debug("retry_records_pruned", $"Destination {_domain}: {pruned} retry records of finished mail dropped",
                        ("domain", _domain.Name));
                Run(_plan.Pump(Plan()));
                break;
            case ConnectionEffects.IdleCheck: Run(_plan.CloseIdle(Plan())); break;
            case ReloadQueue: _cluster?.Load(Now, _svc.Tuning.ClusterReconcile, Self); break;
            case PolicyResolved p:
                _policy.Answered(p, Now);
                Run(_plan.Pump(Plan()));
                break;
            case ConnectionActor.Ready r: Run(_plan.Ready(r.Dcid, Plan(), r.Sent)); break;
            case ConnectionActor.OpenFailed f:
                Run(_plan.Replied([f.Reply], Plan())); // a throttling refusal (e.g. 421 at the banner) lowers the limits first
                if (_plan.OpenFailed(f.Dcid, f.Kind == RecipientOutcomeKind.Transient, Plan()))
                {
                    if (f.Kind == RecipientOutcomeKind.Transient && _plan.HeldUntil is { } held)
                        _svc.Log.Info("destination_unreachable", $"Destination {_domain} unreachable ({f.Status}): new mail waits until " +
                            $"{held.UtcDateTime:HH:mm:ss}Z for the next attempt", ("domain", _domain.Name), ("until", held));
                    // Nothing gets through (DNS, every MX down, TLS required but failed, MTA-STS: no usable MX).
                    Commit(_state.Decide(new DestinationUnreachable(f.Kind, f.Detail, f.Status), Settings, Now), () => Run(_plan.Wake(Plan())));
                }
                break;
            case ConnectionActor.Done d when _plan.Has(d.Dcid):
                Commit(_state.Decide(new OutcomesReported(d.Dcid, d.Job.Message, d.Job.Recipients, d.Result.Outcomes), Settings, Now),
                    // After the effects: their finish task is tracked before a graceful stop sees the delivery as ended.
                    () => { Run([.. _plan.Replied(d.Result.Outcomes.Select(o => o.Reply), Plan()),
                        .. _plan.Done(d.Dcid, d.Result.Delivered, d.Result.ConnectionUsable, Plan(), d.Result.SiteWanted)]); StopIfHandedOff(); });
                break;
            case Terminated t when _connections.Stopped(t.ActorRef, out var dcid):
                Run(_plan.Stopped(dcid, Plan()));
                StopIfHandedOff();
                break;
            case ReceiveTimeout: if (Queue.IsEmpty && _plan.IsIdle) Context.Parent.Tell(new Passivate(PoisonPill.Instance)); break;
            case SaveSnapshotSuccess s:
                // Older snapshots and the events they cover are no longer needed.
                DeleteSnapshots(new SnapshotSelectionCriteria(s.Metadata.SequenceNr - 1));
                DeleteMessages(s.Metadata.SequenceNr);
                break;
            case SaveSnapshotFailure f: _svc.Log.Warning("snapshot_failed", $"Destination {_domain} snapshot failed: {f.Cause.Message}", ("domain", _domain.Name)); break;
            case DeleteMessagesSuccess or DeleteMessagesFailure or DeleteSnapshotsSuccess or DeleteSnapshotsFailure or Terminated
                or ConnectionActor.Done: // of a connection already gone
                break;
            default: Unhandled(message); break;
        }
    }

    // Also after the done records of what was delivered: the next owner loads the queue from the spool.
    private void StopIfHandedOff()
    {
        if (_handingOff && Queue.InFlightCount == 0 && _effects.PendingFinishes == 0) Context.Stop(Self);
    }

    /// <summary>Runs the planner's effects and journals the recipient counts (the limit window survives a restart).</summary>
    private void Run(IReadOnlyList<ConnectionEffect> effects)
    {
        if (_connections.Run(effects) is { Count: > 0 } counted) PersistAllAsync(counted, _ => CountForSnapshot(1));
        Refill();
    }

    /// <summary>The window has room and messages wait beyond it: read their envelopes off the actor.</summary>
    private void Refill()
    {
        if (Queue.TakeRefill() is { Count: > 0 } batch) Read(batch);
    }

    private void Read(IReadOnlyList<(long Mid, int[] Rids)> batch, (RemoveQueued, IActorRef)? then = null)
    {
        ReadBack(_svc.Spool, batch).PipeTo(Self, success: m => new WindowLoaded(m, null, then), failure: ex => new WindowLoaded(null, ex.Message, then));

        static async Task<IReadOnlyList<(long, MessageRef?, IReadOnlyList<RecipientRef>)>> ReadBack(ISpool spool, IReadOnlyList<(long Mid, int[] Rids)> batch)
        {
            var result = new List<(long, MessageRef?, IReadOnlyList<RecipientRef>)>(batch.Count);
            foreach (var (mid, rids) in batch)
            {
                if (await spool.ReadMessageAsync(mid).ConfigureAwait(false) is not { } spooled)
                {
                    result.Add((mid, null, []));
                    continue;
                }
                var (message, recipients) = Dispatcher.Refs(spooled, rids);
                result.Add((mid, message, recipients));
            }
            return result;
        }
    }

    private DestinationStatus Status() => _state.Status(_plan.Count, Settings.Profile.MaxConcurrentConnections);

    /// <summary>An operator command: journaled, then re-planned; the answer is sent after the effects.</summary>
    private void CommitAndAnswer(object command, IActorRef sender, Func<object> answer) =>
        Commit(_state.Decide(command, Settings, Now), () =>
        {
            Run(_plan.Pump(Plan()));
            sender.Tell(answer());
        });

    /// <summary>Persist → apply → side effects. Journaled changes are applied by the journal callback (the same
    /// <see cref="DestinationState.Apply"/> that replays them on recovery); the others at once — PersistAll stashes
    /// every command until the write is done, so no command sees a half-applied decision. <paramref name="then"/>
    /// runs after the effects.</summary>
    private void Commit(Decision d, Action? then = null)
    {
        foreach (var change in d.Changes)
            if (change is not IDestinationEvent) _state.Apply(change);
        var journaled = d.Journaled.ToList();
        if (journaled.Count == 0)
        {
            After(d);
            return;
        }
        _attemptLinesInFlight = d.AttemptLines();
        // Deferrals go up to 1,000 messages per journal row (a down destination defers its whole queue at once).
        PersistAll(DeferralBatch.Pack(journaled, 1000), e =>
        {
            _state.Apply(e);
            CountForSnapshot(e is DeferralBatch b ? b.Items.Count : 1);
        });
        DeferAsync(d, After);

        void After(Decision decision)
        {
            _attemptLinesInFlight = null;
            // First noting (cluster mode) which recipients are being finished.
            _cluster?.Finishing(decision.Effects, Now);
            _effects.Run(decision.Effects);
            then?.Invoke();
        }
    }

    private void CountForSnapshot(int events)
    {
        if (_snapshots.Count(events, _svc.Tuning.SnapshotEvery, Queue.RetryRecordCount)) SaveSnapshot(_state.ToSnapshot());
    }

    /// <summary>A failed journal write stops a persistent actor; the mail is safe in the spool and the gateway's
    /// periodic <see cref="Resume"/> restarts the entity (recovery re-reads the journal and the pending index).</summary>
    protected override void OnPersistFailure(Exception cause, object @event, long sequenceNr)
    {
        // The attempts happened whatever became of the write: a write that timed out may still commit, and the
        // restarted destination then recovers the deferral and waits without logging the attempt again (seen under
        // overload in DestinationMemoryBench: 238 of 100,000 deferrals had no "Delayed" line). Bounces are not logged
        // here: their DSN and done record are effects that did not run, and the next incarnation decides them again.
        if (_attemptLinesInFlight is { Length: > 0 } attempts) _effects.Run(attempts);
        _attemptLinesInFlight = null;
        _svc.Log.Critical("journal_failed", $"Destination {_domain}: journal write failed ({cause.GetType().Name}: {cause.Message}); " +
            "the destination restarts on the next resume, its mail stays in the spool", ("domain", _domain.Name));
        base.OnPersistFailure(cause, @event, sequenceNr);
    }

    protected override void PostStop()
    {
        Run(_plan.StopAll());
        // Cluster: this node no longer owns the domain (moved, passivated); the next owner loads it from the spool.
        if (_cluster is not null) _index.Forget(_domain);
        base.PostStop();
    }
}
