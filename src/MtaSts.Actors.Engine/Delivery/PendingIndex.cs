using System.Collections.Concurrent;
using MtaSts.Actors.Dns;
using MtaSts.Actors.Engine.Destination;
using MtaSts.Actors.Spool;

namespace MtaSts.Actors.Engine.Delivery;

/// <summary>One (domain, message) of the <see cref="PendingIndex"/>: its outstanding RIDs there, and — unless the index
/// is compact — the dispatcher's message and recipient refs (a compact index reads them back from the spool).</summary>
public sealed record PendingEntry(long Mid, DateTimeOffset ReceivedAt, RidSet Rids, MessageRef? Message, IReadOnlyList<RecipientRef>? Recipients);

/// <summary>
/// Node-local index of what the spool still holds, by destination. A destination entity that (re)starts —
/// after passivation, a crash of the entity, or a process restart — pulls its outstanding recipients from here,
/// so that a restarted entity can never forget mail that the spool still has.
/// <para>Memory: one dictionary slot per (domain, message). A compact index (the spool reads messages back by MID,
/// <see cref="ISpool.CanReadMessages"/>) keeps only the receive time and the outstanding RIDs (a <see cref="RidSet"/>,
/// no object per message); otherwise the slot also holds the dispatcher's shared <see cref="MessageRef"/> and recipient
/// array (the same objects the destination queue holds, no copies). Whether a whole message is finished is the spool's
/// answer (<c>MarkDoneAsync</c>), not counted again here.</para>
/// </summary>
/// <param name="compact">Keep MID, receive time and RIDs only (the spool can read the rest back).</param>
public sealed class PendingIndex(bool compact = false)
{
    private readonly ConcurrentDictionary<DestinationDomain, Bucket> _byDomain = new();
    private volatile bool _loaded;

    private readonly record struct Slot(long ReceivedUtcTicks, RidSet Rids);

    // One lock per domain: adds come from the SMTP sessions, removals from the finish tasks of that domain only.
    // A bucket whose last message finished leaves the map (an idle destination costs nothing here); it is marked
    // Removed under its lock, so an Add that fetched it just before retries with a fresh bucket instead of adding
    // to one that is no longer reachable.
    private sealed class Bucket
    {
        public readonly Dictionary<long, Slot> Messages = new();
        /// <summary>Not compact: the dispatcher's refs, same keys.</summary>
        public readonly Dictionary<long, (MessageRef Message, RecipientRef[] Recipients)> Refs = new();
        public bool Removed;
    }

    /// <summary>Entries carry no message/recipient refs (read them back from the spool).</summary>
    public bool Compact => compact;

    /// <summary>True once everything the spool held at start-up has been dispatched: from then on, a recipient
    /// missing here is not pending anywhere on this node.</summary>
    public bool Loaded => _loaded;

    public void MarkLoaded() => _loaded = true;

    public int Messages => _byDomain.Values.Sum(b => { lock (b) return b.Messages.Count; });

    /// <summary>Destinations that hold a slot here: those with pending mail (memory is per slot).</summary>
    public int DomainSlots => _byDomain.Count;

    public void Add(DestinationDomain domain, MessageRef message, IReadOnlyList<RecipientRef> recipients)
    {
        var rids = RidSet.Of(recipients.Select(r => r.Rid));
        while (true)
        {
            var bucket = _byDomain.GetOrAdd(domain, static _ => new Bucket());
            lock (bucket)
            {
                if (bucket.Removed) continue; // emptied and dropped meanwhile: take the map's current bucket
                if (!bucket.Messages.TryGetValue(message.Mid, out var entry))
                {
                    bucket.Messages[message.Mid] = new Slot(message.ReceivedAt.UtcTicks, rids);
                    // The dispatcher's array is shared with the enqueue command (RIDs are unique within a message).
                    if (!compact) bucket.Refs[message.Mid] = (message, recipients as RecipientRef[] ?? [.. recipients]);
                    return;
                }
                var merged = entry.Rids.Union(rids);
                if (merged == entry.Rids) return;
                bucket.Messages[message.Mid] = entry with { Rids = merged };
                if (!compact && bucket.Refs.TryGetValue(message.Mid, out var refs))
                    bucket.Refs[message.Mid] = (refs.Message, [.. refs.Recipients, .. recipients.Where(r => !entry.Rids.Contains(r.Rid)).DistinctBy(r => r.Rid)]);
                return;
            }
        }
    }

    /// <summary>Removes finished recipients of one message for one destination.</summary>
    public void Remove(DestinationDomain domain, long mid, IReadOnlyCollection<int> rids)
    {
        if (!_byDomain.TryGetValue(domain, out var bucket)) return;
        lock (bucket)
        {
            if (!bucket.Messages.TryGetValue(mid, out var entry)) return;
            var left = entry.Rids.Except(rids);
            if (left.IsEmpty)
            {
                bucket.Messages.Remove(mid);
                bucket.Refs.Remove(mid);
                if (bucket.Messages.Count == 0) Drop(domain, bucket);
            }
            else if (left != entry.Rids)
            {
                bucket.Messages[mid] = entry with { Rids = left };
                if (bucket.Refs.TryGetValue(mid, out var refs))
                    bucket.Refs[mid] = (refs.Message, refs.Recipients.Where(r => left.Contains(r.Rid)).ToArray());
            }
        }
    }

    /// <summary>Cluster: this node no longer owns the destination (its entity moved or stopped).</summary>
    public void Forget(DestinationDomain domain)
    {
        if (!_byDomain.TryGetValue(domain, out var bucket)) return;
        lock (bucket) Drop(domain, bucket);
    }

    // Under the bucket's lock: removes exactly this bucket (a fresh one added meanwhile stays).
    private void Drop(DestinationDomain domain, Bucket bucket)
    {
        bucket.Removed = true;
        _byDomain.TryRemove(new KeyValuePair<DestinationDomain, Bucket>(domain, bucket));
    }

    public bool Contains(DestinationDomain domain, long mid, int rid)
    {
        if (!_byDomain.TryGetValue(domain, out var bucket)) return false;
        lock (bucket)
            return bucket.Messages.TryGetValue(mid, out var entry) && entry.Rids.Contains(rid);
    }

    /// <summary>Everything outstanding for a destination (no order).</summary>
    public IReadOnlyList<PendingEntry> For(DestinationDomain domain)
    {
        if (!_byDomain.TryGetValue(domain, out var bucket)) return Array.Empty<PendingEntry>();
        lock (bucket)
        {
            var list = new List<PendingEntry>(bucket.Messages.Count);
            foreach (var (mid, e) in bucket.Messages)
            {
                var refs = bucket.Refs.GetValueOrDefault(mid);
                list.Add(new PendingEntry(mid, new DateTimeOffset(e.ReceivedUtcTicks, TimeSpan.Zero), e.Rids, refs.Message, refs.Recipients));
            }
            return list;
        }
    }

    public IEnumerable<DestinationDomain> Domains =>
        _byDomain.Where(kv => { lock (kv.Value) return kv.Value.Messages.Count > 0; }).Select(kv => kv.Key).ToArray();
}
