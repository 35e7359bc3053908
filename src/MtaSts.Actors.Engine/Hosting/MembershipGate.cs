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
/// that goes) and for a while after the process was paused (SIGSTOP, a VM freeze): the others may have downed it
/// meanwhile and it does not know yet.
/// </summary>
public sealed class MembershipGate : IDisposable
{
    private readonly ActorSystem _system;
    private readonly bool _clustered;
    private readonly long _pauseThresholdMs;
    private readonly long _pauseHoldMs;
    private readonly Timer? _ticker;
    private readonly MailLog _log;
    private volatile string? _membership;
    private volatile string? _shutdown;
    private long _lastTickMs = Environment.TickCount64;
    private long _pausedUntilMs;

    private MembershipGate(ActorSystem system, bool clustered, MailLog log)
    {
        _system = system;
        _clustered = clustered;
        _log = log;
        var fd = system.Settings.Config.GetTimeSpan("akka.cluster.failure-detector.acceptable-heartbeat-pause", TimeSpan.FromSeconds(3));
        // A pause shorter than the failure detector tolerates changes nothing; a longer one may have got this node downed.
        _pauseThresholdMs = (long)Math.Max(1000, fd.TotalMilliseconds);
        // Long enough for this node's own failure detector to mark the others unreachable if they have dropped it.
        _pauseHoldMs = 2 * _pauseThresholdMs + 1000;
        if (clustered) _ticker = new Timer(_ => Tick(), null, 250, 250);
    }

    /// <summary>Starts watching <paramref name="system"/>'s membership. Call after the actor system has started.</summary>
    public static MembershipGate Start(ActorSystem system, bool clustered, MailLog log)
    {
        var gate = new MembershipGate(system, clustered, log);
        var cluster = Cluster.Get(system);
        // The current status at once (a single node that has joined itself is Up before the listener starts); the
        // watcher's initial events then keep it current.
        gate.SetMembership(cluster.SelfMember.Status, 0);
        system.ActorOf(Props.Create(() => new Watcher(gate, cluster)), "membership-gate");
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
                if (now < Volatile.Read(ref _pausedUntilMs)) return "node was paused; waiting for the cluster to confirm membership";
            }
            return null;
        }
    }

    private void Tick()
    {
        var now = Environment.TickCount64;
        var gap = now - Interlocked.Exchange(ref _lastTickMs, now);
        if (gap <= _pauseThresholdMs) return;
        Volatile.Write(ref _pausedUntilMs, now + _pauseHoldMs);
        _log.Warning("cluster_node_paused", $"Node was paused for {gap / 1000.0:0.#} s: SMTP intake refused for {_pauseHoldMs / 1000.0:0.#} s " +
            "while the cluster confirms this node's membership", ("paused_ms", gap));
    }

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
    private sealed class Watcher : ReceiveActor
    {
        private readonly Cluster _cluster;
        private readonly HashSet<Address> _unreachable = new();
        private MemberStatus _status;

        public Watcher(MembershipGate gate, Cluster cluster)
        {
            _cluster = cluster;
            _status = cluster.SelfMember.Status;
            Receive<ClusterEvent.IMemberEvent>(e =>
            {
                if (e.Member.Address.Equals(cluster.SelfAddress)) _status = e.Member.Status;
                else if (e is ClusterEvent.MemberRemoved) _unreachable.Remove(e.Member.Address);
                gate.SetMembership(_status, _unreachable.Count);
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

        protected override void PreStart() =>
            _cluster.Subscribe(Self, ClusterEvent.SubscriptionInitialStateMode.InitialStateAsEvents,
                typeof(ClusterEvent.IMemberEvent), typeof(ClusterEvent.IReachabilityEvent));

        protected override void PostStop() => _cluster.Unsubscribe(Self);
    }
}
