using MtaSts.Actors.Dns;
using MtaSts.Actors.Spool;

namespace MtaSts.Actors.Engine.Destination;

/// <summary>Root marker of everything that crosses the sharding boundary or is persisted; the engine's
/// serializer is bound to it (never the default Newtonsoft serializer).</summary>
public interface IDestinationProtocolMember { }

/// <summary>Routes a message to the destination entity of its (normalized, lower-case) domain.</summary>
public interface IWithDestination : IDestinationProtocolMember
{
    DestinationDomain Domain { get; }
}

public interface IDestinationCommand : IWithDestination { }
/// <summary>A change of a destination's retry state (DestinationState.Apply), journaled or not.</summary>
public interface IDestinationChange { }

/// <summary>A journaled change: replayed through the same DestinationState.Apply on recovery.</summary>
public interface IDestinationEvent : IDestinationProtocolMember, IDestinationChange { }

/// <summary>What a destination needs to know about a spooled message (the body stays in the spool).</summary>
/// <param name="ReversePath">"" for the null reverse-path (bounces): never gets a DSN.</param>
public sealed record MessageRef(
    long Mid,
    string ReversePath,
    DateTimeOffset ReceivedAt,
    long BodyLength,
    string? EnvId = null,
    DsnRet Ret = DsnRet.Unspecified,
    bool EightBitMime = false,
    bool SmtpUtf8 = false);

public sealed record RecipientRef(int Rid, string Address, DsnNotify Notify = DsnNotify.Default, string? OriginalRecipient = null);

/// <summary>New (or recovered) recipients of one message for this destination. Idempotent: a recipient that is
/// already queued is not queued twice (the spool re-dispatches everything outstanding after a restart).</summary>
public sealed record EnqueueRecipients(DestinationDomain Domain, MessageRef Message, IReadOnlyList<RecipientRef> Recipients) : IDestinationCommand;

/// <summary>Operator "delivernow": every queued recipient becomes due now.</summary>
public sealed record DeliverNow(DestinationDomain Domain) : IDestinationCommand;

/// <summary>Sharding's hand-off stop message (graceful leave, rebalance): the entity finishes the transactions in
/// flight, then stops. Node-local (never crosses the network: the shard sends it to its own entities).</summary>
public sealed record HandOff
{
    public static readonly HandOff Instance = new();
}

public sealed record GetDestinationStatus(DestinationDomain Domain) : IDestinationCommand;

/// <summary>(Re)starts the entity of a domain that still has pending mail and makes it re-read its profile and
/// re-plan. Sent periodically as a safety net (an entity stopped by a failed journal write comes back) and after a
/// configuration reload (a raised limit releases held mail). Idempotent and cheap.</summary>
public sealed record Resume(DestinationDomain Domain) : IDestinationCommand;

public sealed record DestinationStatus(
    DestinationDomain Domain,
    int QueuedRecipients,
    int DeferredRecipients,
    int ActiveConnections,
    int MaxConnections,
    DateTimeOffset? NextAttempt,
    string? LastError,
    DateTimeOffset? SuspendedSince = null,
    string? SuspendedBy = null,
    DestinationThrottle? Throttle = null) : IDestinationProtocolMember
{
    public bool Suspended => SuspendedSince is not null;
}

/// <summary>A reply-driven throttle in force: the rule and the reply that fired it, since when, the end of its hold,
/// the lowered limits (<paramref name="Connections"/> 0 = suspended, null = the profile's; <paramref name="Rate"/> in
/// messages per minute) and whether it is ramping back.</summary>
public sealed record DestinationThrottle(string Rule, string Reply, DateTimeOffset Since, DateTimeOffset HoldUntil, int? Connections,
    double? Rate, bool Ramping);

// ---- persisted events (small; first-attempt successes persist nothing: the spool's done record is enough) ----

/// <summary>Recipients got a transient failure; the next attempt is due at <paramref name="NextAttemptUtc"/>.</summary>
/// <paramref name="Warnings"/> counts the delay DSNs already sent (bounce profile delay-warning).
public sealed record RecipientsDeferred(long Mid, IReadOnlyList<int> Rids, int Attempts, DateTimeOffset NextAttemptUtc, string Reason,
    int Warnings = 0) : IDestinationEvent;

/// <summary>Recipients reached a final outcome after having been deferred — it only forgets their retry record.
/// No longer written (final outcomes are the spool's done records; stale retry records are pruned), still read so
/// that journals written by earlier versions replay.</summary>
public sealed record RecipientsFinished(long Mid, IReadOnlyList<int> Rids) : IDestinationEvent;

/// <summary>Deferrals of many messages in one journal row: a destination that is down defers its whole queue in one
/// round, and one row per message made that round cost a journal write per queued message.</summary>
public sealed record DeferralBatch(IReadOnlyList<RecipientsDeferred> Items) : IDestinationEvent
{
    /// <summary>Journal rows for a list of events: runs of deferrals packed up to <paramref name="maxItems"/> per row,
    /// a lone deferral and every other event as it is (order kept).</summary>
    public static List<IDestinationEvent> Pack(IEnumerable<IDestinationEvent> events, int maxItems)
    {
        var rows = new List<IDestinationEvent>();
        var batch = new List<RecipientsDeferred>();
        void Flush()
        {
            if (batch.Count == 1) rows.Add(batch[0]);
            else if (batch.Count > 1) rows.Add(new DeferralBatch(batch.ToArray()));
            batch.Clear();
        }
        foreach (var e in events)
        {
            if (e is RecipientsDeferred d)
            {
                batch.Add(d);
                if (batch.Count == maxItems) Flush();
                continue;
            }
            Flush();
            rows.Add(e);
        }
        Flush();
        return rows;
    }
}

/// <summary>Recipients handed to a transaction of a destination with a recipient limit (N per M minutes). Persisted
/// only for limited destinations, so that a restart does not reset the budget.</summary>
public sealed record RecipientsCounted(long Count, DateTimeOffset AtUtc) : IDestinationEvent;

/// <summary>Snapshot of the retry records (mid, rid) → attempts / next attempt / last error, and of the recipient-limit
/// window (empty when the destination has no limit), and the operator's suspension (null when delivering).</summary>
public sealed record DestinationSnapshot(IReadOnlyList<RetryRecord> Records, IReadOnlyList<RateCount>? Rate = null,
    Suspension? Suspended = null) : IDestinationProtocolMember;

/// <summary>Recipients counted in one bucket of the recipient-limit window.</summary>
public sealed record RateCount(DateTimeOffset StartUtc, long Count, TimeSpan Width);

public sealed record RetryRecord(long Mid, int Rid, int Attempts, DateTimeOffset NextAttemptUtc, string LastError, int Warnings = 0);
