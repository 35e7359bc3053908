using System.Collections.Concurrent;
using MtaSts.Actors.Engine.Protocol;

namespace MtaSts.Actors.Engine.Delivery;

/// <summary>
/// Node-local index of what the spool still holds, by destination. A destination entity that (re)starts —
/// after passivation, a crash of the entity, or a process restart — pulls its outstanding recipients from here,
/// so that a restarted entity can never forget mail that the spool still has. It also counts the outstanding
/// recipients of each message across destinations, to log "Message finished MID … done" once.
/// </summary>
public sealed class PendingIndex
{
    private readonly ConcurrentDictionary<string, ConcurrentDictionary<long, Entry>> _byDomain = new(StringComparer.Ordinal);
    private readonly ConcurrentDictionary<long, int> _remaining = new();

    private sealed class Entry(MessageRef message)
    {
        public MessageRef Message { get; } = message;
        public Dictionary<int, RecipientRef> Recipients { get; } = new();
    }

    public int Messages => _remaining.Count;

    public void Add(string domain, MessageRef message, IReadOnlyList<RecipientRef> recipients)
    {
        var perDomain = _byDomain.GetOrAdd(domain, _ => new ConcurrentDictionary<long, Entry>());
        var entry = perDomain.GetOrAdd(message.Mid, _ => new Entry(message));
        var added = 0;
        lock (entry)
            foreach (var r in recipients)
                if (entry.Recipients.TryAdd(r.Rid, r)) added++;
        if (added > 0) _remaining.AddOrUpdate(message.Mid, added, (_, n) => n + added);
    }

    /// <summary>Removes finished recipients; returns true when the whole message (all destinations) is finished.</summary>
    public bool Remove(string domain, long mid, IEnumerable<int> rids)
    {
        if (!_byDomain.TryGetValue(domain, out var perDomain) || !perDomain.TryGetValue(mid, out var entry)) return false;
        var removed = 0;
        bool empty;
        lock (entry)
        {
            foreach (var rid in rids)
                if (entry.Recipients.Remove(rid)) removed++;
            empty = entry.Recipients.Count == 0;
        }
        if (empty) perDomain.TryRemove(mid, out _);
        if (removed == 0) return false;
        var left = _remaining.AddOrUpdate(mid, 0, (_, n) => n - removed);
        if (left > 0) return false;
        return _remaining.TryRemove(new KeyValuePair<long, int>(mid, left));
    }

    /// <summary>Everything outstanding for a destination, as enqueue commands.</summary>
    public IReadOnlyList<EnqueueRecipients> For(string domain)
    {
        if (!_byDomain.TryGetValue(domain, out var perDomain)) return Array.Empty<EnqueueRecipients>();
        var list = new List<EnqueueRecipients>(perDomain.Count);
        foreach (var entry in perDomain.Values)
            lock (entry)
                if (entry.Recipients.Count > 0)
                    list.Add(new EnqueueRecipients(domain, entry.Message, entry.Recipients.Values.ToArray()));
        return list;
    }

    public IEnumerable<string> Domains => _byDomain.Where(kv => !kv.Value.IsEmpty).Select(kv => kv.Key);
}
