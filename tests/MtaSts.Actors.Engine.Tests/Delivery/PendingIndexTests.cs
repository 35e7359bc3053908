using MtaSts.Actors.Engine.Delivery;
using MtaSts.Actors.Engine.Destination;

namespace MtaSts.Actors.Engine.Tests.Delivery;

public sealed class PendingIndexTests
{
    private static readonly MessageRef M1 = new(1, "s@a.example", DateTimeOffset.UnixEpoch, 10);
    private static RecipientRef[] Rcpts(params int[] rids) => rids.Select(r => new RecipientRef(r, $"u{r}@b.example")).ToArray();

    [Fact]
    public void Adds_merge_by_rid_and_removals_empty_the_domain()
    {
        var index = new PendingIndex();
        index.Add(Dom("b.example"), M1, Rcpts(0, 1));
        index.Add(Dom("b.example"), M1, Rcpts(1, 2));
        index.Add(Dom("c.example"), M1, Rcpts(3));
        var e = Assert.Single(index.For(Dom("b.example")));
        Assert.Same(M1, e.Message);
        Assert.Equal([0, 1, 2], e.Recipients!.Select(r => r.Rid));
        Assert.Equal([0, 1, 2], e.Rids.ToArray());
        Assert.Equal(["b.example", "c.example"], index.Domains.Select(x => x.Name).Order());
        Assert.Equal(2, index.Messages);

        index.Remove(Dom("b.example"), 1, [0, 2]);
        Assert.True(index.Contains(Dom("b.example"), 1, 1));
        Assert.False(index.Contains(Dom("b.example"), 1, 0));
        index.Remove(Dom("b.example"), 1, [1]);
        Assert.Empty(index.For(Dom("b.example")));
        Assert.Equal(["c.example"], index.Domains.Select(x => x.Name));
        Assert.False(index.Contains(Dom("b.example"), 1, 1));
        index.Remove(Dom("nowhere.example"), 1, [0]); // unknown domain: no-op
    }

    [Fact]
    public void A_compact_index_keeps_receive_time_and_rids_only()
    {
        var index = new PendingIndex(compact: true);
        var received = new DateTimeOffset(2026, 12, 1, 10, 0, 0, TimeSpan.FromHours(2));
        index.Add(Dom("b.example"), M1 with { ReceivedAt = received }, Rcpts(0, 70));
        index.Add(Dom("b.example"), M1, Rcpts(70, 1));
        var e = Assert.Single(index.For(Dom("b.example")));
        Assert.Null(e.Message);
        Assert.Null(e.Recipients);
        Assert.Equal(received, e.ReceivedAt);
        Assert.Equal([0, 1, 70], e.Rids.ToArray());
        index.Remove(Dom("b.example"), 1, [70, 0]);
        Assert.True(index.Contains(Dom("b.example"), 1, 1));
        Assert.False(index.Contains(Dom("b.example"), 1, 70));
        index.Remove(Dom("b.example"), 1, [1]);
        Assert.Equal(0, index.Messages);
    }

    [Fact]
    public void Shares_the_dispatchers_recipient_array()
    {
        // One array per (domain, message) on the hot path, not a copy per structure.
        var index = new PendingIndex();
        var rcpts = Rcpts(0);
        index.Add(Dom("b.example"), M1, rcpts);
        Assert.Same(rcpts, Assert.Single(index.For(Dom("b.example"))).Recipients);
    }

    [Fact]
    public void Loaded_is_set_once_the_startup_dispatch_is_done()
    {
        var index = new PendingIndex();
        Assert.False(index.Loaded);
        index.MarkLoaded();
        Assert.True(index.Loaded);
    }
}
