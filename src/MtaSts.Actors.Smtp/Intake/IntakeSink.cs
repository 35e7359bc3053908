using MtaSts.Actors.Spool;

namespace MtaSts.Actors.Smtp.Intake;

/// <summary>
/// Where the listener hands an accepted message, in this order: <see cref="ISpool.AppendAsync"/> completed (the
/// message is fsync'd) → 250 written to the client → sink called. The sink is called even when the 250 could not be
/// written (the client vanished): the message is durable and must be delivered. A sink that throws is logged; the
/// message stays in the spool and is picked up again by <see cref="ISpool.Recover"/> at the next start.
/// Keep it quick (e.g. Tell an actor): the session waits for it before reading the next command.
/// </summary>
public delegate ValueTask IntakeSink(SpooledMessage message, CancellationToken ct);
