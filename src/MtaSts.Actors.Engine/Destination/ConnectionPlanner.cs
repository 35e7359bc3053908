using MtaSts.Actors.DestinationControls;
using MtaSts.Actors.DestinationControls.Throttling;
using MtaSts.Actors.Smtp.Replies;
using MtaSts.Actors.Engine.Delivery;
using MtaSts.Actors.Engine.Destination;

namespace MtaSts.Actors.Engine.Destination;

/// <summary>What the planner sees of the moment: the live profile and tuning, the time, whether the gateway is
/// draining (graceful stop), and whether the MTA-STS policy allows sending now — asked only when mail is due (the
/// actor then may ask the resolver, whose answer plans again); null = always ready. <paramref name="Suspended"/>: the
/// operator suspended the destination — no connection is opened, no job handed out, idle connections close.
/// <paramref name="Throttle"/>: the destination's reply-driven throttling rules (null: none).</summary>
/// <paramref name="UnreachableHold"/>: after an attempt found the destination unreachable, new mail waits this long
/// (the bounce profile's initial retry interval) for the next attempt instead of one attempt per arriving message.
public sealed record PlanContext(DestinationProfile Profile, EngineTuning Tuning, DateTimeOffset Now, bool Draining = false,
    Func<bool>? PolicyReady = null, bool Suspended = false, ThrottleRuleSet? Throttle = null, TimeSpan UnreachableHold = default)
{
    /// <summary>Connections a destination starts with (Postfix initial_destination_concurrency), within the profile.</summary>
    public int InitialConcurrency => Math.Min(Tuning.InitialConcurrency, Profile.MaxConcurrentConnections);
}

/// <summary>What the actor does for the planner (it holds the child actors, the timers and the journal).</summary>
public abstract record ConnectionEffect;
/// <summary>Start a connection child with this DCID.</summary>
public sealed record OpenConnection(long Dcid) : ConnectionEffect;
/// <summary>Hand a job to the connection (one delivery starts).</summary>
public sealed record SendJob(long Dcid, DeliveryJob Job) : ConnectionEffect;
/// <summary>QUIT the connection (its message limit, idle time, or a graceful stop); <paramref name="Park"/>: MX roll-up,
/// it is idle — the transport may keep it for other destinations served by the same MX.</summary>
public sealed record CloseConnection(long Dcid, bool Park = false) : ConnectionEffect;
/// <summary>Journal recipients counted against the recipient limit (already applied to the state).</summary>
public sealed record JournalCount(RecipientsCounted Counted) : ConnectionEffect;
/// <summary>A delivery handed out earlier is over (reported or released).</summary>
public sealed record JobEnded(long Dcid) : ConnectionEffect;
/// <summary>Plan again after this delay (next due time, next recipient-limit slot).</summary>
public sealed record WakeIn(TimeSpan Delay) : ConnectionEffect;
/// <summary>Look for idle connections to close after this delay.</summary>
public sealed record IdleCheckIn(TimeSpan Delay) : ConnectionEffect;
/// <summary>Write an operator log line (a throttle fired, expired, ramped or ended); <paramref name="Debug"/>: ramp steps.</summary>
public sealed record LogConnectionEvent(LogLine Line, bool Debug = false) : ConnectionEffect;

/// <summary>
/// The connections of one destination, without Akka: how many are opening and open, which job each carries, how many
/// messages each has sent, when each went idle, and the concurrency cap of slow start. Every method reads the
/// <see cref="DestinationState"/> queue and the <see cref="PlanContext"/> and answers with effects; handing out a job
/// marks its recipients in flight in the state (and, for a limited destination, counts them at once, so that the next
/// job sees the slot taken). Every connection holds a token of the node's <see cref="ConnectionBudget"/> (null: no
/// node-wide limit) from the moment it is planned until it is gone.
/// </summary>
public sealed class ConnectionPlanner(DestinationState state, Func<long> nextDcid, ConnectionBudget.Account? budget = null)
{
    private sealed class Conn
    {
        public bool Open;
        public bool Answered; // Ready or OpenFailed arrived
        public DeliveryJob? Job;
        public int Sent;
        public DateTimeOffset IdleSince;
    }

    private readonly Dictionary<long, Conn> _conns = new();
    private DestinationQueue Queue => state.Queue;
    /// <summary>The last plan wanted more connections than the node's budget gave (the destination waits in line).</summary>
    private bool _short;
    /// <summary>Unreachable at the last attempt: no new connection before this (Postfix's "dead destination").</summary>
    private DateTimeOffset? _heldUntil;
    public DateTimeOffset? HeldUntil => _heldUntil;

    public int Count => _conns.Count;
    public int Opening { get; private set; }
    /// <summary>Slow start: connections allowed now (grows by one per delivery while all are busy, up to the profile).</summary>
    public int Cap { get; private set; }
    public bool IsIdle => _conns.Count == 0 && Opening == 0;
    public bool Has(long dcid) => _conns.ContainsKey(dcid);

    public void Start(PlanContext c) => Cap = c.InitialConcurrency;

    private ThrottleState Throttle => state.Throttle;

    /// <summary>Connections opening or open and not closing.</summary>
    private int Live => _conns.Values.Count(x => x.Open || !x.Answered);

    /// <summary>Replies of a transaction or of a refused connection: the first that matches one of the destination's
    /// throttling rules lowers its limits (idle connections over the new limit close; busy ones close when they report).</summary>
    public IReadOnlyList<ConnectionEffect> Replied(IEnumerable<SmtpReply?> replies, PlanContext c)
    {
        var fx = new List<ConnectionEffect>();
        if (c.Throttle is not { Rules.Count: > 0 } rules) return fx;
        foreach (var reply in replies) // usually one reply per recipient, mostly 250s: no rule looks past the code
        {
            if (reply is null || reply.Code < 400 || rules.Match(reply.Code, reply.Enhanced?.ToString(), reply.Text) is not { } rule) continue;
            if (Throttle.Decide(rule, reply.DiagnosticText, Live, c.Profile.MaxConcurrentConnections, c.Now) is { } change)
            {
                Throttle.Apply(change);
                fx.Add(Logged(change));
                foreach (var (dcid, conn) in _conns)
                    if (conn.Open && conn.Job is null && Live > Throttle.ConnectionLimit)
                    {
                        conn.Open = false;
                        fx.Add(new CloseConnection(dcid));
                    }
            }
            break; // one reply decides (the first matching rule, even action = none)
        }
        return fx;
    }

    private LogConnectionEvent Logged(ThrottleTransition t)
    {
        var level = t.After ?? t.Before!;
        return new LogConnectionEvent(new LogLine(t.Event, t.Text(state.Domain.Name),
            [("domain", state.Domain.Name), ("rule", level.Rule), ("connections", t.After?.Connections), ("rate", t.After?.Rate)]),
            t.Kind == ThrottleChangeKind.Ramped);
    }

    /// <summary>Periodic or post-reload resume: back to at least the initial concurrency, within the profile.</summary>
    public IReadOnlyList<ConnectionEffect> Resume(PlanContext c)
    {
        Cap = Math.Min(Math.Max(Cap, c.InitialConcurrency), c.Profile.MaxConcurrentConnections);
        _heldUntil = null;
        return Pump(c);
    }

    /// <summary>Operator "deliver now": every idle recipient is due, concurrency back to at least the initial one.</summary>
    public IReadOnlyList<ConnectionEffect> DeliverNow(PlanContext c)
    {
        Queue.MakeAllDue(c.Now);
        Cap = Math.Max(Cap, c.InitialConcurrency);
        _heldUntil = null;
        return Pump(c);
    }

    /// <summary>Hands due mail to idle connections and opens new ones up to the limit; schedules the next wake.</summary>
    public IReadOnlyList<ConnectionEffect> Pump(PlanContext c)
    {
        var fx = new List<ConnectionEffect>();
        Pump(c, fx);
        return fx;
    }

    /// <summary>Plans, then settles with the node's budget: reserved tokens this plan did not use go on to other
    /// destinations, and a destination no longer short leaves the line.</summary>
    private void Pump(PlanContext c, List<ConnectionEffect> fx)
    {
        _short = false;
        Plan(c, fx);
        budget?.Settle(_short);
    }

    private void Plan(PlanContext c, List<ConnectionEffect> fx)
    {
        if (c.Draining) return; // graceful stop: no new connections or transactions
        foreach (var change in Throttle.Decide(c.Now))
        {
            Throttle.Apply(change);
            fx.Add(Logged(change));
        }
        if (Throttle.Level is { } level) fx.Add(new WakeIn(Delay(level.NextChange - c.Now)));
        if (c.Suspended || Throttle.ConnectionLimit == 0)
        {
            // Operator (or throttle) suspension: nothing new; connections without a job close (one with a job closes when it reports).
            foreach (var (dcid, conn) in _conns)
                if (conn.Open && conn.Job is null)
                {
                    conn.Open = false;
                    fx.Add(new CloseConnection(dcid));
                }
            return;
        }
        if (!Queue.HasDue(c.Now))
        {
            Wake(c, fx);
            return;
        }
        if (_heldUntil is { } held && c.Now < held && _conns.Count == 0)
        {
            // The last attempt found the destination unreachable: mail that arrived since waits for the next attempt
            // rather than costing a connection attempt (and a deferral) each (Postfix: a dead destination).
            fx.Add(new WakeIn(Delay(held - c.Now)));
            return;
        }
        if (c.PolicyReady is { } ready && !ready()) return; // the policy answer plans again
        if (state.RateLimiter(c.Profile.RecipientLimit) is { } limiter && limiter.Query(c.Now) is { Available: <= 0 } answer)
        {
            // Recipient limit reached: nothing goes until a slot opens (a 0 limit holds the mail; the sweep re-checks).
            if (answer.NextSlotAt is { } slot) fx.Add(new WakeIn(slot - c.Now + TimeSpan.FromMilliseconds(5)));
            return;
        }
        if (Throttle.RateWait(c.Now) is { } pace)
        {
            fx.Add(new WakeIn(Delay(pace))); // throttled rate: the next transaction waits its turn
            return;
        }
        foreach (var (dcid, conn) in _conns)
            if (conn.Open && conn.Job is null && !Feed(dcid, conn, c, fx)) break;

        var cap = Math.Min(Math.Min(Cap, c.Profile.MaxConcurrentConnections), Throttle.ConnectionLimit ?? int.MaxValue);
        if (_conns.Count < cap && Queue.HasDue(c.Now))
        {
            // Open no more connections than there are due messages not yet covered by connections being opened, and
            // no more than the node's budget gives now (short: the budget tells this destination when a token frees).
            var wanted = Math.Min(cap - _conns.Count, CountDue(c.Now, cap) - Opening);
            var granted = budget?.Take(wanted) ?? wanted;
            _short = granted < wanted;
            for (var i = 0; i < granted; i++)
            {
                var dcid = nextDcid();
                _conns[dcid] = new Conn();
                Opening++;
                fx.Add(new OpenConnection(dcid));
            }
        }
        Wake(c, fx);
    }

    private static TimeSpan Delay(TimeSpan d) => (d < TimeSpan.Zero ? TimeSpan.Zero : d) + TimeSpan.FromMilliseconds(5);

    /// <summary>The next wake at the earliest due time (not while in-flight mail will pump anyway).</summary>
    public IReadOnlyList<ConnectionEffect> Wake(PlanContext c)
    {
        var fx = new List<ConnectionEffect>();
        Wake(c, fx);
        return fx;
    }

    private void Wake(PlanContext c, List<ConnectionEffect> fx)
    {
        if (Queue.NextDue is not { } due) return;
        var delay = due - c.Now;
        if (delay > TimeSpan.Zero) fx.Add(new WakeIn(delay + TimeSpan.FromMilliseconds(5)));
        // Due now with nothing in flight: plan again soon — unless connections are opening (their answer plans again)
        // or the node's budget has this destination in line (a freed token wakes it): no polling while they wait.
        else if (Queue.InFlightCount == 0 && Opening == 0 && !_short) fx.Add(new WakeIn(TimeSpan.FromMilliseconds(5)));
    }

    // The queue's index is ordered by due time; counting up to `limit` is O(limit).
    private int CountDue(DateTimeOffset now, int limit)
    {
        var n = 0;
        foreach (var due in Queue.DueTimes())
        {
            if (due > now || n >= limit) break;
            n++;
        }
        return n;
    }

    /// <summary>Gives the connection its next message, or closes it at its message limit. False when nothing is due.</summary>
    /// <param name="siteWanted">Other destinations wait at this connection's MX address (see <see cref="Done"/>).</param>
    private bool Feed(long dcid, Conn conn, PlanContext c, List<ConnectionEffect> fx, bool siteWanted = false)
    {
        // Also a connection over a throttle's lowered limit (it closes between transactions).
        if (conn.Sent >= c.Profile.MaxMessagesPerConnection || c.Draining || c.Suspended || Live > (Throttle.ConnectionLimit ?? int.MaxValue))
        {
            conn.Open = false;
            fx.Add(new CloseConnection(dcid));
            return true;
        }
        if (Throttle.RateWait(c.Now) is { } pace)
        {
            fx.Add(new WakeIn(Delay(pace)));
            return Idle(dcid, conn, c, fx, siteWanted);
        }
        // Profile max-recipients-per-transaction: a message with more recipients here goes in several transactions.
        var want = c.Profile.MaxRecipientsPerTransaction;
        var limiter = state.RateLimiter(c.Profile.RecipientLimit);
        if (limiter?.Available(c.Now) is { } available)
        {
            // At the limit Pump schedules the wake for the next slot; meanwhile the connection idles.
            if (available <= 0) return Idle(dcid, conn, c, fx, siteWanted);
            want = (int)Math.Min(want, available);
        }
        if (state.TakeDue(c.Now, want) is not { } next) return Idle(dcid, conn, c, fx, siteWanted);
        var (msg, rcpts) = next;
        if (limiter is not null)
        {
            // Counted when handed out (a refused recipient still used a slot, as the vendor counts RCPTs), so applied
            // before the write: the next Feed must see the slot taken. A lost write undercounts one job after a crash.
            var counted = new RecipientsCounted(rcpts.Count, c.Now);
            state.Apply(counted);
            fx.Add(new JournalCount(counted));
        }
        conn.Job = new DeliveryJob(msg, rcpts.Select(r => r.Ref).ToArray());
        conn.Sent++;
        Throttle.NoteSent(c.Now);
        fx.Add(new SendJob(dcid, conn.Job));
        return true;
    }

    private bool Idle(long dcid, Conn conn, PlanContext c, List<ConnectionEffect> fx, bool siteWanted)
    {
        if (c.Tuning.MxRollup && (Queue.InFlightCount == 0 || c.Profile.LimitType == LimitType.PerMxIp || siteWanted))
        {
            // MX roll-up: a destination with nothing in flight parks its idle connection in the node's pool, where this
            // or another destination served by the same MX takes it (the transport bounds its idle time there). A busy
            // destination keeps it for its own next message (measured: parking between its messages costs CPU) —
            // except under limit-type = mx-ip, where an idle connection holds a place other destinations wait for, and
            // when other destinations wait at its MX (the transport hands it to them instead of their opening one).
            conn.Open = false;
            fx.Add(new CloseConnection(dcid, Park: true));
            return false;
        }
        if (budget?.Contended == true)
        {
            // Other destinations wait for a connection under the node's limit: this idle one makes room now.
            conn.Open = false;
            fx.Add(new CloseConnection(dcid));
            return false;
        }
        conn.IdleSince = c.Now;
        fx.Add(new IdleCheckIn(c.Tuning.ConnectionIdleTime));
        return false;
    }

    /// <summary>Closes connections idle for the idle time; checks the others again later.</summary>
    public IReadOnlyList<ConnectionEffect> CloseIdle(PlanContext c)
    {
        var fx = new List<ConnectionEffect>();
        foreach (var (dcid, conn) in _conns)
        {
            if (!conn.Open || conn.Job is not null) continue;
            if (c.Now - conn.IdleSince >= c.Tuning.ConnectionIdleTime - TimeSpan.FromMilliseconds(50))
            {
                conn.Open = false;
                fx.Add(new CloseConnection(dcid));
            }
            else fx.Add(new IdleCheckIn(c.Tuning.ConnectionIdleTime));
        }
        return fx;
    }

    /// <summary>The connection is up: feed it, then plan. <paramref name="sent"/>: messages it already carried (a
    /// rolled-up connection), counted against the profile's max-messages-per-connection.</summary>
    public IReadOnlyList<ConnectionEffect> Ready(long dcid, PlanContext c, int sent = 0)
    {
        var fx = new List<ConnectionEffect>();
        if (!_conns.TryGetValue(dcid, out var conn)) return fx;
        Opening--;
        _heldUntil = null; // reachable again
        conn.Open = conn.Answered = true;
        conn.Sent = sent;
        Feed(dcid, conn, c, fx);
        Pump(c, fx);
        return fx;
    }

    /// <summary>The connection could not be opened. True when nothing gets through (no connection is up or still opening,
    /// or the failure is not transient): every due recipient then gets the failure. With others up or opening, a transient
    /// refusal only lowers the concurrency (the destination refuses more parallel sessions, or one 421 at the banner of a
    /// busy receiver) and the mail stays due — like Postfix, which declares a destination dead only when a whole cohort
    /// of attempts failed.</summary>
    public bool OpenFailed(long dcid, bool transient, PlanContext c)
    {
        if (_conns.Remove(dcid))
        {
            Opening--;
            budget?.Release();
        }
        if (transient && Live > 0)
        {
            Cap = Math.Max(1, _conns.Count);
            return false;
        }
        Cap = Math.Max(1, Math.Min(c.InitialConcurrency, c.Profile.MaxConcurrentConnections / 4));
        if (transient && c.UnreachableHold > TimeSpan.Zero) _heldUntil = c.Now + c.UnreachableHold;
        return true;
    }

    /// <summary>A transaction was reported (its outcomes already decided): the job ends, slow start may add a
    /// connection, the connection gets its next job if it is still usable, then plan.</summary>
    /// <param name="siteWanted">MX roll-up: other destinations wait for a connection at this one's MX address; if this
    /// destination has nothing due for it, it is parked (handed to them) even while its other connections are busy.</param>
    public IReadOnlyList<ConnectionEffect> Done(long dcid, bool delivered, bool usable, PlanContext c, bool siteWanted = false)
    {
        var fx = new List<ConnectionEffect>();
        if (!_conns.TryGetValue(dcid, out var conn)) return fx;
        if (conn.Job is not null) fx.Add(new JobEnded(dcid));
        conn.Job = null;
        // Slow start (Postfix-style positive feedback): a delivery while every allowed connection is in use earns
        // one more connection, up to the profile's limit, so a backlog ramps up in rounds.
        if (delivered && _conns.Count >= Cap) Cap = Math.Min(c.Profile.MaxConcurrentConnections, Cap + 1);
        if (usable && conn.Open) Feed(dcid, conn, c, fx, siteWanted);
        else conn.Open = false;
        Pump(c, fx);
        return fx;
    }

    /// <summary>The connection stopped. A job it still held was not confirmed: its recipients are retried (maybe a
    /// duplicate, never a loss).</summary>
    public IReadOnlyList<ConnectionEffect> Stopped(long dcid, PlanContext c)
    {
        var fx = new List<ConnectionEffect>();
        if (!_conns.Remove(dcid, out var conn)) return fx;
        budget?.Release();
        // Stopped while still opening (neither Ready nor OpenFailed arrived, e.g. it crashed): free its opening slot.
        if (!conn.Answered) Opening = Math.Max(0, Opening - 1);
        Release(dcid, conn, fx);
        Pump(c, fx);
        return fx;
    }

    /// <summary>The destination stops: every job still out is released, and every budget token (its connections stop with it).</summary>
    public IReadOnlyList<ConnectionEffect> StopAll()
    {
        var fx = new List<ConnectionEffect>();
        foreach (var (dcid, conn) in _conns) Release(dcid, conn, fx);
        budget?.Close();
        return fx;
    }

    private void Release(long dcid, Conn conn, List<ConnectionEffect> fx)
    {
        if (conn.Job is not { } job) return;
        state.Apply(new RecipientsReleased(job.Message.Mid, job.Recipients.Select(r => r.Rid).ToArray()));
        conn.Job = null;
        fx.Add(new JobEnded(dcid));
    }
}
