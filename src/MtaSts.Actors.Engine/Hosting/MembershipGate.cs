using Akka.Actor;
using Akka;
using Akka.Cluster;
using MtaSts.Actors.Logging;

namespace MtaSts.Actors.Engine.Hosting;

/// <summary>
/// Whether this node may take mail, as a reason string (null = yes), kept current from cluster events so that the
/// SMTP listener's admission check is a field read. Refused when the actor system is shutting down or has terminated
/// (a node downed by the split-brain resolver ends that way), when this node is not an Up member, when it sees
/// unreachable members (until the split-brain resolver has decided which side stays, this node may be on the side
/// that goes) and after the process was paused (SIGSTOP, a VM freeze) until every other member has answered it again:
/// the others may have downed it meanwhile and it does not know yet.
/// </summary>
public sealed class MembershipGate : IDisposable
{
    private readonly ActorSystem _system;
    private readonly bool _clustered;
    private readonly long _pauseThresholdMs;
    private readonly Timer? _ticker;
    private readonly MailLog _log;
    private volatile string? _membership;
    private volatile string? _shutdown;
    private volatile string? _paused;
    private long _lastTickMs = Environment.TickCount64;
    private long _pauseGeneration;
    private IActorRef _watcher = ActorRefs.Nobody;

    private MembershipGate(ActorSystem system, bool clustered, MailLog log)
    {
        _system = system;
        _clustered = clustered;
        _log = log;
        var fd = system.Settings.Config.GetTimeSpan("akka.cluster.failure-detector.acceptable-heartbeat-pause", TimeSpan.FromSeconds(3));
        // A pause shorter than the failure detector tolerates changes nothing; a longer one may have got this node downed.
        _pauseThresholdMs = (long)Math.Max(1000, fd.TotalMilliseconds);
        if (clustered) _ticker = new Timer(_ => Tick(), null, 250, 250);
    }

    /// <summary>Starts watching <paramref name="system"/>'s membership. Call after the actor system has started.</summary>
    public static MembershipGate Start(ActorSystem system, bool clustered, MailLog log)
    {
        var gate = new MembershipGate(system, clustered, log);
        var cluster = Cluster.Get(system);
        // The current status at once; the watcher's initial events then keep it current. A single node has joined
        // itself before the listener starts (JoinAsync completed: it is Up), but Cluster.SelfMember comes from a read
        // view updated asynchronously and may still show its initial "Removed" for a while on a loaded machine
        // (seen in CI: 421 "status Removed" right after start).
        var initial = clustered ? cluster.SelfMember.Status : MemberStatus.Up;
        gate.SetMembership(initial, 0);
        gate._watcher = system.ActorOf(Props.Create(() => new Watcher(gate, cluster, initial)), "membership-gate");
        // The first phase of a coordinated shutdown (graceful stop, or this node downed): no mail from here on.
        CoordinatedShutdown.Get(system).AddTask(CoordinatedShutdown.PhaseBeforeServiceUnbind, "mtasts-close-intake", () =>
        {
            var reason = CoordinatedShutdown.Get(system).ShutdownReason;
            gate._shutdown = "actor system shutting down" + (reason is null ? "" : $" ({reason.GetType().Name})");
            return Task.FromResult(Done.Instance);
        });
        return gate;
    }

    /// <summary>Null when this node may take mail, else why not.</summary>
    public string? Refusal
    {
        get
        {
            if (_system.WhenTerminated.IsCompleted) return "actor system terminated";
            if (_shutdown is { } s) return s;
            if (_membership is { } m) return m;
            if (_clustered)
            {
                var now = Environment.TickCount64;
                var sinceTick = now - Volatile.Read(ref _lastTickMs);
                // The ticker has not run for longer than the failure detector tolerates: paused, and this may be the
                // first thing the process does after it resumed, before the ticker notices.
                if (sinceTick > _pauseThresholdMs) return $"node was paused for {sinceTick / 1000.0:0.#} s; waiting for the cluster to confirm membership";
                if (_paused is { } p) return p;
            }
            return null;
        }
    }

    private void Tick()
    {
        var now = Environment.TickCount64;
        var gap = now - Interlocked.Exchange(ref _lastTickMs, now);
        if (gap <= _pauseThresholdMs) return;
        // Closed until every other member has answered this node after the pause (see Watcher): a fixed hold is not
        // enough, a node the others removed meanwhile can take several seconds to learn it (measured 4–8 s).
        _paused = "node was paused; waiting for the cluster to confirm membership";
        _watcher.Tell(new ConfirmMembership(Interlocked.Increment(ref _pauseGeneration)));
        _log.Warning("cluster_node_paused", $"Node was paused for {gap / 1000.0:0.#} s: SMTP intake refused until every cluster member " +
            "has answered this node again", ("paused_ms", gap));
    }

    private void MembershipConfirmed(long generation, int members)
    {
        // A confirmation started before a later pause does not count for it.
        if (_paused is null || generation != Interlocked.Read(ref _pauseGeneration)) return;
        _paused = null;
        _log.Info("cluster_node_confirmed", $"After the pause {members} other cluster members answered this node: SMTP intake open again",
            ("members", members));
    }

    private sealed record ConfirmMembership(long Generation);
    private sealed record ConfirmTick(long Round);

    private void SetMembership(MemberStatus status, int unreachable)
    {
        var before = _membership;
        _membership = status != MemberStatus.Up ? $"not an Up cluster member (status {status})"
            : unreachable > 0 ? $"{unreachable} cluster member{(unreachable == 1 ? " is" : "s are")} unreachable; waiting for the split-brain resolver"
            : null;
        if (before != _membership && _clustered)
            _log.Info("cluster_intake", _membership is null ? "Cluster member Up and every member reachable: SMTP intake open"
                : $"SMTP intake closed: {_membership}", ("reason", _membership));
    }

    public void Dispose() => _ticker?.Dispose();

    /// <summary>Follows this node's status and the unreachable members.</summary>
    private sealed class Watcher : ReceiveActor, IWithTimers
    {
        public ITimerScheduler Timers { get; set; } = null!;

        private readonly Cluster _cluster;
        private readonly MembershipGate _gate;
        private readonly HashSet<Address> _unreachable = new();
        private readonly HashSet<Address> _unconfirmed = new();
        private MemberStatus _status;
        private long _round;
        private long _generation;
        private bool _awaiting;
        private int _confirming;

        public Watcher(MembershipGate gate, Cluster cluster, MemberStatus initial)
        {
            _cluster = cluster;
            _gate = gate;
            _status = initial;
            Receive<ClusterEvent.IMemberEvent>(e =>
            {
                if (e.Member.Address.Equals(cluster.SelfAddress)) _status = e.Member.Status;
                else if (e is ClusterEvent.MemberRemoved)
                {
                    _unreachable.Remove(e.Member.Address);
                    _unconfirmed.Remove(e.Member.Address); // decided by the resolver: no answer to wait for
                    CheckConfirmed();
                }
                gate.SetMembership(_status, _unreachable.Count);
            });
            // After a pause: every other member must answer an Identify sent after it (a node that removed this one has
            // quarantined it and never answers), re-sent each second while remoting reconnects.
            Receive<ConfirmMembership>(c =>
            {
                _generation = c.Generation;
                _awaiting = true;
                _unconfirmed.Clear();
                foreach (var m in cluster.State.Members)
                    if (!m.Address.Equals(cluster.SelfAddress) && m.Status != MemberStatus.Removed) _unconfirmed.Add(m.Address);
                _confirming = _unconfirmed.Count;
                _round++;
                Self.Tell(new ConfirmTick(_round));
                CheckConfirmed();
            });
            Receive<ConfirmTick>(t =>
            {
                if (t.Round != _round || _unconfirmed.Count == 0) return;
                foreach (var a in _unconfirmed)
                    Context.ActorSelection(new RootActorPath(a) / "system" / "cluster" / "core" / "daemon").Tell(new Identify(_round));
                Timers.StartSingleTimer("confirm", t, TimeSpan.FromSeconds(1));
            });
            Receive<ActorIdentity>(id =>
            {
                if (id.MessageId is long r && r == _round && id.Subject is { } subject) _unconfirmed.Remove(subject.Path.Address);
                CheckConfirmed();
            });
            Receive<ClusterEvent.UnreachableMember>(e =>
            {
                if (!e.Member.Address.Equals(cluster.SelfAddress)) _unreachable.Add(e.Member.Address);
                gate.SetMembership(_status, _unreachable.Count);
            });
            Receive<ClusterEvent.ReachableMember>(e =>
            {
                _unreachable.Remove(e.Member.Address);
                gate.SetMembership(_status, _unreachable.Count);
            });
            Receive<ClusterEvent.IClusterDomainEvent>(_ => { });
        }

        private void CheckConfirmed()
        {
            if (!_awaiting || _unconfirmed.Count > 0) return;
            _awaiting = false;
            _gate.MembershipConfirmed(_generation, _confirming);
        }

        protected override void PreStart() =>
            _cluster.Subscribe(Self, ClusterEvent.SubscriptionInitialStateMode.InitialStateAsEvents,
                typeof(ClusterEvent.IMemberEvent), typeof(ClusterEvent.IReachabilityEvent));

        protected override void PostStop() => _cluster.Unsubscribe(Self);
    }
}
