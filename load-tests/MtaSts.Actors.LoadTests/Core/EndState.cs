namespace MtaSts.Actors.LoadTests.Core;

/// <summary>
/// What a target still held and what it logged about bounces, read after it was stopped (gateway: its spool and
/// operator log; Postfix: its queue files and maillog). Keys are <see cref="QueueKey"/> values of the target's
/// own queue ids (gateway MID, Postfix queue id).
/// </summary>
public sealed class TargetHoldings
{
    public required string Source { get; init; }
    /// <summary>Messages still in the target's queue when it stopped.</summary>
    public List<HeldMessage> Held { get; } = [];
    /// <summary>Keys the target logged as bounced (a permanent failure of their recipient).</summary>
    public HashSet<long> BouncedKeys { get; } = [];
    /// <summary>DSN key → key of the message it reports on (gateway "MID x was generated for bounce of MID y",
    /// Postfix "y: sender non-delivery notification: x").</summary>
    public Dictionary<long, long> DsnOf { get; } = [];
    /// <summary>DSN keys the target dropped (a DSN cannot be bounced: "Double bounce").</summary>
    public HashSet<long> DsnDropped { get; } = [];
    /// <summary>Set when the target's queue or log could not be read; the accounting says so.</summary>
    public string? Error { get; set; }
    /// <summary>The target's log lines about the given keys (for lost messages), up to a few per key.</summary>
    public Func<IReadOnlyCollection<long>, IReadOnlyDictionary<long, IReadOnlyList<string>>>? Explain { get; init; }
}

/// <param name="Key">The target's queue id as a key.</param>
/// <param name="IsDsn">Null reverse-path: a DSN the target generated.</param>
/// <param name="LoadId">The X-Load-Id found in the held message itself (for a DSN: the message it reports on); null
/// when the message was not read (it is then ours by its key).</param>
public readonly record struct HeldMessage(long Key, bool IsDsn, long? LoadId);

/// <summary>
/// The end state of every message the target acknowledged with 250 (warm-up included), each in exactly one class:
/// delivered; bounced with its DSN received, still queued in the target, or dropped as undeliverable (the DSN
/// itself was refused: a double bounce); still queued; or LOST (none of these).
/// </summary>
public sealed record EndStateSummary(
    string Source,
    bool Proven,
    long Accepted,
    long Delivered,
    long BouncedDsnReceived,
    long BouncedDsnQueued,
    long BouncedDsnUndeliverable,
    long StillQueued,
    long Lost,
    long Duplicates,
    long DsnsReceived,
    long DelayDsnsReceived,
    long DsnDuplicates,
    long DsnsUnattributed,
    long DeliveredAndBounced,
    long HeldNotAcknowledged,
    long HeldUnidentified,
    long TargetHeldAtEnd,
    IReadOnlyList<LostMessage> LostSample,
    IReadOnlyList<LostMessage> QueuedSample)
{
    public long Accounted => Delivered + BouncedDsnReceived + BouncedDsnQueued + BouncedDsnUndeliverable + StillQueued;
    public bool Clean => Lost == 0 && Duplicates == 0 && DsnDuplicates == 0;
}

/// <summary>A LOST (or, in QueuedSample, a still queued) message with what the target logged about it.</summary>
public sealed record LostMessage(long LoadId, long TargetKey, string Why, IReadOnlyList<string> TargetLog);

public static class EndStateAccounting
{
    private const int MaxLostListed = 50;
    private const int MaxQueuedListed = 5;

    /// <param name="perMessage">False with smtp-sink (counts only): nothing can be proven per message.</param>
    public static EndStateSummary Account(DeliveryLedger ledger, TargetHoldings? holdings, bool perMessage)
    {
        if (!perMessage)
            return Empty("smtp-sink counts only: per-message end states need --receiver counting", ledger);

        // Our keys → load ids, for what the target names by key only.
        var needed = new HashSet<long>();
        if (holdings is not null)
        {
            foreach (var h in holdings.Held) if (h.LoadId is null) needed.Add(h.IsDsn && holdings.DsnOf.TryGetValue(h.Key, out var o) ? o : h.Key);
            needed.UnionWith(holdings.BouncedKeys);
            foreach (var (dsn, orig) in holdings.DsnOf) needed.Add(orig);
        }
        var idOfKey = new Dictionary<long, long>();
        if (needed.Count > 0)
            foreach (var e in ledger.Entries())
                if (e.QueueKey != 0 && needed.Contains(e.QueueKey)) idOfKey.TryAdd(e.QueueKey, e.Id);

        var heldOriginal = new HashSet<long>();
        var heldDsnFor = new HashSet<long>();
        var dsnDroppedFor = new HashSet<long>();
        var bouncedByLog = new HashSet<long>();
        long heldUnidentified = 0;
        if (holdings is not null)
        {
            foreach (var h in holdings.Held)
            {
                long? id = h.LoadId;
                if (id is null)
                {
                    var key = h.IsDsn ? (holdings.DsnOf.TryGetValue(h.Key, out var o) ? o : 0) : h.Key;
                    if (key != 0 && idOfKey.TryGetValue(key, out var v)) id = v;
                }
                if (id is null) { heldUnidentified++; continue; }
                (h.IsDsn ? heldDsnFor : heldOriginal).Add(id.Value);
            }
            foreach (var (dsn, orig) in holdings.DsnOf)
                if ((holdings.DsnDropped.Contains(dsn) || holdings.BouncedKeys.Contains(dsn)) && idOfKey.TryGetValue(orig, out var id))
                    dsnDroppedFor.Add(id);
            foreach (var k in holdings.BouncedKeys)
                if (!holdings.DsnOf.ContainsKey(k) && idOfKey.TryGetValue(k, out var id)) bouncedByLog.Add(id);
        }

        long accepted = 0, delivered = 0, dsnReceived = 0, dsnQueued = 0, dsnUndeliverable = 0, queued = 0, lost = 0, both = 0, heldNotAck = 0;
        var lostList = new List<(long Id, long Key, string Why)>();
        var queuedList = new List<(long Id, long Key, string Why)>();
        foreach (var e in ledger.Entries())
        {
            if (!e.Accepted)
            {
                if (heldOriginal.Contains(e.Id)) heldNotAck++;
                continue;
            }
            accepted++;
            if (e.Arrivals > 0)
            {
                delivered++;
                if (e.FailureDsns > 0) both++;
            }
            else if (e.FailureDsns > 0) dsnReceived++;
            else if (heldDsnFor.Contains(e.Id)) dsnQueued++;
            else if (dsnDroppedFor.Contains(e.Id)) dsnUndeliverable++;
            else if (heldOriginal.Contains(e.Id))
            {
                queued++;
                if (queuedList.Count < MaxQueuedListed) queuedList.Add((e.Id, e.QueueKey, "still in the target's queue when it stopped"));
            }
            else
            {
                lost++;
                if (lostList.Count < MaxLostListed)
                    lostList.Add((e.Id, e.QueueKey, holdings is null ? "the target's queue cannot be read (external relay): not arrived"
                        : bouncedByLog.Contains(e.Id) ? "the target logged a bounce, but no DSN arrived, is queued or was dropped as a double bounce"
                        : "not arrived, no DSN, not in the target's queue"));
            }
        }

        IReadOnlyDictionary<long, IReadOnlyList<string>> logs = new Dictionary<long, IReadOnlyList<string>>();
        if (lostList.Count + queuedList.Count > 0 && holdings?.Explain is { } explain)
        {
            try { logs = explain(lostList.Concat(queuedList).Where(l => l.Key != 0).Select(l => l.Key).ToArray()); }
            catch (Exception ex) when (ex is IOException or UnauthorizedAccessException) { }
        }
        var source = holdings is null
            ? "receiver ledger only (external relay: its queue cannot be read)"
            : holdings.Source + (holdings.Error is { } err ? $" — WARNING: {err}" : "");
        return new EndStateSummary(source, holdings is not null && holdings.Error is null, accepted, delivered, dsnReceived, dsnQueued, dsnUndeliverable, queued, lost,
            Interlocked.Read(ref ledger.Duplicates), Interlocked.Read(ref ledger.DsnsFailed), Interlocked.Read(ref ledger.DsnsDelayed),
            Interlocked.Read(ref ledger.DsnDuplicates), Interlocked.Read(ref ledger.DsnsUnattributed), both, heldNotAck, heldUnidentified,
            holdings?.Held.Count ?? 0,
            lostList.Select(l => new LostMessage(l.Id, l.Key, l.Why, l.Key != 0 && logs.TryGetValue(l.Key, out var lines) ? lines : [])).ToArray(),
            queuedList.Select(l => new LostMessage(l.Id, l.Key, l.Why, l.Key != 0 && logs.TryGetValue(l.Key, out var lines) ? lines : [])).ToArray());
    }

    private static EndStateSummary Empty(string source, DeliveryLedger ledger) =>
        new(source, false, Interlocked.Read(ref ledger.AcceptedTotal), 0, 0, 0, 0, 0, 0, Interlocked.Read(ref ledger.Duplicates), 0, 0, 0, 0, 0, 0, 0, 0, [], []);
}
