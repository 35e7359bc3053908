using System.Collections.Concurrent;
using MtaSts.Actors.Dns;
using MtaSts.Actors.Engine.Destination;

namespace MtaSts.Actors.Engine.Delivery;

/// <summary>
/// Node-local index of what the spool still holds, by destination. A destination entity that (re)starts —
/// after passivation, a crash of the entity, or a process restart — pulls its outstanding recipients from here,
/// so that a restarted entity can never forget mail that the spool still has.
/// <para>Memory: one dictionary slot per (domain, message) holding the shared <see cref="MessageRef"/> and a
/// recipient array — the same objects the destination queue holds, no copies. Whether a whole message is finished
/// is the spool's answer (<c>MarkDoneAsync</c>), not counted again here.</para>
/// </summary>
public sealed class PendingIndex
{
    private readonly ConcurrentDictionary<DestinationDomain, Bucket> _byDomain = new();
    private volatile bool _loaded;

    // One lock per domain: adds come from the SMTP sessions, removals from the finish tasks of that domain only.
    // A bucket whose last message finished leaves the map (an idle destination costs nothing here); it is marked
    // Removed under its lock, so an Add that fetched it just before retries with a fresh bucket instead of adding
    // to one that is no longer reachable.
    private sealed class Bucket
    {
        public readonly Dictionary<long, (MessageRef Message, RecipientRef[] Recipients)> Messages = new();
        public bool Removed;
    }

    /// <summary>True once everything the spool held at start-up has been dispatched: from then on, a recipient
    /// missing here is not pending anywhere on this node.</summary>
    public bool Loaded => _loaded;

    public void MarkLoaded() => _loaded = true;

    public int Messages => _byDomain.Values.Sum(b => { lock (b) return b.Messages.Count; });

    /// <summary>Destinations that hold a slot here: those with pending mail (memory is per slot).</summary>
    public int DomainSlots => _byDomain.Count;

    public void Add(DestinationDomain domain, MessageRef message, IReadOnlyList<RecipientRef> recipients)
    {
        while (true)
        {
            var bucket = _byDomain.GetOrAdd(domain, static _ => new Bucket());
            lock (bucket)
            {
                if (bucket.Removed) continue; // emptied and dropped meanwhile: take the map's current bucket
                if (!bucket.Messages.TryGetValue(message.Mid, out var entry))
                {
                    // The dispatcher's array is shared with the enqueue command (RIDs are unique within a message).
                    bucket.Messages[message.Mid] = (message, recipients as RecipientRef[] ?? [.. recipients]);
                    return;
                }
                var fresh = recipients.Where(r => Array.FindIndex(entry.Recipients, e => e.Rid == r.Rid) < 0).DistinctBy(r => r.Rid).ToArray();
                if (fresh.Length > 0) bucket.Messages[message.Mid] = (entry.Message, [.. entry.Recipients, .. fresh]);
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
            var left = entry.Recipients.Where(r => !rids.Contains(r.Rid)).ToArray();
            if (left.Length != 0)
            {
                if (left.Length != entry.Recipients.Length) bucket.Messages[mid] = (entry.Message, left);
                return;
            }
            bucket.Messages.Remove(mid);
            if (bucket.Messages.Count == 0) Drop(domain, bucket);
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
            return bucket.Messages.TryGetValue(mid, out var entry) && Array.FindIndex(entry.Recipients, r => r.Rid == rid) >= 0;
    }

    /// <summary>Everything outstanding for a destination, as enqueue commands.</summary>
    public IReadOnlyList<EnqueueRecipients> For(DestinationDomain domain)
    {
        if (!_byDomain.TryGetValue(domain, out var bucket)) return Array.Empty<EnqueueRecipients>();
        lock (bucket)
        {
            var list = new List<EnqueueRecipients>(bucket.Messages.Count);
            foreach (var (message, recipients) in bucket.Messages.Values)
                list.Add(new EnqueueRecipients(domain, message, recipients));
            return list;
        }
    }

    public IEnumerable<DestinationDomain> Domains =>
        _byDomain.Where(kv => { lock (kv.Value) return kv.Value.Messages.Count > 0; }).Select(kv => kv.Key).ToArray();
}
