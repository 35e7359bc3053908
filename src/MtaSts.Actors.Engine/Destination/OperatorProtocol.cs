using MtaSts.Actors.Dns;

namespace MtaSts.Actors.Engine.Destination;

// ---- operator actions on one destination (admin API / CLI); "By" names who asked, for the logs and the journal ----

/// <summary>Operator "suspend": no connection is opened for the destination until <see cref="ResumeDelivery"/>; the
/// mail stays queued (and still expires per its bounce profile). Persisted as <see cref="DestinationSuspended"/>, so it
/// survives a restart. Answered with the <see cref="DestinationStatus"/>. Idempotent.</summary>
public sealed record SuspendDelivery(DestinationDomain Domain, string By) : IDestinationCommand;

/// <summary>Operator "resume": ends a suspension (persisted as <see cref="DestinationResumed"/>); due mail goes at
/// once, deferred mail keeps its retry time (deliver-now makes it due). Answered with the status. Idempotent.</summary>
public sealed record ResumeDelivery(DestinationDomain Domain, string By) : IDestinationCommand;

/// <summary>Operator "bounce" (<paramref name="Bounce"/> = true: a failure DSN to the sender, status 5.0.0, "deleted by
/// the operator") or "delete" (no DSN) of one queued message (<paramref name="Mid"/>) or of everything queued for
/// the destination (null). Recipients in a transaction right now are left alone (counted in the answer). Answered
/// with <see cref="QueueRemoved"/>.</summary>
public sealed record RemoveQueued(DestinationDomain Domain, long? Mid, bool Bounce, string By) : IDestinationCommand;

/// <summary>What a <see cref="RemoveQueued"/> did: messages and recipients removed, recipients skipped because in flight.</summary>
public sealed record QueueRemoved(DestinationDomain Domain, int Messages, int Recipients, int InFlight) : IDestinationProtocolMember;

/// <summary>Journaled: delivery to the destination was suspended at <paramref name="AtUtc"/> by <paramref name="By"/>.</summary>
public sealed record DestinationSuspended(DateTimeOffset AtUtc, string By) : IDestinationEvent;

/// <summary>Journaled: the suspension ended.</summary>
public sealed record DestinationResumed(DateTimeOffset AtUtc, string By) : IDestinationEvent;

/// <summary>A destination's suspension: since when and by whom.</summary>
public sealed record Suspension(DateTimeOffset Since, string By);
