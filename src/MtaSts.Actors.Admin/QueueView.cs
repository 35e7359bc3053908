using MtaSts.Actors.Dns;
using MtaSts.Actors.Engine.Delivery;
using MtaSts.Actors.Spool;

namespace MtaSts.Actors.Admin;

/// <summary>One destination's share of this node's queue (from the pending index: what each domain still owes);
/// <see cref="RecipientsByAge"/> counts recipients by the age of their message, in <see cref="QueueView.AgeBuckets"/>.</summary>
public sealed record QueueSummary(string Domain, int Messages, int Recipients, DateTimeOffset Oldest, TimeSpan OldestAge,
    IReadOnlyList<int> RecipientsByAge);

/// <summary>A queued message as the admin API shows it.</summary>
public sealed record QueuedMessage(long Mid, string From, DateTimeOffset ReceivedAt, long Bytes, IReadOnlyList<QueuedRecipient> Recipients);

public sealed record QueuedRecipient(int Rid, string Address, string Domain);

/// <summary>Read-only views of the node's queue for the admin API and the metrics (over <see cref="PendingIndex"/>; a compact index's envelopes come from the spool).</summary>
public static class QueueView
{
    /// <summary>Message age buckets of the queue shape (as Postfix <c>qshape</c>): each is [previous upper, upper).</summary>
    public static IReadOnlyList<(string Label, TimeSpan Upper)> AgeBuckets { get; } =
    [
        ("0-5m", TimeSpan.FromMinutes(5)), ("5-10m", TimeSpan.FromMinutes(10)), ("10-20m", TimeSpan.FromMinutes(20)),
        ("20-40m", TimeSpan.FromMinutes(40)), ("40-80m", TimeSpan.FromMinutes(80)), ("80-160m", TimeSpan.FromMinutes(160)),
        ("160m+", TimeSpan.MaxValue),
    ];

    /// <summary>Index into <see cref="AgeBuckets"/> of a message this old (a clock step backwards counts as 0).</summary>
    public static int AgeBucket(TimeSpan age)
    {
        for (var i = 0; i < AgeBuckets.Count - 1; i++)
            if (age < AgeBuckets[i].Upper) return i;
        return AgeBuckets.Count - 1;
    }

    /// <summary>The bucket counts as a JSON object in bucket order: {"0-5m": n, …, "160m+": n}.</summary>
    public static IReadOnlyDictionary<string, int> ByAgeJson(IReadOnlyList<int> counts)
    {
        var result = new Dictionary<string, int>(AgeBuckets.Count);
        for (var i = 0; i < AgeBuckets.Count; i++) result.Add(AgeBuckets[i].Label, counts[i]);
        return result;
    }

    public static IReadOnlyList<QueueSummary> Summaries(PendingIndex pending, DateTimeOffset now)
    {
        var result = new List<QueueSummary>();
        foreach (var domain in pending.Domains)
        {
            var items = pending.For(domain);
            if (items.Count == 0) continue;
            var oldest = items.Min(i => i.ReceivedAt);
            var byAge = new int[AgeBuckets.Count];
            foreach (var i in items) byAge[AgeBucket(now - i.ReceivedAt)] += i.Rids.Count;
            result.Add(new QueueSummary(domain.Name, items.Count, items.Sum(i => i.Rids.Count), oldest, now - oldest, byAge));
        }
        return result;
    }

    /// <summary>A destination's queued messages, oldest first, one page (a compact index reads the page's envelopes
    /// from the spool; a message finished meanwhile is left out).</summary>
    public static async Task<IReadOnlyList<QueuedMessage>> PageAsync(PendingIndex pending, ISpool spool, string domain, int offset, int limit,
        CancellationToken ct = default)
    {
        if (!DestinationDomain.TryParse(domain, out var key, out _)) return [];
        var result = new List<QueuedMessage>();
        foreach (var e in pending.For(key).OrderBy(i => i.ReceivedAt).ThenBy(i => i.Mid).Skip(offset).Take(limit))
            if (await DescribeAsync(e, spool, key.Name, ct).ConfigureAwait(false) is { } m) result.Add(m);
        return result;
    }

    /// <summary>One message by MID: its outstanding recipients across every destination; null when not queued here.</summary>
    public static async Task<QueuedMessage?> MessageAsync(PendingIndex pending, ISpool spool, long mid, CancellationToken ct = default)
    {
        QueuedMessage? found = null;
        var recipients = new List<QueuedRecipient>();
        foreach (var domain in pending.Domains)
            foreach (var i in pending.For(domain))
            {
                if (i.Mid != mid || await DescribeAsync(i, spool, domain.Name, ct).ConfigureAwait(false) is not { } m) continue;
                found ??= m;
                recipients.AddRange(m.Recipients);
            }
        return found is null ? null : found with { Recipients = recipients.OrderBy(r => r.Rid).ToArray() };
    }

    private static async Task<QueuedMessage?> DescribeAsync(PendingEntry e, ISpool spool, string domain, CancellationToken ct)
    {
        if (e.Message is { } msg)
            return new QueuedMessage(msg.Mid, msg.ReversePath, msg.ReceivedAt, msg.BodyLength,
                e.Recipients!.Select(r => new QueuedRecipient(r.Rid, r.Address, domain)).ToArray());
        if (await spool.ReadMessageAsync(e.Mid, ct).ConfigureAwait(false) is not { } s) return null;
        return new QueuedMessage(e.Mid, s.Envelope.ReversePath, s.Envelope.ReceivedAt, s.BodyLength,
            s.Envelope.Recipients.Where(r => e.Rids.Contains(r.Rid)).Select(r => new QueuedRecipient(r.Rid, r.Address, domain)).ToArray());
    }
}
