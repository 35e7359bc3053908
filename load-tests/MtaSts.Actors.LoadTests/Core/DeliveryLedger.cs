namespace MtaSts.Actors.LoadTests.Core;

/// <summary>
/// Per-message bookkeeping keyed by the numeric part of X-Load-Id: when it was due, whether the target accepted it,
/// how often it arrived at the receiver. Arrays in 64k blocks instead of a dictionary: a 1,000,000-message backlog
/// costs ~13 MB here and no per-message allocation, so the harness doesn't distort the RSS it measures next door.
/// </summary>
public sealed class DeliveryLedger
{
    private const int BlockBits = 16;
    private const int BlockSize = 1 << BlockBits;
    private const byte FlagMeasuring = 1, FlagAccepted = 2, FlagSubmitted = 4;

    private readonly long[]?[] _scheduled;
    private readonly int[]?[] _arrivals;
    private readonly byte[]?[] _flags;
    private readonly long[]?[] _queueKeys;   // the target's queue id from its final 250 ("queued as …"), as a key; 0 = none
    private readonly int[]?[] _dsns;         // failure DSNs that came back for this message
    private readonly object _grow = new();

    public long AcceptedTotal;
    public long AcceptedMeasured;
    public long DeliveredTotal;      // distinct ids that arrived (accepted or not)
    public long DeliveredMeasured;   // distinct measured ids that arrived
    public long Duplicates;          // extra copies beyond the first
    public long UnknownIds;          // arrivals with a foreign/absent id (other run, bounce, ...)
    public long FirstArrivalUs;
    public long LastArrivalUs;
    public long DsnsFailed;          // failure DSNs (Action: failed) that name one of our messages, first copy each
    public long DsnsDelayed;         // delay DSNs (Action: delayed only): the message is still on its way
    public long DsnDuplicates;       // extra failure DSNs for a message that already had one
    public long DsnsUnattributed;    // null-sender arrivals in which no X-Load-Id of this run was found

    public DeliveryLedger(string runTag, long capacity)
    {
        RunTag = runTag;
        var blocks = (int)((capacity + BlockSize - 1) >> BlockBits) + 1;
        _scheduled = new long[]?[blocks];
        _arrivals = new int[]?[blocks];
        _flags = new byte[]?[blocks];
        _queueKeys = new long[]?[blocks];
        _dsns = new int[]?[blocks];
    }

    /// <summary>Tag in every X-Load-Id, so that mail left over from an earlier run is counted as foreign, not as a duplicate.</summary>
    public string RunTag { get; }
    public long Capacity => (long)_scheduled.Length << BlockBits;

    /// <summary>End-to-end latency: arrival at the receiver minus the scheduled submit time (measured messages only).</summary>
    public LatencyHistogram EndToEnd { get; } = new();

    public void Submitted(long id, long scheduledUs, bool measuring)
    {
        if (!Slot(id, create: true, out var b, out var i)) return;
        _scheduled[b]![i] = scheduledUs;
        _flags[b]![i] = (byte)(FlagSubmitted | (measuring ? FlagMeasuring : 0));
    }

    public void Accepted(long id, long queueKey = 0)
    {
        if (!Slot(id, create: false, out var b, out var i)) return;
        if (queueKey != 0) _queueKeys[b]![i] = queueKey;
        _flags[b]![i] |= FlagAccepted;
        Interlocked.Increment(ref AcceptedTotal);
        if ((_flags[b]![i] & FlagMeasuring) != 0) Interlocked.Increment(ref AcceptedMeasured);
    }

    public void Arrived(long id, long nowUs)
    {
        if (!Slot(id, create: false, out var b, out var i) || (_flags[b]![i] & FlagSubmitted) == 0)
        {
            Interlocked.Increment(ref UnknownIds);
            return;
        }
        if (Interlocked.Increment(ref _arrivals[b]![i]) > 1)
        {
            Interlocked.Increment(ref Duplicates);
            return;
        }
        var flags = Volatile.Read(ref _flags[b]![i]);
        Interlocked.Increment(ref DeliveredTotal);
        Interlocked.CompareExchange(ref FirstArrivalUs, nowUs, 0);
        LoadRunner.InterlockedMax(ref LastArrivalUs, nowUs);
        var measuring = (flags & FlagMeasuring) != 0;
        if (measuring) Interlocked.Increment(ref DeliveredMeasured);
        EndToEnd.Record(nowUs - _scheduled[b]![i], measuring);
    }

    /// <summary>
    /// A DSN (null reverse-path) arrived at the receiver naming message <paramref name="id"/> in its returned
    /// headers. <paramref name="failed"/>: it reports a permanent failure (Action: failed), i.e. the message bounced;
    /// otherwise it is a delay notice and the message is still queued somewhere.
    /// </summary>
    public void DsnArrived(long? id, bool failed)
    {
        if (id is not { } v || !Slot(v, create: false, out var b, out var i) || (_flags[b]![i] & FlagSubmitted) == 0)
        {
            Interlocked.Increment(ref DsnsUnattributed);
            return;
        }
        if (!failed)
        {
            Interlocked.Increment(ref DsnsDelayed);
            return;
        }
        if (Interlocked.Increment(ref _dsns[b]![i]) > 1) Interlocked.Increment(ref DsnDuplicates);
        else Interlocked.Increment(ref DsnsFailed);
    }

    /// <summary>Accepted messages with no outcome seen by the receiver yet: neither arrived nor bounced (failure DSN).
    /// The drain waits for this to reach 0.</summary>
    public long Unresolved()
    {
        long n = 0;
        for (var b = 0; b < _flags.Length; b++)
        {
            var f = _flags[b];
            var a = _arrivals[b];
            var d = _dsns[b];
            if (f is null || a is null || d is null) continue;
            for (var i = 0; i < BlockSize; i++)
                if ((f[i] & FlagAccepted) != 0 && a[i] == 0 && d[i] == 0) n++;
        }
        return n;
    }

    /// <summary>One message's record, for the end-state accounting.</summary>
    public readonly record struct Entry(long Id, bool Submitted, bool Accepted, bool Measuring, int Arrivals, int FailureDsns, long QueueKey);

    /// <summary>Every submitted message, in id order.</summary>
    public IEnumerable<Entry> Entries()
    {
        for (var b = 0; b < _flags.Length; b++)
        {
            var f = _flags[b];
            if (f is null) continue;
            var a = _arrivals[b]!;
            var d = _dsns[b]!;
            var q = _queueKeys[b]!;
            for (var i = 0; i < BlockSize; i++)
            {
                if ((f[i] & FlagSubmitted) == 0) continue;
                yield return new Entry(((long)b << BlockBits) | (long)i, true, (f[i] & FlagAccepted) != 0, (f[i] & FlagMeasuring) != 0,
                    Volatile.Read(ref a[i]), Volatile.Read(ref d[i]), q[i]);
            }
        }
    }

    /// <summary>
    /// After the drain: accepted messages that never arrived (lost or still queued) and arrivals the client never saw
    /// accepted (reply lost after '.', or the target delivered a message it answered 4xx to). Computed by a scan at
    /// the end, because an arrival can legitimately be seen before the client has read its 250.
    /// </summary>
    public (long NotArrived, long ArrivedNotAccepted) Reconcile()
    {
        long notArrived = 0, notAccepted = 0;
        for (var b = 0; b < _flags.Length; b++)
        {
            var f = _flags[b];
            var a = _arrivals[b];
            if (f is null || a is null) continue;
            for (var i = 0; i < BlockSize; i++)
            {
                var accepted = (f[i] & FlagAccepted) != 0;
                if (accepted && a[i] == 0) notArrived++;
                else if (!accepted && a[i] > 0) notAccepted++;
            }
        }
        return (notArrived, notAccepted);
    }

    /// <summary>Messages in flight from the harness's view: accepted by the target, not yet seen at the receiver.</summary>
    public long InFlight => Math.Max(0, Interlocked.Read(ref AcceptedTotal) - Interlocked.Read(ref DeliveredTotal));

    private bool Slot(long id, bool create, out int block, out int index)
    {
        block = (int)(id >> BlockBits);
        index = (int)(id & (BlockSize - 1));
        if (id < 0 || block >= _scheduled.Length) return false;
        if (_flags[block] is not null) return true;
        if (!create) return false;
        lock (_grow)
        {
            if (_flags[block] is null)
            {
                _scheduled[block] = new long[BlockSize];
                _arrivals[block] = new int[BlockSize];
                _queueKeys[block] = new long[BlockSize];
                _dsns[block] = new int[BlockSize];
                Volatile.Write(ref _flags[block], new byte[BlockSize]);
            }
        }
        return true;
    }
}
