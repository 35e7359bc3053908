using System.Globalization;
using Akka.Actor;
using MtaSts.Actors.Engine.Delivery;
using MtaSts.Actors.Engine.Protocol;
using MtaSts.Actors.Spool;

namespace MtaSts.Actors.Engine.Intake;

/// <summary>
/// Hands a durable message to its destinations: splits the envelope by recipient domain, records it in the
/// <see cref="PendingIndex"/> and tells each destination entity (Tell is thread-safe: the SMTP listener calls this
/// from its own tasks after the 250).
/// </summary>
public sealed class Dispatcher(IActorRef region, PendingIndex index)
{
    private static readonly IdnMapping Idn = new();

    public void Dispatch(SpooledMessage message) => Dispatch(message, null);

    /// <param name="only">Recipients to dispatch (null = all) — used after recovery for the outstanding ones.</param>
    public void Dispatch(SpooledMessage message, IReadOnlyCollection<int>? only)
    {
        var env = message.Envelope;
        var msgRef = new MessageRef(message.Mid, env.ReversePath, env.ReceivedAt, message.BodyLength, env.EnvId, env.Ret,
            env.EightBitMime, env.SmtpUtf8);
        foreach (var group in env.Recipients
                     .Where(r => only is null || only.Contains(r.Rid))
                     .GroupBy(r => NormalizeDomain(r.Domain)))
        {
            var rcpts = group.Select(r => new RecipientRef(r.Rid, r.Address, r.Notify, r.OriginalRecipient)).ToArray();
            index.Add(group.Key, msgRef, rcpts);
            region.Tell(new EnqueueRecipients(group.Key, msgRef, rcpts));
        }
    }

    /// <summary>Lower-case A-label without trailing dot: one entity per domain however it was spelled.</summary>
    public static string NormalizeDomain(string domain)
    {
        var d = domain.Trim().TrimEnd('.').ToLowerInvariant();
        if (d.Length > 0 && d[0] == '[') return d; // address literal
        try
        {
            return d.Any(c => c > 127) ? Idn.GetAscii(d) : d;
        }
        catch (ArgumentException)
        {
            return d;
        }
    }
}
