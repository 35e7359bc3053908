using MtaSts.Actors.DestinationControls;
using MtaSts.Actors.Engine.Delivery;
using MtaSts.Actors.Engine.Destination;

namespace MtaSts.Actors.Engine.Tests.Delivery;

/// <summary>The node-wide outbound connection budget: alone, and under the planners of many destinations.</summary>
public sealed class ConnectionBudgetTests
{
    private static readonly DateTimeOffset T0 = new(2026, 12, 1, 10, 0, 0, TimeSpan.Zero);

    [Fact]
    public void Tokens_are_given_up_to_the_limit_and_a_destination_short_of_them_gets_in_line()
    {
        var budget = new ConnectionBudget(3);
        var a = budget.Open(() => { });
        var b = budget.Open(() => { });
        Assert.Equal(2, a.Take(2));
        Assert.Equal(1, b.Take(4));
        Assert.True(b.IsWaiting);
        Assert.Equal(3, budget.InUse);
        Assert.Equal(0, a.Take(1)); // full: a gets in line behind b
        Assert.Equal(2, budget.Waiting);
    }

    [Fact]
    public void A_freed_token_is_reserved_for_the_first_in_line_and_it_is_told()
    {
        var budget = new ConnectionBudget(2);
        var told = new List<string>();
        var a = budget.Open(() => told.Add("a"));
        var b = budget.Open(() => told.Add("b"));
        var c = budget.Open(() => told.Add("c"));
        Assert.Equal(2, a.Take(2));
        Assert.Equal(0, b.Take(3));
        Assert.Equal(0, c.Take(1));

        a.Release();
        Assert.Equal(["b"], told);
        Assert.False(b.IsWaiting); // one token per turn
        Assert.Equal(0, c.Take(1)); // a reserved token is b's, even if c asks first
        Assert.Equal(2, budget.InUse);
        Assert.Equal(1, b.Take(3)); // b takes its reserved token and, still short, goes to the back of the line
        Assert.True(b.IsWaiting);

        a.Release();
        Assert.Equal(["b", "c"], told); // round robin: c was in line before b came back
    }

    [Fact]
    public void A_reserved_token_not_used_goes_on_to_the_next_in_line()
    {
        var budget = new ConnectionBudget(1);
        var told = new List<string>();
        var a = budget.Open(() => told.Add("a"));
        var b = budget.Open(() => told.Add("b"));
        var c = budget.Open(() => told.Add("c"));
        Assert.Equal(1, a.Take(1));
        b.Take(1);
        c.Take(1);
        a.Release();
        Assert.Equal(["b"], told);
        b.Settle(stillShort: false); // b's mail went meanwhile (or it was suspended): the token is c's
        Assert.Equal(["b", "c"], told);
        Assert.Equal(1, c.Take(1));
        Assert.Equal(1, budget.InUse);
    }

    [Fact]
    public void A_destination_that_stops_gives_back_every_token_and_leaves_the_line()
    {
        var budget = new ConnectionBudget(2);
        var told = new List<string>();
        var a = budget.Open(() => told.Add("a"));
        var b = budget.Open(() => told.Add("b"));
        var c = budget.Open(() => told.Add("c"));
        a.Take(2);
        b.Take(1);
        c.Take(1);
        b.Close(); // b stops while in line: never granted
        a.Close();
        Assert.Equal(["c"], told);
        Assert.Equal(1, budget.InUse); // c's reserved token
        Assert.Equal(0, b.Take(1)); // a closed account gets nothing
        c.Close();
        Assert.Equal(0, budget.InUse);
    }

    [Fact]
    public void A_parked_session_takes_a_spare_token_only_while_nobody_waits()
    {
        var budget = new ConnectionBudget(2);
        var a = budget.Open(() => { });
        Assert.Equal(1, a.Take(1));
        Assert.True(budget.TryTakeSpare());
        Assert.False(budget.TryTakeSpare()); // full
        budget.ReturnSpare();
        Assert.Equal(1, a.Take(1));
        var b = budget.Open(() => { });
        b.Take(1); // waits
        a.Release();
        Assert.False(budget.TryTakeSpare()); // the freed token is b's
        Assert.Equal(1, b.Take(1));
    }

    [Fact]
    public void The_first_wait_is_reported_with_the_limit_and_the_line()
    {
        var reports = new List<(int, int)>();
        var budget = new ConnectionBudget(1, (limit, waiting) => reports.Add((limit, waiting)));
        budget.Open(() => { }).Take(1);
        budget.Open(() => { }).Take(1);
        budget.Open(() => { }).Take(1);
        Assert.Equal([(1, 1)], reports); // once when waiting starts (then at most once a minute)
    }

    /// <summary>Many destinations' planners on one budget, random events: the node never has more connections than
    /// the limit, every token is accounted for, and every destination's mail gets a connection in the end.</summary>
    [Theory]
    [InlineData(1, 3)]
    [InlineData(7, 5)]
    [InlineData(42, 20)]
    public void Planners_sharing_a_budget_never_exceed_it_and_all_mail_goes(int seed, int limit)
    {
        var random = new Random(seed);
        var budget = new ConnectionBudget(limit);
        var profile = new DestinationProfile { MaxConcurrentConnections = 10, MaxMessagesPerConnection = 3 };
        var tuning = new EngineTuning { InitialConcurrency = 5, MxRollup = false };
        var ctx = new PlanContext(profile, tuning, T0);
        long dcid = 0;
        var woken = new Queue<int>(); // budget callbacks (the actor's Wake message)
        var timers = new HashSet<int>(); // destinations with a wake timer set
        var dests = Enumerable.Range(0, 60).Select(i =>
        {
            var state = new DestinationState(TestDomains.Dom($"d{i}.example"));
            for (var m = 1; m <= 1 + random.Next(6); m++)
                state.Queue.Enqueue(new MessageRef(i * 100 + m, "s@a.example", T0, 100), [new RecipientRef(0, $"u{m}@d{i}.example")], T0);
            var id = i;
            var plan = new ConnectionPlanner(state, () => ++dcid, budget.Open(() => woken.Enqueue(id)));
            plan.Start(ctx);
            return (State: state, Plan: plan, Open: new HashSet<long>(), Ready: new HashSet<long>(), Busy: new Dictionary<long, DeliveryJob>());
        }).ToArray();

        void Apply(int i, IReadOnlyList<ConnectionEffect> fx)
        {
            foreach (var e in fx)
                switch (e)
                {
                    case OpenConnection o: dests[i].Open.Add(o.Dcid); break;
                    case SendJob s: dests[i].Busy[s.Dcid] = s.Job; break;
                    case WakeIn: timers.Add(i); break;
                    case CloseConnection c:
                        dests[i].Ready.Remove(c.Dcid);
                        dests[i].Open.Remove(c.Dcid);
                        Apply(i, dests[i].Plan.Stopped(c.Dcid, ctx));
                        break;
                }
            Assert.True(budget.InUse <= limit);
            // Every token is a planned connection, or reserved for a destination whose wake-up is still queued.
            Assert.InRange(budget.InUse - dests.Sum(d => d.Plan.Count), 0, woken.Count);
        }

        for (var i = 0; i < dests.Length; i++) Apply(i, dests[i].Plan.Pump(ctx));
        Assert.Equal(limit, budget.InUse);
        for (var step = 0; step < 20_000 && dests.Any(d => !d.State.Queue.IsEmpty || d.Plan.Count > 0); step++)
        {
            while (woken.TryDequeue(out var w)) Apply(w, dests[w].Plan.Pump(ctx));
            if (timers.Count > 0 && random.Next(3) == 0)
            {
                // A wake timer fires.
                var t = timers.ElementAt(random.Next(timers.Count));
                timers.Remove(t);
                Apply(t, dests[t].Plan.Pump(ctx));
                continue;
            }
            var i = random.Next(dests.Length);
            var d = dests[i];
            var opening = d.Open.Except(d.Ready).ToArray();
            var busy = d.Busy.Keys.ToArray();
            if (opening.Length > 0 && random.Next(2) == 0)
            {
                var c = opening[random.Next(opening.Length)];
                if (random.Next(5) == 0)
                {
                    d.Open.Remove(c);
                    d.Plan.OpenFailed(c, transient: true, ctx);
                    Apply(i, d.Plan.Wake(ctx));
                }
                else
                {
                    d.Ready.Add(c);
                    Apply(i, d.Plan.Ready(c, ctx));
                }
            }
            else if (busy.Length > 0)
            {
                var c = busy[random.Next(busy.Length)];
                d.Busy.Remove(c, out var job);
                // Delivered: the recipients are done (the actor applies the outcome before the planner hears of it).
                d.State.Apply(new RecipientsCompleted(job!.Message.Mid, job.Recipients.Select(r => r.Rid).ToArray()));
                var usable = random.Next(4) > 0;
                Apply(i, d.Plan.Done(c, delivered: true, usable, ctx));
                if (!usable)
                {
                    // An unusable connection stops by itself (the destination hears Terminated).
                    d.Ready.Remove(c);
                    d.Open.Remove(c);
                    Apply(i, d.Plan.Stopped(c, ctx));
                }
            }
        }
        while (woken.TryDequeue(out var w)) Apply(w, dests[w].Plan.Pump(ctx));
        Assert.Empty(woken);
        Assert.All(dests, d => Assert.True(d.State.Queue.IsEmpty, "every destination's mail got a connection"));
        foreach (var d in dests) d.Plan.StopAll();
        Assert.Equal(0, budget.InUse);
        Assert.Equal(0, budget.Waiting);
    }
}
