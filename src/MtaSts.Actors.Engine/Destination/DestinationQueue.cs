using MtaSts.Actors.Spool;

namespace MtaSts.Actors.Engine.Destination;

/// <summary>
/// The pure queue state of one destination (no Akka): queued recipients grouped by message, their retry records,
/// and an index of messages ordered by due time so that taking the next due message is O(log n) even with a
/// million queued messages. The actor replays persisted events into it through <see cref="Apply(IDestinationEvent)"/>.
/// <para>Memory: a queued message costs one dictionary slot, a <see cref="QueuedMessage"/> with a recipient array
/// (a message rarely has more than a few recipients per domain; a dictionary per message cost ~200 bytes more) and
/// one index node. A deferred recipient's retry state lives on the recipient itself (flag <c>Persisted</c>); the
/// separate retry table only holds journal records recovered before the spool re-dispatched their message.</para>
/// <para>Paging: at most <see cref="Window"/> messages are held with their envelope and retry state; the rest keep only
/// their MID and outstanding RIDs (<see cref="RidSet"/>, no object) until the window has room again, when the shell
/// reads their envelopes back from the spool (<see cref="TakeRefill"/> → <see cref="Refilled"/>). A message beyond the
/// window has never been attempted here, so it has no retry state to lose (a recovered journal record waits in the
/// retry table until the message enters the window).</para>
/// </summary>
public sealed class DestinationQueue(int window = int.MaxValue)
{
    private readonly Dictionary<long, QueuedMessage> _messages = new();
    // Beyond the window: MID → outstanding RIDs, waiting for room; and the batch whose envelopes are being read.
    private readonly Dictionary<long, RidSet> _overflow = new();
    private readonly Dictionary<long, RidSet> _loading = new();
    // Messages with at least one idle (not in-flight) recipient, by the earliest due time among those.
    private readonly SortedSet<(DateTimeOffset Due, long Mid)> _ready = new();
    // Retry records recovered from the journal whose message is not queued (yet): merged when the spool re-dispatches
    // the message after a restart, pruned when the spool no longer holds it.
    private readonly Dictionary<(long Mid, int Rid), RetryRecord> _retry = new();

    /// <summary>Messages held with their envelope (the rest wait beyond the window).</summary>
    public int Window { get; } = window > 0 ? window : throw new ArgumentOutOfRangeException(nameof(window), "the queue window must hold at least one message");
    /// <summary>Every queued message: in the window, beyond it, or being read back.</summary>
    public int MessageCount => _messages.Count + _overflow.Count + _loading.Count;
    /// <summary>Messages held in memory with their envelope.</summary>
    public int WindowCount => _messages.Count;
    /// <summary>Messages beyond the window (MID and RIDs only), including those being read back.</summary>
    public int OverflowCount => _overflow.Count + _loading.Count;
    public int RecipientCount { get; private set; }
    public int InFlightCount { get; private set; }
    /// <summary>Recipients with a journal retry record (queued or waiting for re-dispatch).</summary>
    public int RetryRecordCount => _retry.Count + _persistedQueued;
    private int _persistedQueued;
    public bool IsEmpty => MessageCount == 0;

    public sealed class QueuedMessage
    {
        internal QueuedMessage(MessageRef message) => Message = message;
        public MessageRef Message { get; }
        internal QueuedRecipient[] Items = [];
        public IReadOnlyList<QueuedRecipient> Recipients => Items;
        internal DateTimeOffset? IndexedDue;

        public QueuedRecipient? Get(int rid)
        {
            foreach (var r in Items)
                if (r.Ref.Rid == rid) return r;
            return null;
        }

        internal bool Remove(int rid, out QueuedRecipient removed)
        {
            var i = Array.FindIndex(Items, r => r.Ref.Rid == rid);
            if (i < 0)
            {
                removed = null!;
                return false;
            }
            removed = Items[i];
            var next = new QueuedRecipient[Items.Length - 1];
            Array.Copy(Items, 0, next, 0, i);
            Array.Copy(Items, i + 1, next, i, Items.Length - i - 1);
            Items = next;
            return true;
        }
    }

    public sealed class QueuedRecipient
    {
        internal QueuedRecipient(RecipientRef r) => Ref = r;
        public RecipientRef Ref { get; }
        public int Attempts { get; internal set; }
        public DateTimeOffset NextAttempt { get; internal set; }
        public string? LastError { get; internal set; }
        /// <summary>Delay DSNs already sent for this recipient.</summary>
        public int Warnings { get; internal set; }
        public bool InFlight { get; internal set; }
        /// <summary>A retry record for this recipient is in the journal (it was deferred at least once): snapshots
        /// carry it while the recipient is queued.</summary>
        public bool Persisted { get; internal set; }
    }

    // ---------------- events (same code on recovery and live) ----------------

    public void Apply(IDestinationEvent evt)
    {
        switch (evt)
        {
            case RecipientsDeferred d:
                // Live (the recipient is queued, maybe in flight) and on recovery (usually not queued yet: the spool
                // re-dispatches the message after recovery and Enqueue merges the record) alike.
                foreach (var rid in d.Rids)
                {
                    if (_messages.TryGetValue(d.Mid, out var m) && m.Get(rid) is not null)
                        Defer(d.Mid, rid, d.Attempts, d.NextAttemptUtc, d.Reason, d.Warnings);
                    else _retry[(d.Mid, rid)] = new RetryRecord(d.Mid, rid, d.Attempts, d.NextAttemptUtc, d.Reason, d.Warnings);
                }
                break;
            case DeferralBatch b:
                foreach (var item in b.Items) Apply(item);
                break;
            case RecipientsFinished f:
                foreach (var rid in f.Rids)
                {
                    _retry.Remove((f.Mid, rid));
                    if (_messages.TryGetValue(f.Mid, out var m) && m.Get(rid) is { } r) SetPersisted(r, false);
                }
                break;
        }
    }

    public void ApplySnapshot(DestinationSnapshot snapshot)
    {
        _retry.Clear();
        foreach (var r in snapshot.Records) _retry[(r.Mid, r.Rid)] = r;
    }

    /// <summary>Every journal retry record, queued or not: a snapshot replaces the events before it, so it must
    /// carry the deferrals made live as well as the recovered ones.</summary>
    public DestinationSnapshot ToSnapshot()
    {
        var records = new List<RetryRecord>(_retry.Values);
        foreach (var m in _messages.Values)
            foreach (var r in m.Items)
                if (r.Persisted)
                    records.Add(new RetryRecord(m.Message.Mid, r.Ref.Rid, r.Attempts, r.NextAttempt, r.LastError ?? "", r.Warnings));
        return new DestinationSnapshot(records);
    }

    /// <summary>Whether the recipient has a journal retry record (first attempts have none).</summary>
    public bool HasRetryRecord(long mid, int rid) =>
        _retry.ContainsKey((mid, rid)) || (_messages.TryGetValue(mid, out var m) && m.Get(rid) is { Persisted: true });

    /// <summary>Drops recovered retry records whose recipient the spool no longer holds (final outcomes are not
    /// journaled, so a replay brings back records of finished mail): otherwise every later snapshot would carry them.</summary>
    public int PruneRetryRecords(Func<long, int, bool> stillPending)
    {
        var stale = _retry.Keys.Where(k => !stillPending(k.Mid, k.Rid)).ToList();
        foreach (var k in stale) _retry.Remove(k);
        return stale.Count;
    }

    // ---------------- commands ----------------

    /// <summary>Adds recipients; returns how many were new. A recipient already queued is ignored.</summary>
    public int Enqueue(MessageRef message, IReadOnlyList<RecipientRef> recipients, DateTimeOffset now)
    {
        if (!_messages.ContainsKey(message.Mid) && (Paged(message.Mid) || _messages.Count + _loading.Count >= Window))
            return EnqueuePaged(message.Mid, recipients.Select(r => r.Rid));
        return Admit(message, recipients, now);
    }

    /// <summary>Adds recipients known only by MID and RIDs (a restarted entity's pending mail): beyond the window until
    /// <see cref="TakeRefill"/> hands them out for reading. A recipient already queued is ignored; returns how many were new.</summary>
    public int EnqueuePaged(long mid, IEnumerable<int> rids)
    {
        if (_messages.TryGetValue(mid, out var m))
        {
            // Already in the window: only RIDs the window does not hold would be new, and they need their address.
            var missing = rids.Where(r => m.Get(r) is null).Distinct().ToArray();
            if (missing.Length == 0) return 0;
            var set = RidSet.Of(missing);
            _overflow[mid] = _overflow.TryGetValue(mid, out var o) ? o.Union(set) : set;
            var grown = _overflow[mid].Count - o.Count;
            RecipientCount += grown;
            return grown;
        }
        var target = _loading.ContainsKey(mid) ? _loading : _overflow;
        var before = target.GetValueOrDefault(mid);
        var after = before.Union(RidSet.Of(rids));
        if (after.IsEmpty) return 0;
        target[mid] = after;
        RecipientCount += after.Count - before.Count;
        return after.Count - before.Count;
    }

    /// <summary>The message waits beyond the window (or is being read back).</summary>
    public bool Paged(long mid) => _overflow.ContainsKey(mid) || _loading.ContainsKey(mid);

    /// <summary>Messages beyond the window to read back whatever the window holds (an operator action on them needs
    /// their envelopes): the given MIDs, or every one when null. Returns what to read, as <see cref="TakeRefill"/>.</summary>
    public IReadOnlyList<(long Mid, int[] Rids)> TakeForRead(IReadOnlyCollection<long>? mids)
    {
        return StartLoading(mids is null ? _overflow.Keys.ToArray() : mids.Where(_overflow.ContainsKey).ToArray());
    }

    /// <summary>Messages beyond the window to read back now (MID and outstanding RIDs, lowest MIDs first), or none:
    /// one read at a time, and only once a quarter of the window is free (fewer, larger reads).</summary>
    public IReadOnlyList<(long Mid, int[] Rids)> TakeRefill()
    {
        var room = Window - _messages.Count;
        if (_overflow.Count == 0 || _loading.Count > 0 || room <= 0 || (room < Window / 4 && room < _overflow.Count)) return [];
        // A partial sort: the lowest MIDs are the oldest mail (MIDs grow with time).
        return StartLoading(_overflow.Keys.Where(mid => !_messages.ContainsKey(mid)).Order().Take(room).ToArray());
    }

    /// <summary>Moves messages from beyond the window to "being read back" and lists them for the read.</summary>
    private List<(long Mid, int[] Rids)> StartLoading(long[] mids)
    {
        var batch = new List<(long, int[])>(mids.Length);
        foreach (var mid in mids)
        {
            _overflow.Remove(mid, out var rids);
            _loading[mid] = rids;
            batch.Add((mid, rids.ToArray()));
        }
        return batch;
    }

    /// <summary>The envelopes of a <see cref="TakeRefill"/> batch, read from the spool: each message enters the window
    /// with the RIDs still outstanding (a recipient finished meanwhile is not brought back). <c>Message</c> null: the
    /// spool no longer holds it (finished by another path), it leaves the queue. Returns the recipients now queued.</summary>
    public int Refilled(IEnumerable<(long Mid, MessageRef? Message, IReadOnlyList<RecipientRef> Recipients)> loaded, DateTimeOffset now)
    {
        var added = 0;
        foreach (var (mid, message, recipients) in loaded)
        {
            if (!_loading.Remove(mid, out var rids)) continue;
            RecipientCount -= rids.Count;
            if (message is null) continue;
            added += Admit(message, recipients.Where(r => rids.Contains(r.Rid)).ToArray(), now);
        }
        return added;
    }

    /// <summary>Reading a batch failed: it waits beyond the window again (the next refill retries it).</summary>
    public void RefillFailed()
    {
        foreach (var (mid, rids) in _loading)
            _overflow[mid] = _overflow.TryGetValue(mid, out var o) ? o.Union(rids) : rids;
        _loading.Clear();
    }

    private int Admit(MessageRef message, IReadOnlyList<RecipientRef> recipients, DateTimeOffset now)
    {
        if (!_messages.TryGetValue(message.Mid, out var m))
            _messages[message.Mid] = m = new QueuedMessage(message);
        List<QueuedRecipient>? fresh = null;
        foreach (var r in recipients)
        {
            if (m.Get(r.Rid) is not null || (fresh?.Exists(f => f.Ref.Rid == r.Rid) ?? false)) continue;
            var q = new QueuedRecipient(r) { NextAttempt = now };
            if (_retry.Remove((message.Mid, r.Rid), out var rec))
            {
                q.Attempts = rec.Attempts;
                q.Warnings = rec.Warnings;
                q.NextAttempt = rec.NextAttemptUtc;
                q.LastError = rec.LastError;
                SetPersisted(q, true);
            }
            (fresh ??= new List<QueuedRecipient>(recipients.Count)).Add(q);
        }
        var added = fresh?.Count ?? 0;
        if (added > 0) m.Items = m.Items.Length == 0 ? fresh!.ToArray() : [.. m.Items, .. fresh!];
        RecipientCount += added;
        if (m.Items.Length == 0) _messages.Remove(message.Mid);
        else Reindex(message.Mid);
        return added;
    }

    public QueuedMessage? Find(long mid) => _messages.GetValueOrDefault(mid);

    /// <summary>Every queued message (no order; do not change the queue while enumerating).</summary>
    public IEnumerable<QueuedMessage> Messages => _messages.Values;

    /// <summary>The earliest time an idle recipient is due, or null when nothing waits.</summary>
    public DateTimeOffset? NextDue => _ready.Count == 0 ? null : _ready.Min.Due;

    /// <summary>Due times of messages with idle recipients, earliest first (lazy; stop early).</summary>
    public IEnumerable<DateTimeOffset> DueTimes()
    {
        foreach (var (due, _) in _ready) yield return due;
    }

    public bool HasDue(DateTimeOffset now) => _ready.Count > 0 && _ready.Min.Due <= now;

    /// <summary>Takes the oldest due message: its due, idle recipients become in-flight.</summary>
    public (MessageRef Message, IReadOnlyList<QueuedRecipient> Recipients)? TakeDue(DateTimeOffset now, int maxRecipients = int.MaxValue)
    {
        while (_ready.Count > 0)
        {
            var (due, mid) = _ready.Min;
            if (due > now) return null;
            var m = _messages[mid];
            var taken = new List<QueuedRecipient>();
            foreach (var r in m.Items)
            {
                if (r.InFlight || r.NextAttempt > now) continue;
                r.InFlight = true;
                taken.Add(r);
                if (taken.Count >= maxRecipients) break;
            }
            InFlightCount += taken.Count;
            Reindex(mid);
            if (taken.Count > 0) return (m.Message, taken);
        }
        return null;
    }

    /// <summary>Due, idle recipients by message, oldest first, without taking them (a decision reads; Apply changes).</summary>
    public IReadOnlyList<(MessageRef Message, IReadOnlyList<RecipientRef> Recipients)> Due(DateTimeOffset now)
    {
        var result = new List<(MessageRef, IReadOnlyList<RecipientRef>)>();
        foreach (var (due, mid) in _ready)
        {
            if (due > now) break;
            var m = _messages[mid];
            var rcpts = m.Items.Where(r => !r.InFlight && r.NextAttempt <= now).Select(r => r.Ref).ToArray();
            if (rcpts.Length > 0) result.Add((m.Message, rcpts));
        }
        return result;
    }

    /// <summary>In-flight recipients that were not attempted (connection lost before the transaction) become idle.</summary>
    public void Release(long mid, IEnumerable<int> rids)
    {
        if (!_messages.TryGetValue(mid, out var m)) return;
        foreach (var rid in rids)
            if (m.Get(rid) is { InFlight: true } r) { r.InFlight = false; InFlightCount--; }
        Reindex(mid);
    }

    /// <summary>Marks a queued (usually in-flight) recipient as deferred until <paramref name="next"/>; the
    /// destination reaches it only through <see cref="Apply(IDestinationEvent)"/> of a persisted <see cref="RecipientsDeferred"/>.</summary>
    public void Defer(long mid, int rid, int attempts, DateTimeOffset next, string reason, int warnings = 0)
    {
        if (!_messages.TryGetValue(mid, out var m) || m.Get(rid) is not { } r) return;
        SetPersisted(r, true);
        if (r.InFlight) { r.InFlight = false; InFlightCount--; }
        r.Attempts = attempts;
        r.Warnings = Math.Max(r.Warnings, warnings);
        r.NextAttempt = next;
        r.LastError = reason;
        Reindex(mid);
    }

    /// <summary>Removes a recipient that reached a final outcome.</summary>
    public void Complete(long mid, int rid)
    {
        foreach (var paged in (Dictionary<long, RidSet>[])[_overflow, _loading])
            if (paged.TryGetValue(mid, out var rids) && rids.Contains(rid))
            {
                RecipientCount--;
                var left = rids.Except([rid]);
                if (left.IsEmpty) paged.Remove(mid);
                else paged[mid] = left;
                return;
            }
        if (!_messages.TryGetValue(mid, out var m) || !m.Remove(rid, out var r)) return;
        RecipientCount--;
        SetPersisted(r, false);
        if (r.InFlight) InFlightCount--;
        if (m.Items.Length == 0)
        {
            if (m.IndexedDue is { } d) _ready.Remove((d, mid));
            _messages.Remove(mid);
        }
        else Reindex(mid);
    }

    /// <summary>Every idle recipient becomes due now (operator "delivernow", or the destination came back).</summary>
    public void MakeAllDue(DateTimeOffset now)
    {
        foreach (var (mid, m) in _messages)
        {
            foreach (var r in m.Items)
                if (!r.InFlight && r.NextAttempt > now) r.NextAttempt = now;
        }
        foreach (var mid in _messages.Keys.ToList()) Reindex(mid);
    }

    /// <summary>Idle recipients whose message has been queued longer than <paramref name="maxAge"/>.</summary>
    public IEnumerable<(MessageRef Message, QueuedRecipient Recipient)> Expired(DateTimeOffset now, TimeSpan maxAge)
    {
        foreach (var m in _messages.Values)
        {
            if (now - m.Message.ReceivedAt < maxAge) continue;
            foreach (var r in m.Items)
                if (!r.InFlight) yield return (m.Message, r);
        }
    }

    /// <summary>Deferred recipients: in the window, and beyond it those whose journal retry record waits for their
    /// message to be read back (a restarted destination knows them before the read completes).</summary>
    public int DeferredCount => _messages.Values.Sum(m => m.Items.Count(r => r.Attempts > 0)) + PagedRetryRecords().Count();

    public string? LastError => _messages.Values.SelectMany(m => m.Items)
        .Where(r => r.LastError is not null).Select(r => r.LastError).LastOrDefault()
        ?? PagedRetryRecords().Select(r => r.LastError).LastOrDefault(e => !string.IsNullOrEmpty(e));

    private IEnumerable<RetryRecord> PagedRetryRecords() => _retry.Values.Where(r =>
        (_overflow.TryGetValue(r.Mid, out var o) && o.Contains(r.Rid)) || (_loading.TryGetValue(r.Mid, out var l) && l.Contains(r.Rid)));

    private void SetPersisted(QueuedRecipient r, bool persisted)
    {
        if (r.Persisted == persisted) return;
        r.Persisted = persisted;
        _persistedQueued += persisted ? 1 : -1;
    }

    private void Reindex(long mid)
    {
        if (!_messages.TryGetValue(mid, out var m)) return;
        if (m.IndexedDue is { } old) _ready.Remove((old, mid));
        DateTimeOffset? due = null;
        foreach (var r in m.Items)
            if (!r.InFlight && (due is null || r.NextAttempt < due)) due = r.NextAttempt;
        m.IndexedDue = due;
        if (due is { } d) _ready.Add((d, mid));
    }
}
