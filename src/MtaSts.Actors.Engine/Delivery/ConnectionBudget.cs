namespace MtaSts.Actors.Engine.Delivery;

/// <summary>
/// The node's outbound connection budget (<c>mtasts.delivery.max-connections</c>): every connection a destination opens
/// (opening, busy or idle) and every session parked for MX roll-up holds one token, so the node never has more than
/// <see cref="Limit"/> outbound connections however many destinations have mail due at once (an operator "deliver now"
/// over 100,000 deferred destinations opened ≈ 20,000 connections and ran the gateway out of memory; Postfix bounds the
/// same with its smtp process limit, Cisco with a system-wide concurrency).
/// <para>
/// Destinations that cannot get a token wait in arrival order. A token that frees while destinations wait is reserved
/// for the first of them (one token per turn, round robin: a destination that wants more goes to the back of the line)
/// and it is told so (<see cref="Account"/>'s callback); a reserved token it does not use goes on to the next one.
/// Thread-safe with one short lock and no I/O under it; the callbacks run outside the lock.
/// </para>
/// </summary>
public sealed class ConnectionBudget
{
    private readonly object _gate = new();
    private readonly LinkedList<Account> _waiting = new();
    private readonly Action<int, int>? _saturated;
    private long _lastSaturatedLog = -60_000;
    private int _inUse;

    /// <param name="limit">Connections this node may have open (≥ 1).</param>
    /// <param name="saturated">Told (limit, destinations waiting) when destinations start waiting, at most once a minute.</param>
    public ConnectionBudget(int limit, Action<int, int>? saturated = null)
    {
        ArgumentOutOfRangeException.ThrowIfLessThan(limit, 1);
        Limit = limit;
        _saturated = saturated;
    }

    public int Limit { get; }

    /// <summary>Tokens held: connections of destinations, tokens reserved for a waiting destination, parked sessions.</summary>
    public int InUse
    {
        get { lock (_gate) return _inUse; }
    }

    /// <summary>Destinations waiting for a token.</summary>
    public int Waiting
    {
        get { lock (_gate) return _waiting.Count; }
    }

    /// <summary>A destination's account; <paramref name="granted"/> is called (outside the lock, from any thread) when a
    /// token was reserved for it — the destination plans again and takes it, or gives it back.</summary>
    public Account Open(Action granted) => new(this, granted);

    /// <summary>One destination's share: the tokens its connections hold, the ones reserved for it, its place in line.</summary>
    public sealed class Account
    {
        internal Account(ConnectionBudget budget, Action granted)
        {
            Budget = budget;
            Granted = granted;
        }

        internal ConnectionBudget Budget { get; }
        internal Action Granted { get; }
        internal int Held;
        internal int Reserved;
        internal LinkedListNode<Account>? InLine;
        internal bool Closed;

        /// <summary>Tokens held by this destination's connections.</summary>
        public int Connections
        {
            get { lock (Budget._gate) return Held; }
        }

        /// <summary>Destinations wait for a token: an idle connection is closed at once rather than kept.</summary>
        public bool Contended => Budget.Waiting > 0;

        public bool IsWaiting
        {
            get { lock (Budget._gate) return InLine is not null; }
        }

        /// <summary>Up to <paramref name="wanted"/> tokens for new connections: the reserved ones first, then free ones
        /// unless other destinations are waiting (they come first). Short: this destination gets in line.</summary>
        public int Take(int wanted) => Budget.Take(this, wanted);

        /// <summary>A connection of this destination is gone: its token goes to the first destination waiting, or back.</summary>
        public void Release(int connections = 1) => Budget.Release(this, connections);

        /// <summary>After planning: reserved tokens not used go on to others; <paramref name="stillShort"/> false leaves the line.</summary>
        public void Settle(bool stillShort) => Budget.Settle(this, stillShort);

        /// <summary>The destination stops: every token it holds or has reserved is given back, and it leaves the line.</summary>
        public void Close() => Budget.Close(this);
    }

    private int Take(Account a, int wanted)
    {
        if (wanted <= 0) return 0;
        int got, waiting;
        lock (_gate)
        {
            if (a.Closed) return 0;
            got = Math.Min(a.Reserved, wanted);
            a.Reserved -= got;
            // Free tokens only when nobody waits: a token that freed while others waited was reserved for them.
            if (got < wanted && _waiting.Count == 0)
            {
                var free = Math.Min(Limit - _inUse, wanted - got);
                _inUse += free;
                got += free;
            }
            a.Held += got;
            if (got == wanted || a.InLine is not null) return got;
            var first = _waiting.Count == 0;
            a.InLine = _waiting.AddLast(a);
            waiting = _waiting.Count;
            if (!first || Environment.TickCount64 - _lastSaturatedLog < 60_000) return got;
            _lastSaturatedLog = Environment.TickCount64;
        }
        _saturated?.Invoke(Limit, waiting);
        return got;
    }

    private void Release(Account a, int n)
    {
        List<Account>? granted;
        lock (_gate)
        {
            n = Math.Min(n, a.Held);
            a.Held -= n;
            _inUse -= n;
            granted = GrantLocked();
        }
        Notify(granted);
    }

    private void Settle(Account a, bool stillShort)
    {
        List<Account>? granted;
        lock (_gate)
        {
            if (a.Reserved == 0 && (stillShort || a.InLine is null)) return;
            _inUse -= a.Reserved;
            a.Reserved = 0;
            if (!stillShort) Leave(a);
            granted = GrantLocked();
        }
        Notify(granted);
    }

    private void Close(Account a)
    {
        List<Account>? granted;
        lock (_gate)
        {
            if (a.Closed) return;
            a.Closed = true;
            _inUse -= a.Held + a.Reserved;
            a.Held = a.Reserved = 0;
            Leave(a);
            granted = GrantLocked();
        }
        Notify(granted);
    }

    /// <summary>A token for a session parked for MX roll-up, only while nobody waits (a parked session would keep a
    /// waiting destination out: it is closed instead).</summary>
    public bool TryTakeSpare()
    {
        lock (_gate)
        {
            if (_waiting.Count > 0 || _inUse >= Limit) return false;
            _inUse++;
            return true;
        }
    }

    /// <summary>A parked session was taken (its taker holds its own token) or closed.</summary>
    public void ReturnSpare()
    {
        List<Account>? granted;
        lock (_gate)
        {
            _inUse--;
            granted = GrantLocked();
        }
        Notify(granted);
    }

    private void Leave(Account a)
    {
        if (a.InLine is null) return;
        _waiting.Remove(a.InLine);
        a.InLine = null;
    }

    // Free tokens go to the destinations in line, one each, in arrival order.
    private List<Account>? GrantLocked()
    {
        List<Account>? granted = null;
        while (_inUse < Limit && _waiting.First is { } first)
        {
            var a = first.Value;
            Leave(a);
            a.Reserved++;
            _inUse++;
            (granted ??= []).Add(a);
        }
        return granted;
    }

    private static void Notify(List<Account>? granted)
    {
        if (granted is null) return;
        foreach (var a in granted) a.Granted();
    }
}
