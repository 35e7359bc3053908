using System.Net;

namespace MtaSts.Actors.Engine.Sites;

/// <summary>Where a parked session may be reused: the same MX host name, address and port, from the same source address,
/// with the same EHLO name and client certificate (the identity the server saw, RFC 5321 §4.1.1.1).</summary>
public sealed record SiteKey(string MxHost, IPEndPoint Mx, IPAddress? Source, string HeloName, string? ClientCertificate)
{
    public bool Equals(SiteKey? other) => other is not null && string.Equals(MxHost, other.MxHost, StringComparison.OrdinalIgnoreCase)
        && Mx.Equals(other.Mx) && Equals(Source, other.Source) && HeloName == other.HeloName && ClientCertificate == other.ClientCertificate;

    public override int GetHashCode() => HashCode.Combine(MxHost.ToLowerInvariant(), Mx, Source, HeloName, ClientCertificate);
}

/// <summary>A connection's place at an MX address (see <see cref="MxSites{T}.AcquireAsync"/>): opening until
/// <see cref="Connected"/>, released once, when the connection is closed.</summary>
public sealed class SiteSlot
{
    private readonly Action<bool> _connected;
    private readonly Action<bool> _release;
    private int _state; // 0 opening, 1 connected, 2 released

    internal SiteSlot(Action<bool> connected, Action<bool> release)
    {
        _connected = connected;
        _release = release;
    }

    /// <summary>The connection attempt is over; <paramref name="answered"/>: the address answered (false: network
    /// error or timeout — connections waiting to open there then no longer wait for each other).</summary>
    public void Connected(bool answered)
    {
        if (Interlocked.CompareExchange(ref _state, 1, 0) == 0) _connected(answered);
    }

    public void Release()
    {
        var was = Interlocked.Exchange(ref _state, 2);
        if (was != 2) _release(was == 0);
    }
}

/// <summary>
/// The node's delivery sites, without I/O: the connections open per MX address (<c>limit-type = mx-ip</c>: the
/// profile's max-concurrent-connections applies per MX IP address, shared by every destination whose MX resolves to
/// it), the connections opening there (with roll-up, at most a few at once per address: the others wait for a session
/// to be parked, so that many domains on one MX share few connections, as Postfix's connection cache does) and the idle
/// sessions parked for MX roll-up. Thread-safe with short locks and no I/O under them; the transport
/// does the network work. Per node: in a cluster each node counts and pools its own connections.
/// </summary>
/// <typeparam name="T">The pooled session (the transport's connection; a plain object in tests).</typeparam>
public sealed class MxSites<T> where T : class
{
    /// <summary>A session waiting in the pool; <see cref="Domain"/> is the destination that parked it. Compared by
    /// reference: the idle timer of one parking must not remove a later parking of the same session.</summary>
    public sealed class Parked(SiteKey key, T item, string domain)
    {
        public SiteKey Key => key;
        public T Item => item;
        public string Domain => domain;
    }

    /// <summary>What a waiting connection gets: a place of its own, or a parked session it can use (which keeps its place).</summary>
    public sealed record Grant(SiteSlot? Slot, Parked? Session);

    private sealed record Waiter(SiteKey Key, int Limit, int OpeningLimit, Func<Parked, bool>? Usable, TaskCompletionSource<Grant> Done)
    {
        /// <summary>Its cancellation callback: removed once it leaves the queue, or a long-lived token would keep one
        /// callback per wait that ever happened (15,601 left after 100,000 destinations had waited and passivated).</summary>
        public CancellationTokenRegistration Registration;
    }

    /// <summary>The connections waiting at one address, in arrival order, with how many wait under each (limit, opening
    /// limit): a freed place is given by looking at those few kinds first. Scanning the whole queue on every release was
    /// quadratic: 100,000 new destinations behind one MX address (mx-rollup-max-connections) held the lock for seconds
    /// per release and starved the node (journal writes timed out, the admin API stopped answering).</summary>
    private sealed class WaitQueue
    {
        public readonly LinkedList<Waiter> List = new();
        private readonly Dictionary<(int Limit, int Opening), int> _kinds = new();

        public int Count => List.Count;

        public LinkedListNode<Waiter> Add(Waiter w)
        {
            var kind = (w.Limit, w.OpeningLimit);
            _kinds[kind] = _kinds.GetValueOrDefault(kind) + 1;
            return List.AddLast(w);
        }

        public void Remove(LinkedListNode<Waiter> node)
        {
            node.Value.Registration.Unregister(); // does not wait for a callback that runs now (it takes the lock itself)
            var kind = (node.Value.Limit, node.Value.OpeningLimit);
            if (_kinds[kind] == 1) _kinds.Remove(kind);
            else _kinds[kind]--;
            List.Remove(node);
        }

        /// <summary>Whether a waiting connection could get a place with <paramref name="open"/> counted and
        /// <paramref name="opening"/> opening (<paramref name="silent"/>: the address does not answer, no opening limit).</summary>
        public bool AnyFits(int open, int opening, bool silent)
        {
            foreach (var (limit, openingLimit) in _kinds.Keys)
                if (open < limit && (opening < openingLimit || silent)) return true;
            return false;
        }

        /// <summary>Whether a waiting connection is kept out by the places: its limit is at most <paramref name="open"/>.</summary>
        public bool AnyKeptOut(int open)
        {
            foreach (var (limit, _) in _kinds.Keys)
                if (open >= limit) return true;
            return false;
        }
    }

    /// <summary>Waiters looked at while giving places (tests: a release must not walk the whole queue).</summary>
    internal long WaitersExamined { get; private set; }

    private readonly object _gate = new();
    private readonly Dictionary<IPEndPoint, int> _open = new();
    private readonly Dictionary<IPEndPoint, int> _opening = new();
    /// <summary>Addresses whose last connection attempt got no answer: no one waits for an opening there.</summary>
    private readonly HashSet<IPEndPoint> _silent = new();
    private readonly Dictionary<IPEndPoint, WaitQueue> _waiting = new();
    private readonly Dictionary<SiteKey, List<Parked>> _parked = new();

    /// <summary>Connections counted at <paramref name="mx"/> (opening, busy or parked).</summary>
    public int OpenAt(IPEndPoint mx)
    {
        lock (_gate) return _open.GetValueOrDefault(mx);
    }

    /// <summary>Connections counted at <paramref name="mx"/> whose connection attempt is not over.</summary>
    public int OpeningAt(IPEndPoint mx)
    {
        lock (_gate) return _opening.GetValueOrDefault(mx);
    }

    public int ParkedCount
    {
        get { lock (_gate) return _parked.Values.Sum(l => l.Count); }
    }

    public int WaitingAt(IPEndPoint mx)
    {
        lock (_gate) return _waiting.TryGetValue(mx, out var w) ? w.Count : 0;
    }

    /// <summary>A place for one more connection at <paramref name="key"/>'s address, given at once while fewer than
    /// <paramref name="limit"/> are counted there and fewer than <paramref name="openingLimit"/> are opening there, else
    /// in arrival order as places free up and openings end (int.MaxValue: never waits, only counted). Meanwhile a
    /// session parked for the same key that <paramref name="usable"/> accepts is handed over instead (MX roll-up: it
    /// already holds a place). A waiter kept out by <paramref name="limit"/> makes room: the sessions parked at that
    /// address (it could not use them) are handed back in <paramref name="evicted"/> for the caller to close, which
    /// frees their places. The opening limit does not apply while the address does not answer (see
    /// <see cref="SiteSlot.Connected"/>): a dead MX fails every waiting destination at once, not a few at a time.</summary>
    public Task<Grant> AcquireAsync(SiteKey key, int limit, Func<Parked, bool>? usable, CancellationToken ct, out IReadOnlyList<T> evicted,
        int openingLimit = int.MaxValue)
    {
        evicted = [];
        var mx = key.Mx;
        lock (_gate)
        {
            var open = _open.GetValueOrDefault(mx);
            if (open < limit && CanOpen(mx, openingLimit) && !_waiting.ContainsKey(mx))
            {
                _open[mx] = open + 1;
                return Task.FromResult(new Grant(NewSlot(mx), null));
            }
            // Parked since the caller last looked (under this lock, so it is not parked past a waiter).
            if (usable is not null && TakeParked(key, usable) is { } ready) return Task.FromResult(new Grant(null, ready));
            var waiter = new Waiter(key, limit, openingLimit, usable, new TaskCompletionSource<Grant>(TaskCreationOptions.RunContinuationsAsynchronously));
            if (!_waiting.TryGetValue(mx, out var queue)) _waiting[mx] = queue = new WaitQueue();
            var node = queue.Add(waiter);
            if (open >= limit) evicted = EvictAt(mx);
            if (ct.CanBeCanceled)
                waiter.Registration = ct.Register(() =>
                {
                    lock (_gate)
                    {
                        if (node.List is null) return; // already given a place
                        queue.Remove(node);
                        if (queue.Count == 0) _waiting.Remove(mx);
                    }
                    waiter.Done.TrySetCanceled(ct);
                });
            return waiter.Done.Task;
        }
    }

    private bool CanOpen(IPEndPoint mx, int openingLimit) => _opening.GetValueOrDefault(mx) < openingLimit || _silent.Contains(mx);

    private List<T> EvictAt(IPEndPoint mx)
    {
        var evicted = new List<T>();
        foreach (var (key, list) in _parked.Where(p => p.Key.Mx.Equals(mx)).ToList())
        {
            evicted.AddRange(list.Select(p => p.Item));
            _parked.Remove(key);
        }
        return evicted;
    }

    private SiteSlot NewSlot(IPEndPoint mx)
    {
        _opening[mx] = _opening.GetValueOrDefault(mx) + 1;
        return new SiteSlot(answered => Connected(mx, answered), opening => Release(mx, opening));
    }

    private void Connected(IPEndPoint mx, bool answered)
    {
        var granted = new List<(Waiter, Grant)>();
        lock (_gate)
        {
            Decrement(_opening, mx);
            if (answered) _silent.Remove(mx);
            else _silent.Add(mx);
            if (GrantWaiting(mx, _open.GetValueOrDefault(mx), granted) is > 0 and var open) _open[mx] = open;
        }
        foreach (var (waiter, grant) in granted) waiter.Done.TrySetResult(grant);
    }

    private void Release(IPEndPoint mx, bool opening)
    {
        var granted = new List<(Waiter, Grant)>();
        lock (_gate)
        {
            if (opening) Decrement(_opening, mx); // cancelled or failed before it was connected
            var open = GrantWaiting(mx, _open.GetValueOrDefault(mx) - 1, granted);
            if (open <= 0) _open.Remove(mx);
            else _open[mx] = open;
        }
        // A waiter taken out of the queue under the lock is no longer cancelled by its token (see AcquireAsync).
        foreach (var (waiter, grant) in granted) waiter.Done.TrySetResult(grant);
    }

    private static void Decrement(Dictionary<IPEndPoint, int> counts, IPEndPoint mx)
    {
        var n = counts.GetValueOrDefault(mx) - 1;
        if (n <= 0) counts.Remove(mx);
        else counts[mx] = n;
    }

    /// <summary>Gives places to the waiters that fit now, in arrival order (one with a lower limit than the places taken
    /// waits on, later ones may go); the places counted afterwards. Under the lock.</summary>
    private int GrantWaiting(IPEndPoint mx, int open, List<(Waiter, Grant)> granted)
    {
        if (!_waiting.TryGetValue(mx, out var queue)) return open;
        // Places and openings only grow while places are given, so once no kind of waiter fits, none will.
        for (var n = queue.List.First; n is not null && queue.AnyFits(open, _opening.GetValueOrDefault(mx), _silent.Contains(mx));)
        {
            WaitersExamined++;
            var next = n.Next;
            if (open < n.Value.Limit && CanOpen(mx, n.Value.OpeningLimit))
            {
                queue.Remove(n);
                open++;
                granted.Add((n.Value, new Grant(NewSlot(mx), null)));
            }
            n = next;
        }
        if (queue.Count == 0) _waiting.Remove(mx);
        return open;
    }

    /// <summary>Parks an idle session for other destinations, or hands it straight to the first connection waiting at
    /// that address that can use it. False — close it instead — when connections wait there for a place but none can use
    /// it (the parked one would only keep them out).</summary>
    public bool TryPark(Parked parked) => TryPark(parked, out _);

    /// <param name="handed">True when it went to a waiting connection rather than into the pool.</param>
    public bool TryPark(Parked parked, out bool handed)
    {
        handed = false;
        Waiter? taker = null;
        lock (_gate)
        {
            if (_waiting.TryGetValue(parked.Key.Mx, out var queue))
            {
                for (var n = queue.List.First; n is not null && taker is null; n = n.Next)
                    if (n.Value.Key.Equals(parked.Key) && n.Value.Usable?.Invoke(parked) == true)
                    {
                        taker = n.Value;
                        queue.Remove(n);
                    }
                if (queue.Count == 0) _waiting.Remove(parked.Key.Mx);
                // Closing it frees a place only for a waiter kept out by the places (not one waiting for an opening).
                var open = _open.GetValueOrDefault(parked.Key.Mx);
                if (taker is null && queue.AnyKeptOut(open)) return false;
            }
            if (taker is null)
            {
                if (!_parked.TryGetValue(parked.Key, out var list)) _parked[parked.Key] = list = new List<Parked>();
                list.Add(parked);
                return true;
            }
        }
        handed = true;
        taker.Done.TrySetResult(new Grant(null, parked));
        return true;
    }

    /// <summary>Hands an idle session straight to the first connection waiting at that address that can use it; false
    /// (nothing done) when none can. Needs no room in the pool: the taker already counts as a connection.</summary>
    public bool TryHandOver(Parked parked)
    {
        Waiter? taker = null;
        lock (_gate)
        {
            if (!_waiting.TryGetValue(parked.Key.Mx, out var queue)) return false;
            for (var n = queue.List.First; n is not null; n = n.Next)
                if (n.Value.Key.Equals(parked.Key) && n.Value.Usable?.Invoke(parked) == true)
                {
                    taker = n.Value;
                    queue.Remove(n);
                    break;
                }
            if (queue.Count == 0) _waiting.Remove(parked.Key.Mx);
        }
        taker?.Done.TrySetResult(new Grant(null, parked));
        return taker is not null;
    }

    /// <summary>Takes the most recently parked session at <paramref name="key"/> that <paramref name="usable"/> accepts
    /// (the requesting destination's requirements), or null.</summary>
    public Parked? TryTake(SiteKey key, Func<Parked, bool> usable)
    {
        lock (_gate) return TakeParked(key, usable);
    }

    private Parked? TakeParked(SiteKey key, Func<Parked, bool> usable)
    {
        if (!_parked.TryGetValue(key, out var list)) return null;
        for (var i = list.Count - 1; i >= 0; i--)
        {
            if (!usable(list[i])) continue;
            var taken = list[i];
            list.RemoveAt(i);
            if (list.Count == 0) _parked.Remove(key);
            return taken;
        }
        return null;
    }

    /// <summary>Removes a parked session (its idle time is over). False when another destination took it meanwhile.</summary>
    public bool Remove(Parked parked)
    {
        lock (_gate)
        {
            if (!_parked.TryGetValue(parked.Key, out var list) || !list.Remove(parked)) return false;
            if (list.Count == 0) _parked.Remove(parked.Key);
            return true;
        }
    }

    /// <summary>Empties the pool (gateway stop); the caller closes what it gets.</summary>
    public IReadOnlyList<T> TakeAll()
    {
        lock (_gate)
        {
            var all = _parked.Values.SelectMany(l => l.Select(p => p.Item)).ToList();
            _parked.Clear();
            return all;
        }
    }
}
