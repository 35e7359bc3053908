using Akka.Actor;
using Akka.Cluster.Sharding;
using Akka.Persistence;
using MtaSts.Actors.Destinations;
using MtaSts.Actors.Dns;
using MtaSts.Actors.Engine.Delivery;
using MtaSts.Actors.Engine.Policy;
using MtaSts.Actors.Engine.Protocol;
using MtaSts.Actors.Logging;

namespace MtaSts.Actors.Engine.Destinations;

/// <summary>
/// One destination domain: a sharded, persistent entity. It owns the queue of recipients for the domain, the
/// connection limits (concurrent connections, messages per connection), the retry schedule and the MTA-STS policy
/// it last resolved. Actor = receive → ask the pure core → persist → apply → side effects; it never blocks: the
/// policy resolver and the connections answer with messages.
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
    private readonly Dictionary<long, Conn> _conns = new();
    private int _opening;
    private int _eventsSinceSnapshot;
    private int _concurrencyCap;
    private PolicyState _policy = PolicyState.None;

    private sealed class Conn(IActorRef actor)
    {
        public IActorRef Actor { get; } = actor;
        public bool Open;
        public DeliveryJob? Job;
        public int Sent;
        public DateTimeOffset IdleSince;
        public string Peer = "";
    }

    private sealed record Wake;
    private sealed record Sweep;
    private sealed record IdleCheck;

    /// <param name="entityId">The domain, or <c>domain@node</c> in a cluster (each node's mail has its own entity).</param>
    public DestinationActor(string entityId, DeliveryServices services, PendingIndex index)
    {
        _domain = Sharding.DestinationMessageExtractor.DomainOf(entityId);
        _svc = services;
        _index = index;
        _state = new DestinationState(_domain);
        _effects = new DestinationEffects(services, index, _domain);
        PersistenceId = "destination-" + entityId;
    }

    public static Props Props(string entityId, DeliveryServices services, PendingIndex index) =>
        Akka.Actor.Props.Create(() => new DestinationActor(entityId, services, index));

    public override string PersistenceId { get; }
    public ITimerScheduler Timers { get; set; } = null!;

    private DateTimeOffset Now => _svc.Clock.GetUtcNow();
    private int InitialConcurrency => Math.Min(_svc.Tuning.InitialConcurrency, Settings.Profile.MaxConcurrentConnections);
    private DestinationSettings Settings => _svc.Settings(_domain);
    private DestinationQueue Queue => _state.Queue;
    // Recipient limit (N per M minutes) of the current profile: null when it has none.
    private RecipientRateLimiter? RateLimiter => _state.RateLimiter(Settings.Profile.RecipientLimit);
    private MailLog MailLog => _svc.Log;

    protected override SupervisorStrategy SupervisorStrategy() =>
        // A failing connection is stopped; the destination re-plans (its job's recipients are released).
        new OneForOneStrategy(_ => Directive.Stop);

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
                _concurrencyCap = InitialConcurrency;
                // Pull everything the spool still holds for us: a (re)started entity never forgets mail.
                foreach (var e in _index.For(_domain)) Queue.Enqueue(e.Message, e.Recipients, Now);
                Timers.StartPeriodicTimer("sweep", new Sweep(), _svc.Tuning.ExpirySweep);
                Context.SetReceiveTimeout(_svc.Tuning.PassivateAfter);
                Pump();
                break;
        }
    }

    protected override void OnCommand(object message)
    {
        switch (message)
        {
            case EnqueueRecipients e:
                if (Queue.Enqueue(e.Message, e.Recipients, Now) > 0) Pump();
                break;
            case Resume:
                _concurrencyCap = Math.Min(Math.Max(_concurrencyCap, InitialConcurrency), Settings.Profile.MaxConcurrentConnections);
                Pump();
                break;
            case DeliverNow:
                Queue.MakeAllDue(Now);
                _concurrencyCap = Math.Max(_concurrencyCap, InitialConcurrency);
                Pump();
                break;
            case GetDestinationStatus:
                Sender.Tell(new DestinationStatus(_domain, Queue.RecipientCount, Queue.DeferredCount, _conns.Count,
                    Settings.Profile.MaxConcurrentConnections, Queue.NextDue, Queue.LastError));
                break;
            case Wake:
                Pump();
                break;
            case Sweep:
                Commit(_state.Decide(new ExpirySweep(), Settings, Now));
                if (_index.Loaded && Queue.PruneRetryRecords((mid, rid) => _index.Contains(_domain, mid, rid)) is > 0 and var pruned)
                    MailLog.Debug("retry_records_pruned", $"Destination {_domain}: {pruned} retry records of finished mail dropped",
                        ("domain", _domain.Name));
                Pump();
                break;
            case IdleCheck:
                CloseIdle();
                break;
            case PolicyResolved p:
                _policy = _policy.Answered(p.Resolution, p.Failed, Now);
                Pump();
                break;
            case ConnectionActor.Ready r:
                OnReady(r);
                break;
            case ConnectionActor.OpenFailed f:
                OnOpenFailed(f);
                break;
            case ConnectionActor.Done d:
                OnDone(d);
                break;
            case Terminated t:
                OnTerminated(t.ActorRef);
                break;
            case ReceiveTimeout:
                if (Queue.IsEmpty && _conns.Count == 0 && _opening == 0)
                    Context.Parent.Tell(new Passivate(PoisonPill.Instance));
                break;
            case SaveSnapshotSuccess s:
                // Older snapshots and the events they cover are no longer needed.
                DeleteSnapshots(new SnapshotSelectionCriteria(s.Metadata.SequenceNr - 1));
                DeleteMessages(s.Metadata.SequenceNr);
                break;
            case SaveSnapshotFailure f:
                MailLog.Warning("snapshot_failed", $"Destination {_domain} snapshot failed: {f.Cause.Message}", ("domain", _domain.Name));
                break;
            case DeleteMessagesSuccess or DeleteMessagesFailure or DeleteSnapshotsSuccess or DeleteSnapshotsFailure:
                break;
            default:
                Unhandled(message);
                break;
        }
    }

    // ---------------- planning ----------------

    /// <summary>Hands due mail to idle connections and opens new ones up to the limit; schedules the next wake.</summary>
    private void Pump()
    {
        if (_svc.Work.Draining) return; // graceful stop: no new connections or transactions
        var now = Now;
        if (!Queue.HasDue(now))
        {
            ScheduleWake();
            return;
        }
        if (!PolicyReady(now)) return;
        if (RateLimiter is { } limiter && limiter.Query(now) is { Available: <= 0 } answer)
        {
            // Recipient limit reached: nothing goes until a slot opens (a 0 limit holds the mail; the sweep re-checks).
            if (answer.NextSlotAt is { } slot) Timers.StartSingleTimer("wake", new Wake(), slot - now + TimeSpan.FromMilliseconds(5));
            return;
        }

        foreach (var c in _conns.Values)
        {
            if (!c.Open || c.Job is not null) continue;
            if (!Feed(c, now)) break;
        }

        var profile = Settings.Profile;
        var cap = Math.Min(_concurrencyCap, profile.MaxConcurrentConnections);
        if (_conns.Count < cap && Queue.HasDue(now))
        {
            // Open no more connections than there are due messages not yet covered by connections being opened.
            var wanted = Math.Min(cap - _conns.Count, CountDue(now, cap) - _opening);
            for (var i = 0; i < wanted; i++) OpenConnection();
        }
        ScheduleWake();
    }

    private int CountDue(DateTimeOffset now, int limit)
    {
        // The queue's index is ordered by due time; counting up to `limit` is O(limit).
        var n = 0;
        var q = Queue;
        foreach (var due in q.DueTimes())
        {
            if (due > now || n >= limit) break;
            n++;
        }
        return n;
    }

    private bool PolicyReady(DateTimeOffset now)
    {
        if (!Settings.Profile.MtaSts || Settings.Profile.HasSmtpRoute) return true;
        var policyActor = _svc.PolicyActor();
        if (policyActor is null) return true;
        var fresh = _policy.ResolvedAt is { } at && now - at < _svc.Tuning.PolicyReuse;
        // A policy that is still valid (RFC 8461 §3.2 max_age) keeps applying while it is re-checked: the periodic
        // TXT re-check must not stall delivery. Without one ("no policy", a failed fetch) delivery waits for the
        // answer, since the domain may just have published a policy and sending meanwhile would be a downgrade.
        var stillValid = _policy.HasValidPolicy(now);
        if (fresh || _policy.Pending) return fresh || stillValid;
        _policy = _policy with { Pending = true };
        policyActor.Ask<PolicyResolved>(new ResolvePolicy(_domain), _svc.Tuning.PolicyTimeout)
            .PipeTo(Self, failure: ex => new PolicyResolved(_domain, null, $"policy resolution timed out: {ex.Message}"));
        return stillValid;
    }

    private void OpenConnection()
    {
        var dcid = _svc.Dcids.Next();
        var request = new SessionRequest(_domain, Settings, _policy.Resolution, dcid);
        var child = Context.ActorOf(ConnectionActor.Props(request, _svc.Transport), "c" + dcid);
        Context.Watch(child);
        _conns[dcid] = new Conn(child);
        _opening++;
    }

    /// <summary>Gives the connection its next message, or closes it at its message limit. False when nothing is due.</summary>
    private bool Feed(Conn c, DateTimeOffset now)
    {
        var max = Settings.Profile.MaxMessagesPerConnection;
        if (c.Sent >= max || _svc.Work.Draining)
        {
            c.Open = false;
            c.Actor.Tell(new ConnectionActor.Close());
            return true;
        }
        // Profile max-recipients-per-transaction: a message with more recipients here goes in several transactions.
        var want = Settings.Profile.MaxRecipientsPerTransaction;
        var limiter = RateLimiter;
        if (limiter is not null)
        {
            var available = limiter.Available(now);
            if (available <= 0)
            {
                // Pump schedules the wake for the next slot; meanwhile the connection idles (and is closed if it waits long).
                c.IdleSince = now;
                Timers.StartSingleTimer("idle", new IdleCheck(), _svc.Tuning.ConnectionIdleTime);
                return false;
            }
            want = (int)Math.Min(want, available);
        }
        var next = Queue.TakeDue(now, want);
        if (next is null)
        {
            c.IdleSince = now;
            Timers.StartSingleTimer("idle", new IdleCheck(), _svc.Tuning.ConnectionIdleTime);
            return false;
        }
        var (msg, rcpts) = next.Value;
        if (limiter is not null)
        {
            // Counted when handed out (a refused recipient still used a slot, as the vendor counts RCPTs), so applied
            // before the write: the next Feed must see the slot taken. A lost write undercounts one job after a crash.
            var counted = new RecipientsCounted(rcpts.Count, now);
            _state.Apply(counted);
            PersistAsync(counted, _ => CountForSnapshot(1));
        }
        c.Job = new DeliveryJob(msg, rcpts.Select(r => r.Ref).ToArray());
        _svc.Work.DeliveryStarted();
        c.Sent++;
        c.Actor.Tell(c.Job);
        return true;
    }

    private void ScheduleWake()
    {
        if (Queue.NextDue is { } due)
        {
            var delay = due - Now;
            if (delay < TimeSpan.Zero) delay = TimeSpan.Zero;
            if (Queue.InFlightCount == 0 || delay > TimeSpan.Zero)
                Timers.StartSingleTimer("wake", new Wake(), delay + TimeSpan.FromMilliseconds(5));
        }
    }

    private void CloseIdle()
    {
        var now = Now;
        foreach (var c in _conns.Values)
        {
            if (!c.Open || c.Job is not null) continue;
            if (now - c.IdleSince >= _svc.Tuning.ConnectionIdleTime - TimeSpan.FromMilliseconds(50))
            {
                c.Open = false;
                c.Actor.Tell(new ConnectionActor.Close());
            }
            else Timers.StartSingleTimer("idle", new IdleCheck(), _svc.Tuning.ConnectionIdleTime);
        }
    }

    // ---------------- connection outcomes ----------------

    private void OnReady(ConnectionActor.Ready r)
    {
        if (!_conns.TryGetValue(r.Dcid, out var c)) return;
        _opening--;
        c.Open = true;
        c.Peer = r.Peer;
        Feed(c, Now);
        Pump();
    }

    private void OnOpenFailed(ConnectionActor.OpenFailed f)
    {
        if (_conns.Remove(f.Dcid)) _opening--;
        if (_conns.Values.Any(c => c.Open) && f.Kind == RecipientOutcomeKind.Transient)
        {
            // The destination works but refuses more parallel sessions: lower our concurrency, keep the mail due.
            _concurrencyCap = Math.Max(1, _conns.Count);
            return;
        }
        // Nothing gets through (DNS, every MX down, TLS required but failed, MTA-STS: no usable MX).
        _concurrencyCap = Math.Max(1, Math.Min(InitialConcurrency, Settings.Profile.MaxConcurrentConnections / 4));
        Commit(_state.Decide(new DestinationUnreachable(f.Kind, f.Detail, f.Status), Settings, Now), ScheduleWake);
    }

    private void OnDone(ConnectionActor.Done d)
    {
        if (!_conns.TryGetValue(d.Dcid, out var c)) return;
        Commit(_state.Decide(new OutcomesReported(d.Dcid, d.Job.Message, d.Job.Recipients, d.Result.Outcomes), Settings, Now), () =>
        {
            // After the effects: their finish task is tracked before a graceful stop sees the delivery as ended.
            if (c.Job is not null) _svc.Work.DeliveryEnded();
            c.Job = null;
            // Slow start (Postfix-style positive feedback): a delivery while every allowed connection is in use earns
            // one more connection, up to the profile's limit, so a backlog ramps up in rounds.
            if (d.Result.Outcomes.Any(o => o.Kind == RecipientOutcomeKind.Delivered) && _conns.Count >= _concurrencyCap)
                _concurrencyCap = Math.Min(Settings.Profile.MaxConcurrentConnections, _concurrencyCap + 1);
            if (d.Result.ConnectionUsable && c.Open) Feed(c, Now);
            else c.Open = false;
            Pump();
        });
    }

    private void OnTerminated(IActorRef actor)
    {
        var entry = _conns.FirstOrDefault(kv => kv.Value.Actor.Equals(actor));
        if (entry.Value is null) return;
        _conns.Remove(entry.Key);
        // Stopped while still opening (neither Ready nor OpenFailed arrived, e.g. it crashed): free its opening slot.
        if (!entry.Value.Open && entry.Value.Job is null && entry.Value.Peer == "") _opening = Math.Max(0, _opening - 1);
        // Crashed without a result: the recipients were not confirmed — retry them (maybe a duplicate, never a loss).
        ReleaseJob(entry.Value);
        Pump();
    }

    private void ReleaseJob(Conn c)
    {
        if (c.Job is not { } job) return;
        _state.Apply(new RecipientsReleased(job.Message.Mid, job.Recipients.Select(r => r.Rid).ToArray()));
        c.Job = null;
        _svc.Work.DeliveryEnded();
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
            _effects.Run(d.Effects);
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
            _effects.Run(d.Effects);
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
        MailLog.Critical("journal_failed", $"Destination {_domain}: journal write failed ({cause.GetType().Name}: {cause.Message}); " +
            "the destination restarts on the next resume, its mail stays in the spool", ("domain", _domain.Name));
        base.OnPersistFailure(cause, @event, sequenceNr);
    }

    protected override void PostStop()
    {
        foreach (var c in _conns.Values) ReleaseJob(c);
        base.PostStop();
    }
}
