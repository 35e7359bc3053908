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
    public void A_destination_whose_last_message_finished_keeps_no_slot()
    {
        // 100,000 destinations that once had mail must cost nothing here once idle (load-tests/DestinationMemoryBench).
        var index = new PendingIndex();
        for (var i = 0; i < 1000; i++) index.Add(Dom($"d{i}.example"), M1, Rcpts(0, 1));
        Assert.Equal(1000, index.DomainSlots);
        for (var i = 0; i < 1000; i++) index.Remove(Dom($"d{i}.example"), 1, [0]);
        Assert.Equal(1000, index.DomainSlots); // recipient 1 still pending everywhere
        for (var i = 0; i < 1000; i++) index.Remove(Dom($"d{i}.example"), 1, [1]);
        Assert.Equal(0, index.DomainSlots);
        Assert.Empty(index.Domains);

        index.Add(Dom("d7.example"), M1, Rcpts(2)); // new mail for it later: a fresh slot
        Assert.True(index.Contains(Dom("d7.example"), 1, 2));
        Assert.Equal(1, index.DomainSlots);
        index.Forget(Dom("d7.example"));
        Assert.Equal(0, index.DomainSlots);
    }

    [Fact]
    public void An_add_racing_the_removal_of_the_last_message_is_never_lost()
    {
        // Even MIDs finish at once, emptying (and dropping) the domain's slot again and again while odd ones arrive.
        var index = new PendingIndex();
        var d = Dom("b.example");
        Parallel.For(1, 40_001, new ParallelOptions { MaxDegreeOfParallelism = 4 }, i =>
        {
            index.Add(d, new MessageRef(i, "s@a.example", DateTimeOffset.UnixEpoch, 10), Rcpts(0));
            if (i % 2 == 0) index.Remove(d, i, [0]);
        });
        for (var i = 1; i <= 40_000; i += 2) Assert.True(index.Contains(d, i, 0), $"MID {i} lost");
        Assert.Equal(20_000, index.Messages);
        Assert.Equal(1, index.DomainSlots);
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
