using MtaSts.Actors.Engine.Delivery;

namespace MtaSts.Actors.Admin;

/// <summary>One destination's share of this node's queue (from the pending index: what each domain still owes).</summary>
public sealed record QueueSummary(string Domain, int Messages, int Recipients, DateTimeOffset Oldest, TimeSpan OldestAge);

/// <summary>A queued message as the admin API shows it.</summary>
public sealed record QueuedMessage(long Mid, string From, DateTimeOffset ReceivedAt, long Bytes, IReadOnlyList<QueuedRecipient> Recipients);

public sealed record QueuedRecipient(int Rid, string Address, string Domain);

/// <summary>Read-only views of the node's queue for the admin API and the metrics (pure over <see cref="PendingIndex"/>).</summary>
public static class QueueView
{
    public static IReadOnlyList<QueueSummary> Summaries(PendingIndex pending, DateTimeOffset now)
    {
        var result = new List<QueueSummary>();
        foreach (var domain in pending.Domains)
        {
            var items = pending.For(domain);
            if (items.Count == 0) continue;
            var oldest = items.Min(i => i.Message.ReceivedAt);
            result.Add(new QueueSummary(domain, items.Count, items.Sum(i => i.Recipients.Count), oldest, now - oldest));
        }
        return result;
    }

    /// <summary>A destination's queued messages, oldest first, one page.</summary>
    public static IReadOnlyList<QueuedMessage> Page(PendingIndex pending, string domain, int offset, int limit) =>
        pending.For(domain)
            .OrderBy(i => i.Message.ReceivedAt).ThenBy(i => i.Message.Mid)
            .Skip(offset).Take(limit)
            .Select(i => new QueuedMessage(i.Message.Mid, i.Message.ReversePath, i.Message.ReceivedAt, i.Message.BodyLength,
                i.Recipients.Select(r => new QueuedRecipient(r.Rid, r.Address, domain)).ToArray()))
            .ToArray();

    /// <summary>One message by MID: its outstanding recipients across every destination; null when not queued here.</summary>
    public static QueuedMessage? Message(PendingIndex pending, long mid)
    {
        QueuedMessage? found = null;
        var recipients = new List<QueuedRecipient>();
        foreach (var domain in pending.Domains)
            foreach (var i in pending.For(domain))
            {
                if (i.Message.Mid != mid) continue;
                found ??= new QueuedMessage(mid, i.Message.ReversePath, i.Message.ReceivedAt, i.Message.BodyLength, recipients);
                recipients.AddRange(i.Recipients.Select(r => new QueuedRecipient(r.Rid, r.Address, domain)));
            }
        return found is null ? null : found with { Recipients = recipients.OrderBy(r => r.Rid).ToArray() };
    }
}
