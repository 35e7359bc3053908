using MtaSts.Actors.DestinationControls;
using MtaSts.Actors.Engine.Delivery;
using MtaSts.Actors.Engine.Destination;

namespace MtaSts.Actors.Engine.Tests.Destination;

/// <summary>Operator actions in the pure parts: suspension is a journaled change (live = replay = snapshot), a
/// suspended destination plans nothing, bounce/delete finish idle recipients with or without a DSN.</summary>
public sealed class OperatorActionTests
{
    private static readonly DateTimeOffset T0 = new(2026, 11, 23, 10, 0, 0, TimeSpan.Zero);
    private static readonly DestinationSettings Settings = new(DestinationProfile.Default, BounceProfile.Default);
    private static readonly EngineTuning Tuning = new() { InitialConcurrency = 3 };

    private static DestinationState Queued(int messages)
    {
        var s = new DestinationState(Dom("b.example"));
        for (var m = 1; m <= messages; m++)
            s.Queue.Enqueue(new MessageRef(m, "s@a.example", T0, 100), [new RecipientRef(0, $"u{m}@b.example"), new RecipientRef(1, $"v{m}@b.example")], T0);
        return s;
    }

    private static void Commit(DestinationState s, Decision d)
    {
        foreach (var c in d.Changes) s.Apply(c);
    }

    [Fact]
    public void Suspend_and_resume_are_journaled_once_and_replay_and_snapshot_to_the_same_state()
    {
        var s = Queued(1);
        var suspend = s.Decide(new SuspendDelivery(Dom("b.example"), "admin token from 127.0.0.1"), Settings, T0);
        var e = Assert.IsType<DestinationSuspended>(Assert.Single(suspend.Journaled));
        Assert.Contains(suspend.Effects.OfType<LogLine>(), l => l.Text.StartsWith("Destination b.example suspended by admin token from 127.0.0.1"));
        Commit(s, suspend);
        Assert.Equal(new Suspension(T0, "admin token from 127.0.0.1"), s.Suspended);
        // Suspending again changes nothing.
        Assert.Same(Decision.None, s.Decide(new SuspendDelivery(Dom("b.example"), "someone else"), Settings, T0.AddMinutes(1)));

        var replayed = new DestinationState(Dom("b.example"));
        replayed.Apply(e);
        Assert.Equal(s.Suspended, replayed.Suspended);
        var fromSnapshot = new DestinationState(Dom("b.example"));
        fromSnapshot.ApplySnapshot(s.ToSnapshot());
        Assert.Equal(s.Suspended, fromSnapshot.Suspended);

        var resume = s.Decide(new ResumeDelivery(Dom("b.example"), "alice from ::1"), Settings, T0.AddHours(1));
        Assert.IsType<DestinationResumed>(Assert.Single(resume.Journaled));
        Commit(s, resume);
        Assert.Null(s.Suspended);
        Assert.Null(s.ToSnapshot().Suspended);
        Assert.Same(Decision.None, s.Decide(new ResumeDelivery(Dom("b.example"), "x"), Settings, T0));
    }

    [Fact]
    public void Suspended_mail_still_expires_per_its_bounce_profile()
    {
        var s = Queued(1);
        Commit(s, s.Decide(new SuspendDelivery(Dom("b.example"), "admin token"), Settings, T0));
        var sweep = s.Decide(new ExpirySweep(), Settings, T0 + BounceProfile.Default.MaxTimeInQueue + TimeSpan.FromMinutes(1));
        var finish = Assert.Single(sweep.Effects.OfType<FinishRecipients>());
        Assert.Equal(2, finish.Bounced.Count);
        Assert.All(finish.Bounced, b => Assert.Equal("5.4.7", b.Item2.Status));
    }

    [Fact]
    public void A_suspended_destination_opens_nothing_hands_out_nothing_and_closes_idle_connections()
    {
        var s = Queued(3);
        long dcid = 0;
        var plan = new ConnectionPlanner(s, () => ++dcid);
        PlanContext Ctx(bool suspended) => new(DestinationProfile.Default, Tuning, T0, Suspended: suspended);
        plan.Start(Ctx(false));
        Assert.Empty(plan.Pump(Ctx(true)));

        // A connection that was opening before the suspension comes up: it gets no job and is closed.
        Assert.Contains(plan.Pump(Ctx(false)).OfType<OpenConnection>(), o => o.Dcid == 1);
        var fx = plan.Ready(1, Ctx(true));
        Assert.Empty(fx.OfType<SendJob>());
        Assert.Contains(fx, f => f is CloseConnection { Dcid: 1 });
        Assert.Equal(6, s.Queue.RecipientCount);
        Assert.Equal(0, s.Queue.InFlightCount);
    }

    [Theory]
    [InlineData(true)]
    [InlineData(false)]
    public void Bounce_or_delete_of_one_message_finishes_its_idle_recipients(bool bounce)
    {
        var s = Queued(2);
        var d = s.Decide(new RemoveQueued(Dom("b.example"), 1, bounce, "admin token from 127.0.0.1"), Settings, T0);
        Assert.Empty(d.Journaled); // a final outcome: the spool's done record is durable
        var finish = Assert.Single(d.Effects.OfType<FinishRecipients>());
        Assert.Equal(1, finish.Message.Mid);
        Assert.Equal([0, 1], finish.Rids);
        if (bounce)
        {
            Assert.True(finish.SendDsn);
            Assert.Equal(DestinationState.OperatorBounceReason, finish.Diagnostic);
            Assert.All(finish.Bounced, b => Assert.Equal(("5.0.0", RecipientOutcomeKind.Permanent), (b.Item2.Status, b.Item2.Kind)));
            Assert.Contains(d.Effects.OfType<LogLine>(), l => l.Text.StartsWith("Bounced: DCID 0 MID 1 to RID 0 - 5.0.0"));
        }
        else
        {
            Assert.False(finish.SendDsn);
            Assert.Empty(finish.Bounced);
            Assert.Contains(d.Effects.OfType<LogLine>(), l => l.Text == "Deleted: MID 1 to RID [0, 1] by the operator (admin token from 127.0.0.1), no DSN");
        }
        Commit(s, d);
        Assert.Null(s.Queue.Find(1));
        Assert.NotNull(s.Queue.Find(2));
    }

    [Fact]
    public void Removing_a_whole_queue_leaves_recipients_in_flight_alone_and_counts_them()
    {
        var s = Queued(3);
        Assert.NotNull(s.TakeDue(T0, 1)); // MID 1 RID 0 is in a transaction
        var rq = new RemoveQueued(Dom("b.example"), null, false, "admin token");
        Assert.Equal(new QueueRemoved(Dom("b.example"), 3, 5, 1), s.Count(rq));
        Commit(s, s.Decide(rq, Settings, T0));
        Assert.Equal(1, s.Queue.RecipientCount);
        Assert.Equal(0, s.Queue.Find(1)!.Recipients.Single().Ref.Rid);
        Assert.Same(Decision.None, s.Decide(new RemoveQueued(Dom("b.example"), 99, true, "x"), Settings, T0));
    }
}
