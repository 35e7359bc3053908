using Akka.Actor;
using MtaSts.Actors.DestinationControls;
using MtaSts.Actors.DestinationControls.Throttling;
using MtaSts.Actors.Dns;
using MtaSts.Actors.Logging;
using MtaSts.Actors.Spool;

namespace MtaSts.Actors.Engine.Delivery;

/// <summary>The profile and bounce profile that govern one destination (resolved per domain from the live config), and
/// its reply-driven throttling rules in the order they are tried (null: none).</summary>
public sealed record DestinationSettings(DestinationProfile Profile, BounceProfile Bounce, ThrottleRuleSet? Throttle = null);

/// <summary>Generates and queues DSNs (implemented by the bounce service; re-injects through the spool).</summary>
public interface IBounceSink
{
    /// <summary>Queues a DSN for these recipients (failed or delayed). Completes when the DSN is durable (or none is due).</summary>
    Task QueueAsync(BounceRequest request, CancellationToken ct = default);
}

/// <param name="LocalDiagnostic">A local reason given as the DSN's Diagnostic-Code (<c>X-MtaSts; …</c>) for recipients
/// without a remote reply (an operator bounce: "deleted by the operator").</param>
public sealed record BounceRequest(Destination.MessageRef Message, DestinationDomain Domain, IReadOnlyList<(Destination.RecipientRef Recipient, RecipientOutcome Outcome)> Recipients,
    bool Delayed = false, string? LocalDiagnostic = null);

/// <summary>Node-local services every destination actor uses. Injected through Props (never serialized).</summary>
public sealed record DeliveryServices(
    IDeliveryTransport Transport,
    ISpool Spool,
    MailLog Log,
    IdSequence Dcids,
    Func<DestinationDomain, DestinationSettings> Settings,
    IBounceSink Bounces,
    TimeProvider Clock,
    Func<IActorRef?> PolicyActor,
    EngineTuning Tuning)
{
    /// <summary>Finish/bounce tasks a graceful stop waits for.</summary>
    public BackgroundWork Work { get; init; } = new();
    /// <summary>The node's outbound connection budget (<c>mtasts.delivery.max-connections</c>); null: no node-wide limit.</summary>
    public ConnectionBudget? Budget { get; init; }
}

/// <summary>Engine knobs that are not per-destination controls.</summary>
public sealed record EngineTuning
{
    /// <summary>An idle connection is kept this long for new mail before QUIT (Postfix connection cache: 2 s).</summary>
    public TimeSpan ConnectionIdleTime { get; init; } = TimeSpan.FromSeconds(2);
    /// <summary>Connections a destination starts with; each delivery while all are busy adds one, up to the profile's
    /// limit (Postfix initial_destination_concurrency = 5).</summary>
    public int InitialConcurrency { get; init; } = 5;
    /// <summary>How often every domain with pending mail is sent <see cref="Destination.Resume"/> (restarts entities that
    /// stopped, e.g. after a journal failure).</summary>
    public TimeSpan ResumeInterval { get; init; } = TimeSpan.FromMinutes(1);
    /// <summary>An empty destination passivates after this long without traffic.</summary>
    public TimeSpan PassivateAfter { get; init; } = TimeSpan.FromMinutes(2);
    /// <summary>How long a resolved MTA-STS policy is reused by the destination before asking the resolver again.</summary>
    public TimeSpan PolicyReuse { get; init; } = TimeSpan.FromSeconds(60);
    /// <summary>Upper bound on waiting for the policy resolver; beyond it the destination defers this round.</summary>
    public TimeSpan PolicyTimeout { get; init; } = TimeSpan.FromSeconds(90);
    /// <summary>Snapshot after this many persisted events.</summary>
    public int SnapshotEvery { get; init; } = 500;
    /// <summary>Cluster: how often an owner re-reads its domain's queue from the cluster spool (recipients whose
    /// enqueue message was lost with a node). One indexed query per active destination.</summary>
    public TimeSpan ClusterReconcile { get; init; } = TimeSpan.FromMinutes(2);
    /// <summary>MX roll-up (<c>mtasts.delivery.mx-rollup</c>): a destination parks an idle connection in the transport's
    /// pool at once instead of keeping it for its own mail (the pool bounds its idle time).</summary>
    public bool MxRollup { get; init; }
    /// <summary>Messages a destination holds in memory with their envelope when the spool can read them back
    /// (<c>ISpool.CanReadMessages</c>); beyond it only MID and RIDs. A cluster spool keeps the whole queue.</summary>
    public int QueueWindow { get; init; } = 1000;
    /// <summary>How often expiry is checked for queued mail (KumoMTA #539: expiry must not wait for a requeue).</summary>
    public TimeSpan ExpirySweep { get; init; } = TimeSpan.FromMinutes(1);
}
