using MtaSts.Actors.Logging;

namespace MtaSts.Actors.Spool.Postgres.Tests;

public sealed class IdSequenceTests
{
    [Fact]
    public void Default_mode_is_unchanged()
    {
        var ids = new IdSequence(10);
        Assert.False(ids.IsLeased);
        Assert.Equal(11, ids.Next());
        ids.EnsureAbove(100);
        Assert.Equal(101, ids.Next());
        Assert.Equal(101, ids.Current);
    }

    [Fact]
    public void Leased_blocks_are_used_up_before_the_next_lease_and_ids_are_unique_across_threads()
    {
        long source = 0;
        int leases = 0;
        var ids = new IdSequence(() => { Interlocked.Increment(ref leases); return Interlocked.Add(ref source, 10) - 9; }, 10);
        Assert.True(ids.IsLeased);
        Assert.Equal(1, ids.Next());
        Assert.Equal(2, ids.Next());
        var bag = new System.Collections.Concurrent.ConcurrentBag<long>();
        Parallel.For(0, 4, _ => { for (int i = 0; i < 1000; i++) bag.Add(ids.Next()); });
        Assert.Equal(4000, bag.Distinct().Count());
        Assert.Equal(Enumerable.Range(3, 4000).Select(i => (long)i), bag.Order());
        Assert.Equal(401, leases);
    }

    [Fact]
    public void EnsureAbove_skips_ids_at_or_below_the_floor_in_leased_mode()
    {
        long source = 0;
        var ids = new IdSequence(() => Interlocked.Add(ref source, 100) - 99, 100);
        Assert.Equal(1, ids.Next());
        ids.EnsureAbove(50);
        Assert.Equal(51, ids.Next());
        ids.EnsureAbove(250);
        Assert.Equal(251, ids.Next()); // blocks 101-200 and 201-300 leased, the first dropped whole
        Assert.Throws<InvalidOperationException>(() => new IdSequence(() => 0, 5).Next());
    }
}
