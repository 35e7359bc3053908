using MtaSts.Actors.DestinationControls;
using MtaSts.Actors.DestinationControls.Throttling;
using MtaSts.Actors.Engine.Delivery;
using MtaSts.Actors.Engine.Destination;
using MtaSts.Actors.Smtp.Replies;

namespace MtaSts.Actors.Engine.Tests.Destination;

/// <summary>The planner under a reply-driven throttle: (connections, replies, time) → effects. No actor, no clock.</summary>
public sealed class ThrottlePlannerTests
{
    private static readonly DateTimeOffset T0 = new(2026, 12, 1, 10, 0, 0, TimeSpan.Zero);
    private static readonly EngineTuning Tuning = new() { InitialConcurrency = 3, ConnectionIdleTime = TimeSpan.FromSeconds(2) };
    private static readonly SmtpReply SlowDown = SmtpReply.Create(421, "4.7.0 slow down");

    private sealed class Rig
    {
        private long _dcid;
        public DestinationState State { get; } = new(Dom("b.example"));
        public ConnectionPlanner Plan { get; }
        public DateTimeOffset Now { get; set; } = T0;
        public ThrottleRuleSet Rules { get; }

        public Rig(int messages, params (string Key, string Value)[] rule)
        {
            Plan = new ConnectionPlanner(State, () => ++_dcid);
            for (var m = 1; m <= messages; m++)
                State.Queue.Enqueue(new MessageRef(m, "s@a.example", T0, 100), [new RecipientRef(0, $"u{m}@b.example")], T0);
            var entries = new List<KeyValuePair<string, string?>> { new("name", "slow"), new("code", "421"), new("text", "slow down") };
            entries.AddRange(rule.Select(e => new KeyValuePair<string, string?>(e.Key, e.Value)));
            Rules = new ThrottleRuleSet([ThrottleRuleParser.Parse("t", entries, e => throw new InvalidOperationException(e))!]);
            Plan.Start(Ctx);
        }

        public PlanContext Ctx => new(new DestinationProfile { MaxConcurrentConnections = 10, MaxMessagesPerConnection = 100 }, Tuning, Now,
            Throttle: Rules);

        /// <summary>Opens the initial connections and makes each ready with a job.</summary>
        public long[] Busy()
        {
            var dcids = Opened(Plan.Pump(Ctx));
            foreach (var d in dcids) Assert.Single(Sent(Plan.Ready(d, Ctx)));
            return dcids;
        }
    }

    private static long[] Opened(IEnumerable<ConnectionEffect> fx) => fx.OfType<OpenConnection>().Select(o => o.Dcid).ToArray();
    private static SendJob[] Sent(IEnumerable<ConnectionEffect> fx) => fx.OfType<SendJob>().ToArray();
    private static LogLine[] Logged(IEnumerable<ConnectionEffect> fx) => fx.OfType<LogConnectionEvent>().Select(l => l.Line).ToArray();

    [Fact]
    public void A_matching_reply_lowers_the_cap_and_busy_connections_over_it_close_when_they_report()
    {
        var rig = new Rig(20, ("action", "limit-connections"), ("connections", "1"), ("duration", "1m"));
        var (a, b, c) = rig.Busy() switch { [var x, var y, var z] => (x, y, z), var o => throw new InvalidOperationException($"{o.Length} opened") };

        var fired = Logged(rig.Plan.Replied([null, SmtpReply.Create(250, "2.0.0 ok"), SlowDown], rig.Ctx));
        Assert.Equal("Destination b.example throttled by rule slow: 421 4.7.0 slow down; connections 3 -> 1 for 1m", Assert.Single(fired).Text);

        // a and b report: over the limit, they close instead of taking the next message; nothing new opens.
        foreach (var dcid in new[] { a, b })
        {
            var fx = rig.Plan.Done(dcid, delivered: true, usable: true, rig.Ctx);
            Assert.Contains(new CloseConnection(dcid), fx);
            Assert.Empty(Sent(fx));
            Assert.Empty(Opened(fx));
        }
        // c is within the limit: it carries on.
        Assert.Single(Sent(rig.Plan.Done(c, delivered: true, usable: true, rig.Ctx)));
        Assert.Empty(Logged(rig.Plan.Replied([SmtpReply.Create(451, "4.3.0 other")], rig.Ctx))); // no rule matches
    }

    [Fact]
    public void A_suspension_closes_idle_connections_wakes_at_its_end_and_then_opens_one_connection()
    {
        var rig = new Rig(3, ("action", "suspend"), ("duration", "30s"), ("ramp-step", "10s"));
        var dcids = rig.Busy();
        foreach (var d in dcids.Skip(1)) Assert.Empty(Sent(rig.Plan.Done(d, delivered: true, usable: true, rig.Ctx))); // idle now
        var fx = rig.Plan.Replied([SlowDown], rig.Ctx);
        Assert.EndsWith("suspended for 30s", Assert.Single(Logged(fx)).Text);
        Assert.Equal(dcids.Skip(1).Select(d => new CloseConnection(d)), fx.OfType<CloseConnection>());
        // The busy one is lost: its message is due again, but nothing opens before the suspension ends.
        var lost = rig.Plan.Stopped(dcids[0], rig.Ctx);
        Assert.Empty(Opened(lost));
        Assert.Contains(new WakeIn(TimeSpan.FromSeconds(30) + TimeSpan.FromMilliseconds(5)), lost);
        foreach (var d in dcids.Skip(1)) rig.Plan.Stopped(d, rig.Ctx);

        rig.Now = T0 + TimeSpan.FromSeconds(30);
        var resumed = rig.Plan.Pump(rig.Ctx);
        Assert.Contains("expired: ramping back, connections 1 (of 3), every 10s", Assert.Single(Logged(resumed)).Text);
        Assert.Single(Opened(resumed));
        Assert.Contains(new WakeIn(TimeSpan.FromSeconds(10) + TimeSpan.FromMilliseconds(5)), resumed);
    }

    [Fact]
    public void A_rate_limit_spaces_the_transactions()
    {
        var rig = new Rig(10, ("action", "limit-rate"), ("rate", "6"), ("duration", "1m"));
        var dcids = rig.Busy();
        rig.Plan.Replied([SlowDown], rig.Ctx);
        rig.Now = T0 + TimeSpan.FromSeconds(1);
        Assert.Single(Sent(rig.Plan.Done(dcids[0], delivered: true, usable: true, rig.Ctx))); // the first one goes
        var fx = rig.Plan.Done(dcids[1], delivered: true, usable: true, rig.Ctx);                 // the next waits 10 s
        Assert.Empty(Sent(fx));
        Assert.Contains(new WakeIn(TimeSpan.FromSeconds(10) + TimeSpan.FromMilliseconds(5)), fx);
        rig.Now = T0 + TimeSpan.FromSeconds(11);
        Assert.Single(Sent(rig.Plan.Pump(rig.Ctx)));
    }
}
