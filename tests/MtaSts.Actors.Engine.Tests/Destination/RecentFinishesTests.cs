using MtaSts.Actors.Engine.Destination;
using Xunit;

namespace MtaSts.Actors.Engine.Tests.Destination;

public class RecentFinishesTests
{
    [Fact]
    public void A_load_issued_before_the_done_record_was_written_is_stale_for_that_recipient()
    {
        var f = new RecentFinishes();
        f.Finishing(7, [0, 1]);
        var load = f.LoadIssued();          // reads the spool while the done record is being written
        f.Written(7, [0, 1]);
        Assert.True(f.Stale(load, 7, 0));
        Assert.True(f.Stale(load, 7, 1));
        Assert.False(f.Stale(load, 7, 2));  // never finished: really outstanding
        Assert.False(f.Stale(load, 8, 0));
    }

    [Fact]
    public void A_load_issued_before_the_recipient_finished_is_stale_too()
    {
        var f = new RecentFinishes();
        var load = f.LoadIssued();          // the recipient was in flight when the spool was read
        f.Finishing(7, [0]);
        Assert.True(f.Stale(load, 7, 0));   // write still pending
        f.Written(7, [0]);
        Assert.True(f.Stale(load, 7, 0));
    }

    [Fact]
    public void A_load_issued_after_the_done_record_was_written_is_not_filtered()
    {
        var f = new RecentFinishes();
        var early = f.LoadIssued();
        f.Finishing(7, [0]);
        f.Written(7, [0]);
        var late = f.LoadIssued();          // sees the done record: if it lists the recipient, the write failed
        Assert.True(f.Stale(early, 7, 0));
        Assert.False(f.Stale(late, 7, 0));
    }

    [Fact]
    public void Entries_are_forgotten_once_no_pending_load_can_have_missed_them()
    {
        var f = new RecentFinishes();
        f.Finishing(1, [0]);
        f.Written(1, [0]);
        Assert.Equal(0, f.Count);           // no load pending: nothing to remember

        var load = f.LoadIssued();
        f.Finishing(2, [0]);
        f.Finishing(3, [0]);
        f.Written(2, [0]);
        Assert.Equal(2, f.Count);
        f.LoadCompleted(load);
        Assert.Equal(1, f.Count);           // MID 3's write is still pending: kept for loads issued now
        var next = f.LoadIssued();
        Assert.True(f.Stale(next, 3, 0));
        f.Written(3, [0]);
        f.LoadCompleted(next);
        Assert.Equal(0, f.Count);
    }

    [Fact]
    public void Completing_loads_out_of_order_keeps_what_the_older_pending_load_needs()
    {
        var f = new RecentFinishes();
        var a = f.LoadIssued();
        f.Finishing(5, [0]);
        f.Written(5, [0]);                  // written while load a is pending
        var b = f.LoadIssued();
        f.LoadCompleted(b);
        Assert.True(f.Stale(a, 5, 0));      // a read before the write: still filtered
        f.LoadCompleted(a);
        Assert.Equal(0, f.Count);
    }
}
