using MtaSts.Actors.DestinationControls;
using MtaSts.Actors.Engine.Delivery;
using MtaSts.Actors.Engine.Destination;

namespace MtaSts.Actors.Engine.Tests.Destination;

/// <summary>Connection planning is a table: (queue, connections, profile, now, event) → effects. No actor, no clock.</summary>
public sealed class ConnectionPlannerTests
{
    private static readonly DateTimeOffset T0 = new(2026, 11, 23, 10, 0, 0, TimeSpan.Zero);
    private static readonly EngineTuning Tuning = new() { InitialConcurrency = 3, ConnectionIdleTime = TimeSpan.FromSeconds(2) };

    private sealed class Rig
    {
        private long _dcid;
        public DestinationState State { get; } = new(Dom("b.example"));
        public ConnectionPlanner Plan { get; }
        public DestinationProfile Profile { get; set; } = new() { MaxConcurrentConnections = 10, MaxMessagesPerConnection = 2 };
        public DateTimeOffset Now { get; set; } = T0;
        public bool Draining { get; set; }
        public bool PolicyReady { get; set; } = true;
        public EngineTuning Tune { get; set; } = Tuning;

        public Rig(int messages, int recipients = 1)
        {
            Plan = new ConnectionPlanner(State, () => ++_dcid);
            for (var m = 1; m <= messages; m++)
                State.Queue.Enqueue(new MessageRef(m, "s@a.example", T0, 100),
                    Enumerable.Range(0, recipients).Select(r => new RecipientRef(r, $"u{m}-{r}@b.example")).ToArray(), T0);
            Plan.Start(Ctx);
        }

        public PlanContext Ctx => new(Profile, Tune, Now, Draining, () => PolicyReady);
    }

    private static long[] Opened(IEnumerable<ConnectionEffect> fx) => fx.OfType<OpenConnection>().Select(o => o.Dcid).ToArray();
    private static SendJob[] Sent(IEnumerable<ConnectionEffect> fx) => fx.OfType<SendJob>().ToArray();

    [Theory]
    // due messages, initial concurrency (tuning 3), profile max, already opening → connections opened
    [InlineData(5, 10, 3)]   // slow start: the initial concurrency
    [InlineData(2, 10, 2)]   // never more than due messages
    [InlineData(5, 1, 1)]    // never more than the profile
    [InlineData(0, 10, 0)]   // nothing due
    public void Opens_connections_up_to_the_due_messages_the_slow_start_cap_and_the_profile(int messages, int max, int opened)
    {
        var rig = new Rig(messages) { Profile = new DestinationProfile { MaxConcurrentConnections = max } };
        rig.Plan.Start(rig.Ctx);
        Assert.Equal(opened, Opened(rig.Plan.Pump(rig.Ctx)).Length);
        Assert.Equal(opened, rig.Plan.Opening);
        // Pumping again while they are opening opens nothing more: the due messages are covered.
        Assert.Empty(Opened(rig.Plan.Pump(rig.Ctx)));
    }

    [Fact]
    public void A_ready_connection_gets_the_oldest_due_message_within_max_recipients_per_transaction()
    {
        var rig = new Rig(2, recipients: 5) { Profile = new DestinationProfile { MaxRecipientsPerTransaction = 2 } };
        var dcid = Opened(rig.Plan.Pump(rig.Ctx))[0];
        var job = Assert.Single(Sent(rig.Plan.Ready(dcid, rig.Ctx)));
        Assert.Equal(dcid, job.Dcid);
        Assert.Equal(1, job.Job.Message.Mid);
        Assert.Equal([0, 1], job.Job.Recipients.Select(r => r.Rid));
        Assert.Equal(2, rig.State.Queue.InFlightCount);
    }

    [Fact]
    public void A_connection_is_closed_at_its_message_limit()
    {
        var rig = new Rig(3) { Profile = new DestinationProfile { MaxConcurrentConnections = 1, MaxMessagesPerConnection = 2 } };
        var dcid = Opened(rig.Plan.Pump(rig.Ctx))[0];
        Assert.Single(Sent(rig.Plan.Ready(dcid, rig.Ctx)));
        Assert.Single(Sent(rig.Plan.Done(dcid, delivered: true, usable: true, rig.Ctx)));
        var fx = rig.Plan.Done(dcid, delivered: true, usable: true, rig.Ctx);
        Assert.Contains(new CloseConnection(dcid), fx);
        Assert.Empty(Sent(fx));
        Assert.Contains(new JobEnded(dcid), fx);
    }

    [Theory]
    // open connections busy, delivered?, cap before → cap after (profile max 4)
    [InlineData(3, true, 3, 4)]   // every allowed connection busy and a delivery: one more
    [InlineData(3, false, 3, 3)]  // no delivery: no growth
    public void Slow_start_adds_a_connection_per_delivery_while_all_are_busy(int busy, bool delivered, int before, int after)
    {
        var rig = new Rig(10) { Profile = new DestinationProfile { MaxConcurrentConnections = 4, MaxMessagesPerConnection = 50 } };
        var dcids = Opened(rig.Plan.Pump(rig.Ctx));
        Assert.Equal(busy, dcids.Length);
        foreach (var d in dcids) rig.Plan.Ready(d, rig.Ctx);
        Assert.Equal(before, rig.Plan.Cap);
        rig.Plan.Done(dcids[0], delivered, usable: true, rig.Ctx);
        Assert.Equal(after, rig.Plan.Cap);
        rig.Plan.Done(dcids[1], delivered, usable: true, rig.Ctx);
        Assert.Equal(Math.Min(4, after + (delivered ? 1 : 0)), rig.Plan.Cap);
    }

    [Theory]
    // the other two connections (open, still opening, both failed), transient? → destination unreachable (every due
    // recipient fails), cap after (profile 16, initial 3)
    [InlineData("open", true, false, 2)]    // refuses more parallel sessions: concurrency lowered to the connections left, mail stays due
    [InlineData("opening", true, false, 2)] // one refusal (e.g. a 421 at the banner) is not the destination's answer while others may get in
    [InlineData("failed", true, true, 3)]   // nothing gets through: min(initial, max / 4)
    [InlineData("open", false, true, 3)]    // a permanent failure is the destination's answer even with others up
    public void A_failed_open_lowers_concurrency_or_makes_the_destination_unreachable(string others, bool transient, bool unreachable, int cap)
    {
        var rig = new Rig(5) { Profile = new DestinationProfile { MaxConcurrentConnections = 16 } };
        var dcids = Opened(rig.Plan.Pump(rig.Ctx));
        Assert.Equal(3, dcids.Count());
        if (others == "open") rig.Plan.Ready(dcids[0], rig.Ctx);
        if (others == "failed")
        {
            Assert.False(rig.Plan.OpenFailed(dcids[0], transient: true, rig.Ctx));
            Assert.False(rig.Plan.OpenFailed(dcids[1], transient: true, rig.Ctx));
        }
        Assert.Equal(unreachable, rig.Plan.OpenFailed(dcids[2], transient, rig.Ctx));
        Assert.Equal(others == "failed" ? 0 : 2, rig.Plan.Count);
        Assert.Equal(cap, rig.Plan.Cap);
    }

    [Fact]
    public void After_an_unreachable_attempt_new_mail_waits_for_the_next_attempt_instead_of_a_connection_each()
    {
        var rig = new Rig(1);
        var hold = TimeSpan.FromSeconds(60);
        PlanContext Ctx() => rig.Ctx with { UnreachableHold = hold };
        var first = Opened(rig.Plan.Pump(Ctx()));
        Assert.True(rig.Plan.OpenFailed(first[0], transient: true, Ctx())); // nothing got through
        Assert.Equal(T0 + hold, rig.Plan.HeldUntil);

        // New mail 10 s later (the deferred message is not due): no connection, a wake at the end of the hold.
        rig.Now = T0 + TimeSpan.FromSeconds(10);
        rig.State.Queue.Enqueue(new MessageRef(99, "s@a.example", rig.Now, 100), [new RecipientRef(0, "late@b.example")], rig.Now);
        var fx = rig.Plan.Pump(Ctx());
        Assert.Empty(Opened(fx));
        Assert.Contains(fx, e => e is WakeIn w && w.Delay > TimeSpan.FromSeconds(49) && w.Delay <= TimeSpan.FromSeconds(51));

        // At the end of the hold the next attempt goes; a connection that comes up ends the hold.
        rig.Now = T0 + hold;
        var next = Opened(rig.Plan.Pump(Ctx()));
        Assert.NotEmpty(next);
        rig.Plan.Ready(next[0], Ctx());
        Assert.Null(rig.Plan.HeldUntil);
    }

    [Fact]
    public void Deliver_now_and_a_permanent_failure_do_not_hold_new_mail()
    {
        var rig = new Rig(1);
        PlanContext Ctx() => rig.Ctx with { UnreachableHold = TimeSpan.FromSeconds(60) };
        var first = Opened(rig.Plan.Pump(Ctx()));
        rig.Plan.OpenFailed(first[0], transient: true, Ctx());
        Assert.NotEmpty(Opened(rig.Plan.DeliverNow(Ctx()))); // the operator asks for an attempt now
        Assert.Null(rig.Plan.HeldUntil);

        var other = new Rig(1);
        var dcid = Opened(other.Plan.Pump(other.Ctx with { UnreachableHold = TimeSpan.FromSeconds(60) }))[0];
        other.Plan.OpenFailed(dcid, transient: false, other.Ctx with { UnreachableHold = TimeSpan.FromSeconds(60) });
        Assert.Null(other.Plan.HeldUntil); // a permanent answer bounces the mail; new mail gets its own answer
    }

    [Fact]
    public void An_idle_connection_is_closed_after_the_idle_time()
    {
        var rig = new Rig(1);
        var dcid = Opened(rig.Plan.Pump(rig.Ctx))[0];
        rig.Plan.Ready(dcid, rig.Ctx);
        var fx = rig.Plan.Done(dcid, delivered: true, usable: true, rig.Ctx);
        Assert.Contains(new IdleCheckIn(Tuning.ConnectionIdleTime), fx); // nothing due: it idles
        rig.Now = T0 + TimeSpan.FromSeconds(1);
        Assert.Equal([new IdleCheckIn(Tuning.ConnectionIdleTime)], rig.Plan.CloseIdle(rig.Ctx)); // not yet
        rig.Now = T0 + Tuning.ConnectionIdleTime;
        Assert.Equal([new CloseConnection(dcid)], rig.Plan.CloseIdle(rig.Ctx));
    }

    /// <summary>A reported job: its recipients leave the queue (what the destination applies before the planner's Done).</summary>
    private static IReadOnlyList<ConnectionEffect> Finish(Rig rig, SendJob job)
    {
        rig.State.Apply(new RecipientsCompleted(job.Job.Message.Mid, job.Job.Recipients.Select(r => r.Rid).ToArray()));
        return rig.Plan.Done(job.Dcid, delivered: true, usable: true, rig.Ctx);
    }

    [Fact]
    public void With_MX_roll_up_an_idle_connection_is_parked_once_nothing_is_in_flight_and_one_at_its_message_limit_is_closed()
    {
        var rig = new Rig(2) { Tune = Tuning with { MxRollup = true } };
        var dcids = Opened(rig.Plan.Pump(rig.Ctx));
        var first = Assert.Single(Sent(rig.Plan.Ready(dcids[0], rig.Ctx)));
        var second = Assert.Single(Sent(rig.Plan.Ready(dcids[1], rig.Ctx)));
        // The other message is still in flight: the destination keeps its idle connection for its own next message.
        var fx = Finish(rig, first);
        Assert.Contains(new IdleCheckIn(Tuning.ConnectionIdleTime), fx);
        Assert.DoesNotContain(fx, e => e is CloseConnection);
        // Nothing in flight any more: the node's pool keeps it for this or another domain served by the same MX.
        fx = Finish(rig, second);
        Assert.Contains(new CloseConnection(dcids[1], Park: true), fx);
        Assert.DoesNotContain(fx, e => e is IdleCheckIn);

        // limit-type = mx-ip: an idle connection holds a place that other destinations wait for: parked at once.
        var shared = new Rig(2) { Tune = Tuning with { MxRollup = true }, Profile = new DestinationProfile { LimitType = LimitType.PerMxIp } };
        var two = Opened(shared.Plan.Pump(shared.Ctx));
        var job = Assert.Single(Sent(shared.Plan.Ready(two[0], shared.Ctx)));
        shared.Plan.Ready(two[1], shared.Ctx);
        Assert.Contains(new CloseConnection(two[0], Park: true), Finish(shared, job));

        var full = new Rig(2) { Tune = Tuning with { MxRollup = true }, Profile = new DestinationProfile { MaxConcurrentConnections = 1, MaxMessagesPerConnection = 2 } };
        var d2 = Opened(full.Plan.Pump(full.Ctx))[0];
        full.Plan.Ready(d2, full.Ctx);
        full.Plan.Done(d2, delivered: true, usable: true, full.Ctx);
        Assert.Contains(new CloseConnection(d2), full.Plan.Done(d2, delivered: true, usable: true, full.Ctx)); // used up: QUIT
    }

    [Fact]
    public void With_MX_roll_up_a_busy_destination_hands_its_idle_connection_over_when_other_destinations_wait_at_its_MX()
    {
        var rig = new Rig(2) { Tune = Tuning with { MxRollup = true } };
        var dcids = Opened(rig.Plan.Pump(rig.Ctx));
        var first = Assert.Single(Sent(rig.Plan.Ready(dcids[0], rig.Ctx)));
        Assert.Single(Sent(rig.Plan.Ready(dcids[1], rig.Ctx)));
        // The other message is still in flight, but other destinations wait for a connection at this MX: parked for them.
        rig.State.Apply(new RecipientsCompleted(first.Job.Message.Mid, first.Job.Recipients.Select(r => r.Rid).ToArray()));
        var fx = rig.Plan.Done(first.Dcid, delivered: true, usable: true, rig.Ctx, siteWanted: true);
        Assert.Contains(new CloseConnection(dcids[0], Park: true), fx);
        Assert.DoesNotContain(fx, e => e is IdleCheckIn);

        // Without roll-up the signal changes nothing: kept for the idle time.
        var off = new Rig(2);
        var two = Opened(off.Plan.Pump(off.Ctx));
        var job = Assert.Single(Sent(off.Plan.Ready(two[0], off.Ctx)));
        off.Plan.Ready(two[1], off.Ctx);
        off.State.Apply(new RecipientsCompleted(job.Job.Message.Mid, job.Job.Recipients.Select(r => r.Rid).ToArray()));
        fx = off.Plan.Done(job.Dcid, delivered: true, usable: true, off.Ctx, siteWanted: true);
        Assert.Contains(new IdleCheckIn(Tuning.ConnectionIdleTime), fx);
        Assert.DoesNotContain(fx, e => e is CloseConnection);
    }

    [Fact]
    public void A_rolled_up_connection_counts_the_messages_it_already_carried_against_the_message_limit()
    {
        var rig = new Rig(3) { Profile = new DestinationProfile { MaxConcurrentConnections = 1, MaxMessagesPerConnection = 3 } };
        var dcid = Opened(rig.Plan.Pump(rig.Ctx))[0];
        Assert.Single(Sent(rig.Plan.Ready(dcid, rig.Ctx, sent: 2))); // two for another domain: one left
        var fx = rig.Plan.Done(dcid, delivered: true, usable: true, rig.Ctx);
        Assert.Contains(new CloseConnection(dcid), fx);
        Assert.Empty(Sent(fx));
    }

    [Fact]
    public void A_connection_that_stops_with_a_job_releases_its_recipients_for_retry()
    {
        var rig = new Rig(1, recipients: 2);
        var dcid = Opened(rig.Plan.Pump(rig.Ctx))[0];
        rig.Plan.Ready(dcid, rig.Ctx);
        Assert.Equal(2, rig.State.Queue.InFlightCount);
        var fx = rig.Plan.Stopped(dcid, rig.Ctx);
        Assert.Contains(new JobEnded(dcid), fx);
        Assert.Equal(0, rig.State.Queue.InFlightCount);
        Assert.Single(Opened(fx)); // due again: a new connection
        Assert.Equal(1, rig.Plan.Count);
    }

    [Fact]
    public void A_connection_that_stops_while_opening_frees_its_opening_slot()
    {
        var rig = new Rig(1);
        var dcid = Opened(rig.Plan.Pump(rig.Ctx))[0];
        rig.PolicyReady = false; // keep the re-plan from opening again
        rig.Plan.Stopped(dcid, rig.Ctx);
        Assert.Equal(0, rig.Plan.Opening);
        Assert.True(rig.Plan.IsIdle);
    }

    [Fact]
    public void Draining_opens_nothing_and_closes_a_connection_when_its_transaction_ends()
    {
        var rig = new Rig(3);
        var dcid = Opened(rig.Plan.Pump(rig.Ctx))[0];
        rig.Plan.Ready(dcid, rig.Ctx);
        rig.Draining = true;
        Assert.Empty(rig.Plan.Pump(rig.Ctx));
        var fx = rig.Plan.Done(dcid, delivered: true, usable: true, rig.Ctx);
        Assert.Equal([new JobEnded(dcid), new CloseConnection(dcid)], fx);
    }

    [Fact]
    public void Without_a_policy_answer_nothing_is_opened_and_the_answer_plans_again()
    {
        var rig = new Rig(2) { PolicyReady = false };
        Assert.Empty(rig.Plan.Pump(rig.Ctx));
        rig.PolicyReady = true;
        Assert.Equal(2, Opened(rig.Plan.Pump(rig.Ctx)).Length);
    }

    [Fact]
    public void The_recipient_limit_caps_each_job_counts_it_and_waits_for_the_next_slot()
    {
        var rig = new Rig(2, recipients: 3) { Profile = new DestinationProfile { RecipientLimit = new RecipientLimit(4, 1) } };
        var dcids = Opened(rig.Plan.Pump(rig.Ctx));
        var first = rig.Plan.Ready(dcids[0], rig.Ctx);
        Assert.Equal(3, Assert.Single(Sent(first)).Job.Recipients.Count);
        Assert.Contains(new JournalCount(new RecipientsCounted(3, T0)), first);
        var second = rig.Plan.Ready(dcids[1], rig.Ctx);
        Assert.Single(Assert.Single(Sent(second)).Job.Recipients); // 1 slot left of 4
        // Used up: nothing more goes, a wake at the next slot instead.
        var fx = rig.Plan.Pump(rig.Ctx);
        Assert.Empty(Sent(fx));
        Assert.Empty(Opened(fx));
        var wake = Assert.IsType<WakeIn>(Assert.Single(fx));
        Assert.InRange(wake.Delay, TimeSpan.FromSeconds(1), TimeSpan.FromMinutes(2)); // within the window (bucket granularity)
    }

    [Fact]
    public void Mail_due_later_schedules_a_wake_at_its_due_time()
    {
        var rig = new Rig(1);
        rig.State.Apply(new RecipientsDeferred(1, [0], 1, T0 + TimeSpan.FromMinutes(5), "4.0.0 - later"));
        Assert.Equal([new WakeIn(TimeSpan.FromMinutes(5) + TimeSpan.FromMilliseconds(5))], rig.Plan.Pump(rig.Ctx));
    }

    [Fact]
    public void Deliver_now_makes_deferred_mail_due_and_opens_for_it()
    {
        var rig = new Rig(1);
        rig.State.Apply(new RecipientsDeferred(1, [0], 1, T0 + TimeSpan.FromHours(1), "4.0.0 - later"));
        Assert.Single(Opened(rig.Plan.DeliverNow(rig.Ctx)));
    }
}
