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
public sealed class Dispatcher(IActorRef region, PendingIndex index, Action<long, Recipient, string>? invalid = null)
{
    public void Dispatch(SpooledMessage message) => Dispatch(message, null);

    /// <param name="only">Recipients to dispatch (null = all) — used after recovery for the outstanding ones.</param>
    public void Dispatch(SpooledMessage message, IReadOnlyCollection<int>? only)
    {
        var env = message.Envelope;
        var msgRef = new MessageRef(message.Mid, env.ReversePath, env.ReceivedAt, message.BodyLength, env.EnvId, env.Ret,
            env.EightBitMime, env.SmtpUtf8);
        var valid = new List<(DestinationDomain Domain, Recipient Recipient)>(env.Recipients.Count);
        foreach (var r in env.Recipients)
        {
            if (only is not null && !only.Contains(r.Rid)) continue;
            if (DestinationDomain.TryParse(r.Domain, out var domain, out var error)) valid.Add((domain, r));
            else invalid?.Invoke(message.Mid, r, error);
        }
        foreach (var group in valid.GroupBy(v => v.Domain, v => v.Recipient))
        {
            var rcpts = group.Select(r => new RecipientRef(r.Rid, r.Address, r.Notify, r.OriginalRecipient)).ToArray();
            index.Add(group.Key, msgRef, rcpts);
            region.Tell(new EnqueueRecipients(group.Key, msgRef, rcpts));
        }
    }
}
