using MtaSts.Actors.DestinationControls;
using MtaSts.Actors.Engine.Delivery;
using MtaSts.Actors.Engine.Destination;
using MtaSts.Actors.Spool;

namespace MtaSts.Actors.Engine.Tests.Destination;

/// <summary>The pure parts the destination actor delegates to: the filter of a cluster queue load, the snapshot
/// cadence and the status an operator reads.</summary>
public sealed class DestinationShellPartsTests
{
    private static readonly DateTimeOffset T0 = new(2026, 11, 23, 10, 0, 0, TimeSpan.Zero);

    private static RecoveredMessage Outstanding(long mid, params int[] rids) =>
        new(new SpooledMessage(mid, new Envelope("s@a.example", rids.Select(r => new Recipient(r, $"u{r}@b.example")).ToList(), T0), 100), rids);

    [Fact]
    public void A_queue_load_drops_the_recipients_finished_before_it_read_the_spool_and_messages_left_empty()
    {
        var f = new RecentFinishes();
        f.Finishing(1, [0]);
        f.Finishing(2, [0, 1]);
        var load = f.LoadIssued();
        f.Written(1, [0]);
        f.Written(2, [0, 1]);

        var kept = f.Outstanding(load, [Outstanding(1, 0, 1), Outstanding(2, 0, 1), Outstanding(3, 0)]);

        Assert.Equal([(1L, new[] { 1 }), (3L, new[] { 0 })], kept.Select(k => (k.Message.Mid, k.Rids.ToArray())));
        Assert.Equal(4, f.Outstanding(f.LoadIssued(), [Outstanding(1, 0, 1), Outstanding(2, 0, 1)]).Sum(k => k.Rids.Count)); // a later load: the write failed
    }

    [Fact]
    public void A_snapshot_is_due_after_as_many_events_as_it_holds_retry_records_and_at_least_every_n()
    {
        var c = new SnapshotCadence();
        Assert.False(c.Count(4, every: 5, retryRecords: 0));
        Assert.True(c.Count(1, every: 5, retryRecords: 0));
        Assert.False(c.Count(5, every: 5, retryRecords: 1000)); // count restarted; a deep queue makes snapshots rarer
        Assert.False(c.Count(994, every: 5, retryRecords: 1000));
        Assert.True(c.Count(1, every: 5, retryRecords: 1000));
        Assert.True(c.Count(1000, every: 5, retryRecords: 10)); // a deferral batch counts as its messages
    }

    [Fact]
    public void Status_counts_the_queue_and_hides_the_next_attempt_while_suspended()
    {
        var s = new DestinationState(Dom("b.example"));
        s.Queue.Enqueue(new MessageRef(1, "s@a.example", T0, 100), [new RecipientRef(0, "u@b.example"), new RecipientRef(1, "v@b.example")], T0);
        var settings = new DestinationSettings(DestinationProfile.Default, BounceProfile.Default);

        var status = s.Status(activeConnections: 1, maxConnections: 4);
        Assert.Equal((2, 1, 4, (DateTimeOffset?)T0, false), (status.QueuedRecipients, status.ActiveConnections, status.MaxConnections, status.NextAttempt, status.Suspended));

        foreach (var c in s.Decide(new SuspendDelivery(Dom("b.example"), "admin token"), settings, T0).Changes) s.Apply(c);
        var suspended = s.Status(0, 4);
        Assert.Equal((true, (DateTimeOffset?)null, "admin token", 2), (suspended.Suspended, suspended.NextAttempt, suspended.SuspendedBy, suspended.QueuedRecipients));
    }
}
