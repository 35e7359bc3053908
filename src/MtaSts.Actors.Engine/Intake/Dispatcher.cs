using Akka.Actor;
using MtaSts.Actors.Dns;
using MtaSts.Actors.Engine.Delivery;
using MtaSts.Actors.Engine.Destination;
using MtaSts.Actors.Spool;

namespace MtaSts.Actors.Engine.Intake;

/// <summary>
/// Hands a durable message to its destinations: splits the envelope by recipient domain, records it in the
/// <see cref="PendingIndex"/> and tells each destination entity (Tell is thread-safe: the SMTP listener calls this
/// from its own tasks after the 250).
/// </summary>
/// A recipient whose domain is not a <see cref="DestinationDomain"/> cannot be delivered: the listener refuses it at
/// RCPT, so only a spool written by an older version can hold one; it is reported to <paramref name="invalid"/> and
/// stays in the spool.
/// In a cluster (<paramref name="index"/> null) the owner of each domain indexes the mail it is told about; this node
/// may own none of it.
public sealed class Dispatcher(IActorRef region, PendingIndex? index, Action<long, Recipient, string>? invalid = null)
{
    /// <summary>The destination-side view of a spooled message and some of its recipients.</summary>
    public static (MessageRef Message, RecipientRef[] Recipients) Refs(SpooledMessage message, IReadOnlyCollection<int>? only) =>
        (RefOf(message), message.Envelope.Recipients.Where(r => only is null || only.Contains(r.Rid)).Select(RefOf).ToArray());

    private static MessageRef RefOf(SpooledMessage m) =>
        new(m.Mid, m.Envelope.ReversePath, m.Envelope.ReceivedAt, m.BodyLength, m.Envelope.EnvId, m.Envelope.Ret,
            m.Envelope.EightBitMime, m.Envelope.SmtpUtf8);

    private static RecipientRef RefOf(Recipient r) => new(r.Rid, r.Address, r.Notify, r.OriginalRecipient);

    public void Dispatch(SpooledMessage message) => Dispatch(message, null);

    /// <param name="only">Recipients to dispatch (null = all) — used after recovery for the outstanding ones.</param>
    public void Dispatch(SpooledMessage message, IReadOnlyCollection<int>? only)
    {
        var env = message.Envelope;
        var msgRef = RefOf(message);
        var valid = new List<(DestinationDomain Domain, Recipient Recipient)>(env.Recipients.Count);
        foreach (var r in env.Recipients)
        {
            if (only is not null && !only.Contains(r.Rid)) continue;
            if (DestinationDomain.TryParse(r.Domain, out var domain, out var error)) valid.Add((domain, r));
            else invalid?.Invoke(message.Mid, r, error);
        }
        foreach (var group in valid.GroupBy(v => v.Domain, v => v.Recipient))
        {
            var rcpts = group.Select(RefOf).ToArray();
            index?.Add(group.Key, msgRef, rcpts);
            region.Tell(new EnqueueRecipients(group.Key, msgRef, rcpts));
        }
    }
}
